/**
 * The socket holder's leases of its PBXs and what it handed to the writer on each (docs/scaling.md, "PBX writes").
 *
 * Each PBX's socket is leased: a login here takes the PBX's lease in the store (the next epoch), and every read of
 * what to send and every confirmation carries that epoch and is refused once another runner took the lease (the PBX
 * logged in there). A refused sender sends that PBX nothing more and closes its socket, so one PBX has one writer.
 *
 * A lease remembers the version of each row handed to the writer on it and not yet confirmed, and the highest version
 * read: a look reads only newer rows, and a row already handed is not handed again. The writer keeps latest-wins per
 * user and retries on its own; its confirmations are written to the store as they come (`confirmWritten`), so a new
 * change never waits for the previous batch's answers. The memory belongs to the lease: a new login takes a new lease
 * with an empty one, and the PBX gets everything it has not confirmed.
 */
import { Effect, PubSub } from "effect"
import { clip } from "../domain/LogText.ts"
import { commandEquals, type PbxPresenceCommand } from "../domain/PbxPresence.ts"
import type { PresenceWriter } from "../pbx/writer/PresenceWriter.ts"
import type { PbxConnections } from "../pbx/socket/PbxConnections.ts"
import type { StateStore, StateStoreError, TenantId, VersionedCommand } from "../state/StateStore.ts"
import { recordStage, recordStageSince, timedStage } from "./StageTimings.ts"

/** What the sender works with: the tenant, the store, the real writer, the PBX sockets here and this runner's id. */
export interface Sides {
  readonly tenant: TenantId
  readonly store: StateStore["Service"]
  readonly real: PresenceWriter["Service"]
  readonly connections: PbxConnections["Service"]
  /** The lease holder's name in the store (the runner id). */
  readonly runner: string
}

/** A PBX's lease as held here: its epoch, the connection it was taken for, and what was handed to the writer on it. */
export interface Lease {
  readonly epoch: number
  readonly connection: number
  /** Per user guid, the row handed to the writer and not yet confirmed in the store. */
  readonly handed: Map<string, { readonly version: number; readonly command: PbxPresenceCommand }>
  /** The highest version read on this lease: a look after a wake-up reads above it. */
  readBound: number
}

/** A PBX's lease, or `lost` once another runner took it. */
export type Held = Lease | "lost"

/** Rows read per PBX at a time. */
const pageSize = 500

/**
 * The leases of the PBXs logged in here. `loggedIn` at each login; `of` the one to send with, taken (the next epoch) on
 * the first look after the login; `lost` when the store refused an epoch: no more sends to that PBX until it logs in here
 * again, and its socket is closed (the PBX holds another socket, on another runner, that took the lease).
 */
export const makeLeases = (sides: Sides) => {
  const { connections, runner, store, tenant } = sides
  const held = new Map<string, Held>()
  const take = Effect.fnUntraced(function*(pbx: string, connection: number) {
    const lease = yield* store.desired.lease(tenant, pbx, runner)
    const taken: Lease = { epoch: lease.epoch, connection, handed: new Map(), readBound: 0 }
    held.set(pbx, taken)
    yield* Effect.logInfo(`cluster: PBX ${pbx} of ${tenant}: its socket's lease taken here (epoch ${lease.epoch})`)
    return taken
  })
  const of = Effect.fnUntraced(function*(pbx: string) {
    const current = held.get(pbx)
    if (current !== undefined) return current
    const connection = yield* connections.get(pbx)
    return connection._tag === "Some" ? yield* take(pbx, connection.value.id) : "lost" as const
  })
  const lost = Effect.fnUntraced(function*(pbx: string, lease: Lease, error: StateStoreError) {
    if (held.get(pbx) !== lease) return // a newer login here took a newer lease meanwhile
    held.set(pbx, "lost")
    yield* Effect.logWarning(`cluster: PBX ${pbx} of ${tenant}: ${error.message}: closing its socket here`)
    const connection = yield* connections.get(pbx)
    if (connection._tag === "Some" && connection.value.id === lease.connection) {
      yield* connection.value.close("another runner holds this PBX's socket lease now (the PBX logged in there)")
    }
  })
  /** A login here on `connection`: its lease is taken on the next look, unless it was taken for that connection already. */
  const loggedIn = (pbx: string, connection: number) => {
    const current = held.get(pbx)
    if (current === "lost" || current?.connection !== connection) held.delete(pbx)
  }
  /** The PBX's lease as held here now, without taking one (undefined: none taken since its login here). */
  const peek = (pbx: string): Held | undefined => held.get(pbx)
  /** The leases held now, per PBX. */
  const current = () => [...held].flatMap(([pbx, lease]) => (lease === "lost" ? [] : [[pbx, lease] as const]))
  /** `effect` on `lease`, whose refusal (Fenced) marks the lease lost. */
  const guarded = <A, R>(pbx: string, lease: Lease, effect: Effect.Effect<A, StateStoreError, R>) =>
    effect.pipe(Effect.asVoid, Effect.catchIf((error) => error.reason === "Fenced", (error) => lost(pbx, lease, error)))
  return { of, peek, lost, loggedIn, current, guarded }
}

