/**
 * `npm run bench -- call-wave`: PBX → Teams under a call wave. The connector (a child process, push mode, pbxToTeams
 * on) serves BENCH_WAVE_USERS (2,000) users; every one of them starts a PBX call within 10 s, and every tenth call
 * ends again after a second. Reported: the time until the last call shows in Teams (the Graph simulator's presence),
 * the delay per call, the presence requests Graph received per 30 s (its limit: 1,500 per application) and any 429,
 * whether every user's final state is right (in a call: Busy/InACall; a short call: no session left), that the PBX
 * never received an on-the-phone from its own calls, and how long clearing every session takes once the calls end.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { generateUsers, GraphSimulator } from "../src/simulators/graph/GraphSimulator.ts"
import { JWKS_PATH } from "../src/simulators/graph/SimJwks.ts"
import { SubscriptionsExtension } from "../src/simulators/graph/SubscriptionsRoutes.ts"
import { demoSystemOptions, PbxSimulator } from "../src/simulators/pbx/PbxSimulator.ts"
import { freePort } from "../src/http/Server.ts"
import { shippedNodeFlags, startConnector, writeConfig } from "./connectorProcess.ts"
import { emit, progress, seconds, until } from "./report.ts"
import { percentile } from "./stats.ts"

const USERS = Number(process.env["BENCH_WAVE_USERS"] ?? 2_000)
const WAVE_MS = 10_000
const SHORT_EVERY = 10
const ACCOUNTS = Math.ceil(USERS / 650)
const TENANT = "11111111-2222-3333-4444-555555555555"
const CLIENT = "66666666-7777-8888-9999-000000000000"
const SECRET = "bench-secret"
const ACCOUNT_PASSWORD = "bench-account-password"
const PBX_PASSWORD = "bench-app-object-password"
const ADMIN = "bench-admin-password"
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..")

/** The most requests of one application in any 30-second window, from the times Graph received them. */
const maxPerWindow = (times: ReadonlyArray<number>, windowMs = 30_000): number => {
  const sorted = [...times].sort((a, b) => a - b)
  let max = 0
  let start = 0
  for (let end = 0; end < sorted.length; end++) {
    while (sorted[end]! - sorted[start]! >= windowMs) start++
    max = Math.max(max, end - start + 1)
  }
  return max
}

