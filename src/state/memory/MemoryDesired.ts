/**
 * Desired PBX commands and tenant owners of the file store, in memory: with files there is one process, which owns
 * every tenant and holds every PBX socket, so nothing needs to outlive it. Same rules as the database: latest wins per
 * user, versions only grow, a write with a stale owner epoch is refused.
 */
import { Effect, Option, PubSub, Stream } from "effect"
import { commandEquals } from "../../domain/PbxPresence.ts"
import type { Confirmation, DesiredCommand, HeldCommand, PbxLease, TenantId, TenantOwner, VersionedCommand } from "../Records.ts"
import type { DesiredWakeup } from "../StateStoreShape.ts"
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

export const leaseLost = (tenant: TenantId, pbx: string, epoch: number, current: number) =>
  new StateStoreError({
    reason: "Fenced",
    tenant,
    message: `the lease of PBX ${pbx}'s socket with epoch ${epoch} is no longer current (now ${current}): another runner holds its socket; this one must stop sending to it`
  })

const versioned = (guid: string, row: Row): VersionedCommand => ({ pbx: row.pbx, guid, command: row.command, version: row.version })

/** One PBX's commands newer than what it confirmed (and than `after`), oldest version first. */
const pendingOf = (table: Map<string, Row> | undefined, pbx: string, limit: number, after: number): ReadonlyArray<VersionedCommand> =>
  [...(table ?? new Map<string, Row>()).entries()]
    .filter(([, row]) => row.pbx === pbx && row.version > row.confirmed && row.version > after)
    .sort(([, a], [, b]) => a.version - b.version)
    .slice(0, limit)
    .map(([guid, row]) => versioned(guid, row))

/** Records confirmations (of one PBX's rows only, with `pbx`); an older one never lowers a newer one. */
const confirmIn = (table: Map<string, Row> | undefined, confirmations: ReadonlyArray<Confirmation>, pbx?: string): void => {
  if (table === undefined) return
  for (const { guid, version } of confirmations) {
    const row = table.get(guid)
    if (row !== undefined && (pbx === undefined || row.pbx === pbx) && row.confirmed < version && version <= row.version) table.set(guid, { ...row, confirmed: version })
  }
}

/** The commands confirmed in their latest version. */
const confirmedOf = (table: Map<string, Row> | undefined): ReadonlyArray<VersionedCommand> => {
  const held: Array<VersionedCommand> = []
  for (const [guid, row] of table ?? []) if (row.confirmed === row.version) held.push(versioned(guid, row))
  return held
}

/** Each named user's row with the runner holding its PBX's lease (if any). */
const latestOf = (
  table: Map<string, Row> | undefined,
  guids: ReadonlyArray<string>,
  holderOf: (pbx: string) => string | undefined
): ReadonlyArray<HeldCommand> => {
  const found: Array<HeldCommand> = []
  for (const guid of new Set(guids)) {
    const row = table?.get(guid)
    if (row !== undefined) found.push({ ...versioned(guid, row), holder: holderOf(row.pbx) })
  }
  return found
}

/** Tenant owners: each claim makes the claimer the owner with the next epoch. */
const ownersOf = (owners: Map<TenantId, TenantOwner>) => ({
  claim: Effect.fn("StateStore.owners.claim")(function*(tenant: TenantId, runner: string) {
    const owner: TenantOwner = { runner, epoch: (owners.get(tenant)?.epoch ?? 0) + 1 }
    owners.set(tenant, owner)
    return owner
  }),
  get: Effect.fn("StateStore.owners.get")(function*(tenant: TenantId) {
    return Option.fromNullishOr(owners.get(tenant))
  })
})

/** Wake-ups from the moment of subscription; a `resync` first, as the database store sends after each (re)connect. */
const wakeupStream = (wakeups: PubSub.PubSub<DesiredWakeup>): Stream.Stream<DesiredWakeup> =>
  Stream.unwrap(
    PubSub.subscribe(wakeups).pipe(
      Effect.map((subscription) => Stream.concat(Stream.succeed<DesiredWakeup>({ kind: "resync" }), Stream.fromSubscription(subscription)))
    )
  )

/** The PBX socket leases, per tenant and PBX: each take the next epoch (and a wake-up of the PBX's senders). */
const memoryLeases = (wakeups: PubSub.PubSub<DesiredWakeup>) => {
  const leases = new Map<string, PbxLease>()
  const leaseKey = (tenant: TenantId, pbx: string) => `${tenant}\u0000${pbx}`
  const checkLease = (tenant: TenantId, pbx: string, epoch: number | undefined) => {
    const current = leases.get(leaseKey(tenant, pbx))?.epoch ?? 0
    return epoch === undefined || epoch === current ? Effect.void : Effect.fail(leaseLost(tenant, pbx, epoch, current))
  }
  const lease = Effect.fn("StateStore.desired.lease")(function*(tenant: TenantId, pbx: string, runner: string) {
    const taken: PbxLease = { pbx, runner, epoch: (leases.get(leaseKey(tenant, pbx))?.epoch ?? 0) + 1 }
    leases.set(leaseKey(tenant, pbx), taken)
    yield* PubSub.publish(wakeups, { kind: "changed", tenant, pbx })
    return taken
  })
  const holderOf = (tenant: TenantId, pbx: string) => leases.get(leaseKey(tenant, pbx))?.runner
  return { checkLease, lease, holderOf }
}

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

  const { checkLease, holderOf, lease } = memoryLeases(wakeups)
  const pending = Effect.fn("StateStore.desired.pending")(function*(tenant: TenantId, pbx: string, limit = 1000, epoch?: number, after = 0) {
    yield* checkLease(tenant, pbx, epoch)
    return pendingOf(rows.get(tenant), pbx, limit, after)
  })
  const confirm = Effect.fn("StateStore.desired.confirm")(
    function*(tenant: TenantId, confirmations: ReadonlyArray<Confirmation>, held?: Pick<PbxLease, "pbx" | "epoch">) {
      if (held !== undefined) yield* checkLease(tenant, held.pbx, held.epoch)
      confirmIn(rows.get(tenant), confirmations, held?.pbx)
    }
  )
  const confirmed = Effect.fn("StateStore.desired.confirmed")(function*(tenant: TenantId) {
    return confirmedOf(rows.get(tenant))
  })
  const latest = Effect.fn("StateStore.desired.latest")(function*(tenant: TenantId, guids: ReadonlyArray<string>) {
    return latestOf(rows.get(tenant), guids, (pbx) => holderOf(tenant, pbx))
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

  const forget = (tenant: TenantId) =>
    Effect.sync(() => {
      rows.delete(tenant)
    })

  return {
    desired: { put, pending, confirm, confirmed, latest, resend, lease, wakeups: wakeupStream(wakeups) },
    owners: ownersOf(owners),
    restore,
    forget
  }
})
