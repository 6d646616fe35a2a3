/**
 * Desired PBX commands and tenant owners of the file store, in memory: with files there is one process, which owns
 * every tenant and holds every PBX socket, so nothing needs to outlive it. Same rules as the database: latest wins per
 * user, versions only grow, a write with a stale owner epoch is refused.
 */
import { Effect, Option, PubSub, Stream } from "effect"
import { commandEquals } from "../../domain/PbxPresence.ts"
import type { Confirmation, DesiredCommand, TenantId, TenantOwner, VersionedCommand } from "../Records.ts"
import type { DesiredWakeup } from "../StateStore.ts"
import { StateStoreError } from "../StateStoreError.ts"

interface Row {
  readonly pbx: string
  readonly command: DesiredCommand["command"]
  readonly version: number
  readonly confirmed: number
}

/** Later entries for the same user replace earlier ones, as if written one after the other. */
export const latestPerUser = (commands: ReadonlyArray<DesiredCommand>): ReadonlyArray<DesiredCommand> =>
  [...new Map(commands.map((c) => [c.guid, c])).values()]

export const fenced = (tenant: TenantId, epoch: number, current: number) =>
  new StateStoreError({
    reason: "Fenced",
    tenant,
    message: `owner epoch ${epoch} is no longer current (now ${current}): another runner owns tenant ${tenant}; this one must stop writing`
  })

export const makeMemoryDesired = Effect.fnUntraced(function*() {
  const rows = new Map<TenantId, Map<string, Row>>()
  const owners = new Map<TenantId, TenantOwner>()
  const wakeups = yield* PubSub.unbounded<DesiredWakeup>()
  let lastVersion = 0

  const tenantRows = (tenant: TenantId) => {
    const existing = rows.get(tenant)
    if (existing !== undefined) return existing
    const created = new Map<string, Row>()
    rows.set(tenant, created)
    return created
  }

  const put = Effect.fn("StateStore.desired.put")(function*(tenant: TenantId, epoch: number, commands: ReadonlyArray<DesiredCommand>) {
    const current = owners.get(tenant)?.epoch ?? 0
    if (epoch !== current) return yield* fenced(tenant, epoch, current)
    const table = tenantRows(tenant)
    const changed: Array<VersionedCommand> = []
    for (const { pbx, guid, command } of latestPerUser(commands)) {
      const row = table.get(guid)
      if (row !== undefined && row.pbx === pbx && commandEquals(row.command, command)) continue
      lastVersion += 1
      table.set(guid, { pbx, command, version: lastVersion, confirmed: row?.pbx === pbx ? row.confirmed : 0 })
      changed.push({ pbx, guid, command, version: lastVersion })
    }
    for (const pbx of new Set(changed.map((c) => c.pbx))) yield* PubSub.publish(wakeups, { kind: "changed", tenant, pbx })
    return changed
  })

  const pending = Effect.fn("StateStore.desired.pending")(function*(tenant: TenantId, pbx: string, limit = 1000) {
    const table = rows.get(tenant) ?? new Map<string, Row>()
    return [...table.entries()]
      .filter(([, row]) => row.pbx === pbx && row.version > row.confirmed)
      .sort(([, a], [, b]) => a.version - b.version)
      .slice(0, limit)
      .map(([guid, row]): VersionedCommand => ({ pbx: row.pbx, guid, command: row.command, version: row.version }))
  })

  const confirm = Effect.fn("StateStore.desired.confirm")(function*(tenant: TenantId, confirmations: ReadonlyArray<Confirmation>) {
    const table = rows.get(tenant)
    if (table === undefined) return
    for (const { guid, version } of confirmations) {
      const row = table.get(guid)
      if (row !== undefined && row.confirmed < version && version <= row.version) table.set(guid, { ...row, confirmed: version })
    }
  })

  const confirmed = Effect.fn("StateStore.desired.confirmed")(function*(tenant: TenantId) {
    const table = rows.get(tenant) ?? new Map<string, Row>()
    const held: Array<VersionedCommand> = []
    for (const [guid, row] of table) {
      if (row.confirmed === row.version) held.push({ pbx: row.pbx, guid, command: row.command, version: row.version })
    }
    return held
  })

  /** Commands a PBX held when an earlier process stopped (files/ConfirmedFile.ts): confirmed, unless newer ones exist. */
  const restore = (tenant: TenantId, commands: ReadonlyArray<DesiredCommand>) =>
    Effect.sync(() => {
      const table = tenantRows(tenant)
      for (const { pbx, guid, command } of commands) {
        if (table.has(guid)) continue
        lastVersion += 1
        table.set(guid, { pbx, command, version: lastVersion, confirmed: lastVersion })
      }
    })

  const resend = Effect.fn("StateStore.desired.resend")(function*(tenant: TenantId, pbx: string) {
    const table = rows.get(tenant)
    if (table === undefined) return
    for (const [guid, row] of table) if (row.pbx === pbx) table.set(guid, { ...row, confirmed: 0 })
    yield* PubSub.publish(wakeups, { kind: "changed", tenant, pbx })
  })

  const claim = Effect.fn("StateStore.owners.claim")(function*(tenant: TenantId, runner: string) {
    const owner: TenantOwner = { runner, epoch: (owners.get(tenant)?.epoch ?? 0) + 1 }
    owners.set(tenant, owner)
    return owner
  })

  const get = Effect.fn("StateStore.owners.get")(function*(tenant: TenantId) {
    return Option.fromNullishOr(owners.get(tenant))
  })

  /** Wake-ups from the moment of subscription; a `resync` first, as the database store sends after each (re)connect. */
  const stream: Stream.Stream<DesiredWakeup> = Stream.unwrap(
    PubSub.subscribe(wakeups).pipe(
      Effect.map((subscription) => Stream.concat(Stream.succeed<DesiredWakeup>({ kind: "resync" }), Stream.fromSubscription(subscription)))
    )
  )

  const forget = (tenant: TenantId) =>
    Effect.sync(() => {
      rows.delete(tenant)
    })

  return {
    desired: { put, pending, confirm, confirmed, resend, wakeups: stream },
    owners: { claim, get },
    restore,
    forget
  }
})