export const callWave = Effect.gen(function*() {
  const port = yield* freePort()
  const teamsUsers = generateUsers(USERS)
  const graph = yield* GraphSimulator.make({
    tenantId: TENANT,
    clientId: CLIENT,
    clientSecrets: [{ value: SECRET }],
    accounts: Array.from({ length: ACCOUNTS }, (_, i) => ({ upn: `presence-${i + 1}@contoso.com`, password: ACCOUNT_PASSWORD })),
    users: teamsUsers,
    extensions: [SubscriptionsExtension({ batchWindowMillis: 20 })]
  })
  for (const user of teamsUsers) yield* graph.setPresence(user.id!, { availability: "Available", activity: "Available" })
  const dir = mkdtempSync(join(tmpdir(), "presence-wave-"))
  const configFile = writeConfig(dir, {
    tenantId: TENANT,
    clientId: CLIENT,
    app: { clientSecret: SECRET },
    accounts: Array.from({ length: ACCOUNTS }, (_, i) => ({ name: `presence-${i + 1}`, username: `presence-${i + 1}@contoso.com`, flow: "password", password: ACCOUNT_PASSWORD })),
    graph: { loginBaseUrl: graph.url, graphBaseUrl: graph.url, jwksUrl: graph.url + JWKS_PATH },
    notifications: { mode: "push", publicBaseUrl: `http://127.0.0.1:${port}` },
    pbx: { masterPbx: "pbx-master", appPassword: PBX_PASSWORD },
    http: { host: "127.0.0.1", port },
    dataDir: join(dir, "data"),
    admin: { password: ADMIN },
    log: { level: "info", format: "json" },
    timers: { replanDebounceSeconds: 1 },
    pbxToTeams: { enabled: true }
  })
  const connector = yield* Effect.acquireRelease(
    Effect.sync(() => startConnector({ repoRoot, configFile, port, logFile: join(dir, "connector.log"), nodeFlags: shippedNodeFlags(repoRoot) })),
    (child) => Effect.promise(() => child.stop()).pipe(Effect.andThen(Effect.sync(() => {
      if (process.env["BENCH_KEEP"] === undefined) rmSync(dir, { recursive: true, force: true })
    })))
  )
  const pbx = yield* PbxSimulator.make(demoSystemOptions({ connectUrl: `ws://127.0.0.1:${port}/pbx`, password: PBX_PASSWORD, userCount: USERS }))
  const people = (yield* pbx.users).filter((u) => u.pseudo === undefined)
  const guidOf = (n: number) => people.find((u) => u.h323 === `user${String(n).padStart(4, "0")}`)!.guid
  yield* progress(`call wave: ${USERS} users; connector on port ${port}; files in ${dir}`)

  const authorization = "Basic " + Buffer.from(`admin:${ADMIN}`).toString("base64")
  yield* until("every user's calls watched", async () => {
    if (connector.exited()) throw new Error(`the connector exited; see ${connector.logFile}`)
    const response = await fetch(`${connector.baseUrl}/api/status`, { headers: { authorization } }).catch(() => undefined)
    if (response === undefined || !response.ok) return false
    const status = (await response.json()) as { pbxToTeams?: { live: number } }
    return status.pbxToTeams?.live === USERS
  }, 120_000, 500)
  const pbxLogBefore = pbx.peek.setPresenceLog().length
  const sessionsBefore = graph.sessionLog().length

  // The wave: call n starts at n × 10 s / USERS; every tenth call ends a second later.
  const placedAt = new Map<string, number>()
  const short = new Set<string>()
  const waveStart = Date.now()
  yield* Effect.forEach(teamsUsers, (user, i) =>
    Effect.gen(function*() {
      const due = waveStart + (i * WAVE_MS) / USERS - Date.now()
      if (due > 0) yield* Effect.sleep(due)
      const guid = guidOf(i + 1)
      placedAt.set(user.id!, Date.now())
      const call = yield* pbx.placeCall(guid)
      if ((i + 1) % SHORT_EVERY === 0) {
        short.add(user.id!)
        yield* Effect.sleep(1_000)
        yield* pbx.endCall(call)
      }
    }), { concurrency: "unbounded", discard: true })
  const inCall = (id: string) => {
    const p = graph.state.getPresence(id)!
    return p.availability === "Busy" && p.activity === "InACall"
  }
  const rightNow = (u: typeof teamsUsers[number]) =>
    short.has(u.id!) ? !inCall(u.id!) && graph.presenceInputs(u.id!)?.sessions.size === 0 : inCall(u.id!)
  yield* until("every user's final state in Teams", () => teamsUsers.every(rightNow), 180_000, 100)
  const lastShownAt = Date.now()
  const finalStateRight = teamsUsers.filter(rightNow).length

  const log = graph.sessionLog().slice(sessionsBefore)
  const firstSet = new Map<string, number>()
  for (const call of log) if (call.operation === "setPresence" && call.status === 200 && !firstSet.has(call.userId)) firstSet.set(call.userId, call.at)
  const delays = teamsUsers.filter((u) => !short.has(u.id!)).map((u) => firstSet.get(u.id!)! - placedAt.get(u.id!)!)
  const echoes = pbx.peek.setPresenceLog().slice(pbxLogBefore).filter((r) => r.activity === "on-the-phone" || r.activity === "busy")

  // Every call ends: how long until Graph holds no session.
  const endStart = Date.now()
  for (const call of yield* pbx.calls) yield* pbx.endCall(call.id)
  yield* until("every session cleared", () => teamsUsers.every((u) => graph.presenceInputs(u.id!)?.sessions.size === 0), 180_000, 100)
  const clearedAfter = Date.now() - endStart
  const all = graph.sessionLog().slice(sessionsBefore)
  const counters = yield* graph.counters

  yield* emit({
    scenario: `call-wave-${USERS}`,
    users: USERS,
    waveSeconds: WAVE_MS / 1000,
    shortCalls: short.size,
    lastShownInTeamsSeconds: seconds(lastShownAt - waveStart),
    callToTeamsMs: { p50: percentile(delays, 50), p99: percentile(delays, 99), max: Math.max(...delays) },
    setPresence: all.filter((c) => c.operation === "setPresence").length,
    clearPresence: all.filter((c) => c.operation === "clearPresence").length,
    throttled429: all.filter((c) => c.status === 429).length + counters.throttled,
    maxPresenceWritesIn30s: maxPerWindow(all.map((c) => c.at)),
    graphLimitPer30s: 1_500,
    finalStateRight: `${finalStateRight} of ${teamsUsers.length}`,
    pbxEchoes: echoes.length,
    allClearedAfterEndSeconds: seconds(clearedAfter),
    measure: "wave start to the moment every user shows its final state in the Graph simulator (Busy/InACall, or no session after a short call)"
  })
})
