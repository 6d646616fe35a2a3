/**
 * `npm run bench -- soak`: hours of the demo's life in a few minutes, to see whether the connector's memory stays
 * flat. The demo's 50 users change 20 times as often as in the demo (≈ 13 changes/s instead of ≈ 0.7), the PBXs
 * drop their connections and reconnect, every access token is revoked at Graph so the connector signs in again, and
 * the connector's timers run fast (renewals and reconciliation every minute, subscription lookups every 5 s). The
 * connector (a child process with --expose-gc) collects garbage fully every BENCH_SOAK_SAMPLE_SECONDS and reports the
 * heap left afterwards; the result says whether that grows (a least-squares slope after the warm-up).
 * BENCH_SOAK_MINUTES (default 4); BENCH_SOAK_SNAPSHOTS=1 also writes two heap snapshots (after the warm-up, at the
 * end) into the kept bench directory, for comparing what is live.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { Effect, Random } from "effect"
import { Activities } from "../src/domain/Presence.ts"
import { freePort } from "../src/http/Server.ts"
import { generateUsers, GraphSimulator } from "../src/simulators/graph/GraphSimulator.ts"
import { JWKS_PATH } from "../src/simulators/graph/SimJwks.ts"
import { SubscriptionsExtension } from "../src/simulators/graph/SubscriptionsRoutes.ts"
import { demoSystemOptions, PbxSimulator } from "../src/simulators/pbx/PbxSimulator.ts"
import { shippedNodeFlags, startConnector, writeConfig } from "./connectorProcess.ts"
import { emit, progress, until } from "./report.ts"
import { round } from "./stats.ts"

const USERS = 50
/** The demo changes 1–3 users every 3 s (≈ 0.67 changes/s); the soak 20 times that. */
const CHANGES_PER_SECOND = Number(process.env["BENCH_SOAK_RATE"] ?? 13.3)
const MINUTES = Number(process.env["BENCH_SOAK_MINUTES"] ?? 4)
const SAMPLE_SECONDS = Number(process.env["BENCH_SOAK_SAMPLE_SECONDS"] ?? 10)
const RECONNECT_EVERY_SECONDS = 20
const TOKENS_EXPIRE_EVERY_SECONDS = 30
/** The first part of the run is the warm-up (JIT, caches, first subscriptions): the slope is taken after it. */
const WARMUP_SHARE = 0.25
/** Flat: the heap after GC grows by less than this per minute after the warm-up. */
const FLAT_MB_PER_MINUTE = 0.1

const TENANT = "11111111-2222-3333-4444-555555555555"
const CLIENT = "66666666-7777-8888-9999-000000000000"
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..")

/** Least-squares slope of y over x. */
const slope = (points: ReadonlyArray<{ readonly x: number; readonly y: number }>): number => {
  const n = points.length
  if (n < 2) return Number.NaN
  const mx = points.reduce((s, p) => s + p.x, 0) / n
  const my = points.reduce((s, p) => s + p.y, 0) / n
  const sxy = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0)
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0)
  return sxx === 0 ? 0 : sxy / sxx
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? Number.NaN : sorted[Math.floor(sorted.length / 2)]!
}

