#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=8 --heap-growing-percent=20 --no-allocation-site-pretenuring --max-old-space-size=224
/**
 * The package's bin (`teams-presence-connector`, built to dist/bin.js). The Node.js version is checked first, by plain
 * JavaScript (scripts/check-node.cjs), so that an older Node.js says what it needs instead of failing inside a
 * dependency; only then is the command line loaded (src/main.ts) — with a dynamic import, because static imports
 * would all load before any code here runs.
 */
import { createRequire } from "node:module"

const checkNode = createRequire(import.meta.url)("../scripts/check-node.cjs") as {
  exitUnlessSupported(command: string): void
}
checkNode.exitUnlessSupported(["teams-presence-connector", ...process.argv.slice(2)].join(" "))

await import("./main.ts")