/** The writer's confirmations, written to the store as they come (in a fiber of the scope's): a look never waits for them. */
export const followConfirmations = Effect.fnUntraced(function*(
  real: PresenceWriter["Service"],
  leases: ReturnType<typeof makeLeases>,
  handover: ReturnType<typeof makeHandover>
) {
  const confirmations = yield* real.confirmations
  yield* Effect.gen(function*() {
    while (true) {
      const guids = new Set((yield* PubSub.takeAll(confirmations)).flat())
      for (const [pbx, lease] of leases.current()) {
        const mine = [...guids].filter((guid) => lease.handed.has(guid))
        if (mine.length === 0) continue
        yield* leases.guarded(pbx, lease, handover.confirmWritten(pbx, lease, mine)).pipe(
          Effect.catch((error) => Effect.logWarning(`cluster: confirming desired presences failed: ${clip(error.message, 300)}`))
        )
      }
    }
  }).pipe(Effect.forkScoped)
})

/**
 * Handing a PBX's pending rows to the writer and confirming in the store what the writer confirmed.
 * `look` reads above the lease's read bound, or (`full`, the safety interval) every pending row, which also finds a
 * row whose smaller version committed after a larger one was read; either way a row already handed is skipped.
 */
export const makeHandover = (sides: Sides, timing: { readonly lookWoken: () => number | undefined }) => {
  const { real, store, tenant } = sides
  /** Confirms in the store those of `guids` handed on `lease` whose command the writer holds as confirmed. */
  const confirmWritten = Effect.fnUntraced(function*(pbx: string, lease: Lease, guids: Iterable<string>) {
    const written = yield* real.current
    const confirmed: Array<{ guid: string; version: number }> = []
    for (const guid of guids) {
      const handed = lease.handed.get(guid)
      const last = written.get(guid)
      if (handed !== undefined && last !== undefined && commandEquals(last.command, handed.command)) {
        confirmed.push({ guid, version: handed.version })
      }
    }
    if (confirmed.length === 0) return 0
    yield* timedStage("confirm", store.desired.confirm(tenant, confirmed, { pbx, epoch: lease.epoch }))
    // A newer version handed meanwhile stays until its own confirmation.
    for (const { guid, version } of confirmed) if (lease.handed.get(guid)?.version === version) lease.handed.delete(guid)
    return confirmed.length
  })

  /** Rows read or put on `lease` to the writer, each unless a version as new was handed already; then confirmed. */
  const handRows = Effect.fnUntraced(function*(pbx: string, lease: Lease, rows: ReadonlyArray<VersionedCommand>) {
    const fresh = rows.filter((row) => (lease.handed.get(row.guid)?.version ?? 0) < row.version)
    for (const row of fresh) {
      if (row.waited !== undefined) yield* recordStage("row_to_read", row.waited)
      lease.handed.set(row.guid, { version: row.version, command: row.command })
    }
    if (fresh.length > 0) {
      yield* timedStage("pbx_send", real.writeAll(fresh.map((row) => ({ guid: row.guid, command: row.command }))))
    }
    // A command the writer already holds as confirmed is not written again: it is confirmed here at once.
    const confirmed = yield* confirmWritten(pbx, lease, fresh.map((row) => row.guid))
    yield* Effect.logDebug(`cluster: PBX ${pbx} of ${tenant}: ${fresh.length} desired presences handed over, ${confirmed} confirmed already`)
  })

  const look = Effect.fnUntraced(function*(pbx: string, lease: Lease, full: boolean) {
    let after = full ? 0 : lease.readBound
    while (true) {
      const rows = yield* store.desired.pending(tenant, pbx, pageSize, lease.epoch, after)
      if (rows.length === 0) return
      const woken = timing.lookWoken()
      if (woken !== undefined) yield* recordStageSince("wake_to_read", woken)
      after = rows[rows.length - 1]!.version
      lease.readBound = Math.max(lease.readBound, after)
      yield* handRows(pbx, lease, rows)
      if (rows.length < pageSize) return
    }
  })

  /**
   * An own put's rows of `pbx` (in version order) handed over without reading them: only on the lease the put saw
   * (same epoch, held here since), and only when this lease had read every other row of the PBX pending at the put —
   * then reading above the read bound would have returned exactly these rows. False: the caller reads instead.
   */
  const handPut = Effect.fnUntraced(function*(pbx: string, lease: Held | undefined, rows: ReadonlyArray<VersionedCommand>) {
    if (lease === undefined || lease === "lost" || rows.length === 0) return false
    let bound = lease.readBound
    for (const row of rows) {
      if (row.lease === undefined || row.lease.epoch !== lease.epoch || row.lease.unread > bound) return false
      bound = Math.max(bound, row.version)
    }
    // A row at or below the read bound was read (and handed) on this lease already.
    const unread = rows.filter((row) => row.version > lease.readBound)
    lease.readBound = bound
    yield* handRows(pbx, lease, unread)
    return true
  })
  return { look, handPut, confirmWritten }
}
