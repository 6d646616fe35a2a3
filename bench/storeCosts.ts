/**
 * `node bench/storeCosts.ts [count]`: the CPU one statement of the cluster's PBX write path costs, in this process (the
 * runner's side: the statement's Effect, the pool, encoding and decoding) and in PostgreSQL's processes, on the tests'
 * embedded PostgreSQL: each statement `count` times (2,000) one after the other, after 200 to warm up. For the cost
 * per change of `cluster-3` (docs/performance.md, "cluster-3: the cost per change"). Run it under the bench lock.
 */
import { Context, Effect, Layer, Redacted } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { setPresence } from "../src/domain/PbxPresence.ts"
import { StateStore, TenantId } from "../src/state/StateStore.ts"
import { startTestPostgres } from "../test/support/postgresServer.ts"
import { keyEnv, newKey, withEnv } from "../test/state/fixtures.ts"

const count = Number(process.argv[2] ?? 2000)
const pg = await startTestPostgres()
const postmaster = Number(readFileSync(`${pg.dir}/data/postmaster.pid`, "utf8").split("\n")[0])

/** CPU milliseconds of this process. */
const ownCpu = () => {
  const used = process.cpuUsage()
  return (used.user + used.system) / 1000
}
/** CPU milliseconds of the PostgreSQL server's processes (10 ms ticks). */
const postgresCpu = () => {
  let ticks = 0
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
      if (Number(pid) === postmaster || Number(fields[1]) === postmaster) ticks += Number(fields[11]) + Number(fields[12])
    } catch {
      // gone meanwhile
    }
  }
  return ticks * 10
}

const program = Effect.gen(function*() {
  const layer = StateStore.layerPostgres({ url: Redacted.make(pg.url), maxConnections: 4 }).pipe(Layer.provide(withEnv(keyEnv(newKey()))))
  const store = Context.get(yield* Layer.build(layer), StateStore)
  const tenant = TenantId.make("alpha")
  const { epoch } = yield* store.owners.claim(tenant, "runner-1")
  const lease = yield* store.desired.lease(tenant, "master", "runner-1")
  const states = ["away", "busy", "dnd"] as const
  const rows: Array<Record<string, number | string>> = []
  const time = function*(what: string, statement: (i: number) => Effect.Effect<unknown, unknown>) {
    for (let i = 0; i < 200; i++) yield* statement(i)
    const [own, postgres, wall] = [ownCpu(), postgresCpu(), performance.now()]
    for (let i = 0; i < count; i++) yield* statement(i)
    const per = (ms: number) => Math.round((ms / count) * 1000) / 1000
    rows.push({ statement: what, processMs: per(ownCpu() - own), postgresMs: per(postgresCpu() - postgres), wallMs: per(performance.now() - wall) })
  }
  yield* time("desired.put (1 row)", (i) => store.desired.put(tenant, epoch, [{ pbx: "master", guid: `u${i % 300}`, command: setPresence(states[i % 3]!) }]))
  yield* time("desired.pending (leased)", () => store.desired.pending(tenant, "master", 500, lease.epoch, Number.MAX_SAFE_INTEGER))
  yield* time("desired.confirm (leased, 1 row)", (i) => store.desired.confirm(tenant, [{ guid: `u${i % 300}`, version: 1 }], { pbx: "master", epoch: lease.epoch }))
  yield* time("owners.get", () => store.owners.get(tenant))
  process.stdout.write(JSON.stringify({ scenario: "store-costs", count, rows }) + "\n")
}).pipe(Effect.scoped)

try {
  await Effect.runPromise(program)
} finally {
  await pg.stop()
}