export const soak = Effect.gen(function*() {
  const port = yield* freePort()
  const graph = yield* GraphSimulator.make({
    tenantId: TENANT,
    clientId: CLIENT,
    clientSecrets: [{ value: "soak-secret" }],
    accounts: [{ upn: "presence-1@contoso.com", password: "soak-password" }],
    users: generateUsers(USERS),
    extensions: [SubscriptionsExtension({ batchWindowMillis: 20 })]
  })
  const dir = mkdtempSync(join(tmpdir(), "presence-soak-"))
  const configFile = writeConfig(dir, {
    tenantId: TENANT,
    clientId: CLIENT,
    app: { clientSecret: "soak-secret" },
    accounts: [{ name: "presence-1", username: "presence-1@contoso.com", flow: "password", password: "soak-password" }],
    graph: { loginBaseUrl: graph.url, graphBaseUrl: graph.url, jwksUrl: graph.url + JWKS_PATH },
    notifications: { mode: "push", publicBaseUrl: `http://127.0.0.1:${port}` },
    pbx: { masterPbx: "pbx-master", appPassword: "soak-app-password" },
    http: { host: "127.0.0.1", port },
    dataDir: join(dir, "data"),
    admin: { password: "soak-admin-password" },
    log: { level: "info", format: "json" },
    timers: { presenceRenewMinutes: 1, usersRenewMinutes: 1, reconcileMinutes: 1, verifySeconds: 5, replanDebounceSeconds: 1 }
  })
  const durationMs = MINUTES * 60_000
  const warmupMs = durationMs * WARMUP_SHARE
  const connector = yield* Effect.acquireRelease(
    Effect.sync(() => startConnector({
      repoRoot,
      configFile,
      port,
      logFile: join(dir, "connector.log"),
      nodeFlags: [...shippedNodeFlags(repoRoot), "--expose-gc"],
      env: {
        BENCH_GC_SAMPLE_MS: String(SAMPLE_SECONDS * 1000),
        ...(process.env["BENCH_SOAK_SNAPSHOTS"] === undefined ? {} : { BENCH_HEAP_SNAPSHOTS: `${Math.round(warmupMs + 15_000)},${durationMs}` })
      }
    })),
    (child) =>
      Effect.promise(() => child.stop()).pipe(Effect.andThen(Effect.sync(() => {
        if (process.env["BENCH_KEEP"] === undefined) rmSync(dir, { recursive: true, force: true })
      })))
  )
  const pbx = yield* PbxSimulator.make(demoSystemOptions({
    connectUrl: `ws://127.0.0.1:${port}/pbx`,
    password: "soak-app-password",
    userCount: USERS,
    lics: USERS + 10
  }))
  // The people of the table: its waiting queue and trunk are never written.
  const users = (yield* pbx.users).filter((u) => u.pseudo === undefined)
  yield* until("every user written once", () => users.every((u) => pbx.peek.setPresenceLog().some((r) => r.guid === u.guid)), 60_000)
  yield* progress(`soak: ${MINUTES} min, ${CHANGES_PER_SECOND} changes/s, files in ${dir}`)

  const teamsIds = generateUsers(USERS).map((u) => u.id!)
  const started = performance.now()
  let changes = 0
  let reconnects = 0
  let tokenExpiries = 0
  let nextReconnect = RECONNECT_EVERY_SECONDS * 1000
  let nextExpiry = TOKENS_EXPIRE_EVERY_SECONDS * 1000
  const tickMs = 1000 / CHANGES_PER_SECOND
  while (performance.now() - started < durationMs) {
    if (connector.exited()) return yield* Effect.fail(new Error(`the connector exited; see ${connector.logFile}`))
    const elapsed = performance.now() - started
    const due = Math.floor(elapsed / tickMs)
    for (; changes < due; changes++) {
      const id = teamsIds[yield* Random.nextIntBetween(0, teamsIds.length - 1)]!
      const activity = Activities[yield* Random.nextIntBetween(0, Activities.length - 1)]!
      yield* graph.setPresence(id, { availability: activity === "InACall" ? "Busy" : activity, activity })
    }
    if (elapsed >= nextReconnect) {
      yield* pbx.drop(reconnects % 2 === 0 ? "pbx-master" : "pbx-slave", { reconnect: true }).pipe(Effect.ignore)
      reconnects++
      nextReconnect += RECONNECT_EVERY_SECONDS * 1000
    }
    if (elapsed >= nextExpiry) {
      yield* graph.expireAllTokens
      tokenExpiries++
      nextExpiry += TOKENS_EXPIRE_EVERY_SECONDS * 1000
    }
    yield* Effect.sleep(Math.max(1, Math.round(tickMs)))
  }
  // Wait for the last sample to land.
  yield* Effect.sleep(`${SAMPLE_SECONDS + 1} seconds`)

  const samples = (connector.probe()?.heapAfterGc ?? []).map((s) => ({
    ...s,
    minutes: round(s.atSeconds / 60, 2),
    dataMb: round(s.heapUsedMb - s.codeMb, 1)
  }))
  const startSeconds = samples[0]?.atSeconds ?? 0
  const afterWarmup = samples.filter((s) => (s.atSeconds - startSeconds) * 1000 >= warmupMs)
  const heapSlope = slope(afterWarmup.map((s) => ({ x: s.atSeconds / 60, y: s.heapUsedMb })))
  const dataSlope = slope(afterWarmup.map((s) => ({ x: s.atSeconds / 60, y: s.dataMb })))
  const rssSlope = slope(afterWarmup.map((s) => ({ x: s.atSeconds / 60, y: s.rssMb })))
  const third = Math.max(1, Math.floor(afterWarmup.length / 3))
  const firstThird = median(afterWarmup.slice(0, third).map((s) => s.dataMb))
  const lastThird = median(afterWarmup.slice(-third).map((s) => s.dataMb))
  yield* emit({
    scenario: "soak",
    minutes: MINUTES,
    users: USERS,
    changes,
    changesPerSecond: CHANGES_PER_SECOND,
    pbxReconnects: reconnects,
    tokenRevocations: tokenExpiries,
    heapAfterGcMb: samples.map((s) => [s.minutes, s.heapUsedMb]),
    heapWithoutCodeMb: samples.map((s) => [s.minutes, s.dataMb]),
    rssMb: samples.map((s) => [s.minutes, s.rssMb]),
    afterWarmup: {
      samples: afterWarmup.length,
      heapSlopeMbPerMinute: round(heapSlope, 3),
      heapWithoutCodeSlopeMbPerMinute: round(dataSlope, 3),
      rssSlopeMbPerMinute: round(rssSlope, 3),
      withoutCodeMedianFirstThirdMb: firstThird,
      withoutCodeMedianLastThirdMb: lastThird
    },
    peakRssMb: connector.peakRssMb(),
    measure: `heap used after a forced full GC every ${SAMPLE_SECONDS} s in the connector child (--expose-gc), with and ` +
      `without compiled code and compiler metadata (V8 code and trusted spaces); slopes by least squares after the first ${WARMUP_SHARE * 100} %`,
    targets: {
      heapWithoutCodeFlat: { target: `< ${FLAT_MB_PER_MINUTE} MB/min`, pass: dataSlope < FLAT_MB_PER_MINUTE }
    }
  })
})
