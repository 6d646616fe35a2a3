/** The embedded demo as the end-to-end tests start it, and its status page as an administrator reads it. */
import { Effect, Redacted } from "effect"
import { type DemoHandle, type DemoOptions, startDemo } from "../../src/demo/Demo.ts"
import type { StatusSnapshot } from "../../src/status/StatusBoard.ts"
import { makeTempDir } from "./tempDir.ts"
import { basicAuth } from "./waiting.ts"

/**
 * The demo on a free port with a data directory of its own (removed with the scope), no presence changes of its own,
 * and `password` as the admin password; `options` may set anything else.
 */
export const startTestDemo = (password: string, options: Partial<DemoOptions> = {}) =>
  Effect.flatMap(makeTempDir("tpc-demo-"), (dataDir) =>
    startDemo({ port: 0, changeEverySeconds: 0, adminPassword: Redacted.make(password), dataDir, ...options }))

/** `GET /api/status` with the admin password. */
export const statusOf = (demo: DemoHandle, password: string) =>
  Effect.promise(async () => {
    const response = await fetch(demo.url + "/api/status", { headers: { authorization: basicAuth(password) } })
    return (await response.json()) as StatusSnapshot
  })
