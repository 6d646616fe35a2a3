/**
 * `npm run build` (run by `prepack`): the package as users get it, in dist/. The TypeScript compiler emits JavaScript
 * and declarations from src/ (tsconfig.build.json; the `.ts` imports become `.js`), and the files that are not modules
 * are copied beside the modules that read them: the status page's static files (src/status/static).
 */
import { execFileSync } from "node:child_process"
import { cpSync, existsSync, rmSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"

const root = join(import.meta.dirname, "..")
const dist = join(root, "dist")
const tsc = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin", "tsc")

rmSync(dist, { recursive: true, force: true })
execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { cwd: root, stdio: "inherit" })
cpSync(join(root, "src", "status", "static"), join(dist, "status", "static"), { recursive: true })

// What the built package reads by path rather than by import: fail the build, not the first user, when one is missing.
for (const file of ["bin.js", "index.js", "index.d.ts", "testing.js", "testing.d.ts", "graph/notifications/crypto/decryptWorker.js", "status/static/index.html", "status/static/overview.html"]) {
  if (!existsSync(join(dist, file))) throw new Error(`build: dist/${file} is missing`)
}
