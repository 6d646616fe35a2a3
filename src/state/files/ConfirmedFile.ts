/**
 * The file store's desired commands live in memory (one process); what the PBXs confirmed is also kept in one file per
 * tenant (`pbx-confirmed.json`), so that the next start knows what each PBX already holds and does not write every
 * user again. Written on a debounce — 2 s after the changes stop, at the latest 30 s after the first change not yet
 * written (a busy tenant's confirmations never stop for long) — and once more when the store closes; read when the
 * tenant's commands are first touched. Each save writes the whole file (10,000 users: ≈ 800 KB, ≈ 15 ms of CPU), so
 * it is not repeated every 2 s while presence keeps changing; a crash loses at most the last 30 s of confirmations,
 * whose users the next start writes again. The file is a cache: one that cannot be read is logged and left out (every user is then
 * written again, as without it), never a reason not to start.
 */
import { Clock, Duration, Effect, Schema, type Scope, Semaphore } from "effect"
import { PbxActivity, type PbxPresenceCommand } from "../../domain/PbxPresence.ts"
import type { DesiredCommand, TenantId, VersionedCommand } from "../Records.ts"
import type { StateStoreShape } from "../StateStoreShape.ts"
import { readJson, writeJson } from "./JsonFiles.ts"

/** One user: [guid, pbx] for a cleared presence, [guid, pbx, activity, note] for a set one. */
const Entry = Schema.Union([
  Schema.Tuple([Schema.String, Schema.String]),
  Schema.Tuple([Schema.String, Schema.String, PbxActivity, Schema.String])
])
const ConfirmedFile = Schema.Struct({ format: Schema.Literal(1), users: Schema.Array(Entry) })
const decodeFile = Schema.decodeUnknownResult(ConfirmedFile)

const entryOf = ({ guid, pbx, command }: VersionedCommand): typeof Entry.Type =>
  command._tag === "Clear" ? [guid, pbx] : [guid, pbx, command.activity, command.note]

const commandOf = (entry: typeof Entry.Type): DesiredCommand => {
  const command: PbxPresenceCommand = entry.length === 2 ? { _tag: "Clear" } : { _tag: "Set", activity: entry[2], note: entry[3] }
  return { guid: entry[0], pbx: entry[1], command }
}

type Desired = StateStoreShape["desired"]

export interface KeptDesired {
  readonly desired: Desired
  /** A removed tenant: nothing of it is saved any more (waits for a save under way). */
  readonly forget: (tenant: TenantId) => Effect.Effect<void>
}

/**
 * An effect that, each time it runs, makes `save` run (forked in `scope`) once the runs have been quiet for `debounce`,
 * at the latest `maxWait` after the first run not yet followed by a save.
 */
const debounced = (
  save: Effect.Effect<void>,
  scope: Scope.Scope,
  options: { readonly debounce?: Duration.Input | undefined; readonly maxWait?: Duration.Input | undefined }
): Effect.Effect<void> => {
  const debounceMillis = Duration.toMillis(Duration.fromInputUnsafe(options.debounce ?? Duration.seconds(2)))
  const maxWaitMillis = Duration.toMillis(Duration.fromInputUnsafe(options.maxWait ?? Duration.seconds(30)))
  let scheduled = false
  let lastChangeAt = 0
  const quiet = Effect.fnUntraced(function*(firstAt: number) {
    while (true) {
      const until = Math.min(lastChangeAt + debounceMillis, firstAt + maxWaitMillis)
      const now = yield* Clock.currentTimeMillis
      if (now >= until) return
      yield* Effect.sleep(until - now)
    }
  })
  return Effect.flatMap(Clock.currentTimeMillis, (now) => {
    lastChangeAt = now
    if (scheduled) return Effect.void
    scheduled = true
    return Effect.asVoid(Effect.forkIn(Effect.andThen(quiet(now), Effect.andThen(Effect.sync(() => (scheduled = false)), save)), scope))
  })
}

/** Wraps the in-memory desired commands so that each tenant's confirmed ones outlive the process (see above). */
export const keepConfirmedInFiles = Effect.fnUntraced(function*(options: {
  readonly desired: Desired
  readonly restore: (tenant: TenantId, commands: ReadonlyArray<DesiredCommand>) => Effect.Effect<void>
  readonly fileOf: (tenant: TenantId) => string
  /** Quiet time after the last change before the file is written (2 s). */
  readonly debounce?: Duration.Input
  /** Time after the first unsaved change by which it is written even if changes go on (30 s). */
  readonly maxWait?: Duration.Input
  /** Called after each tenant's file was written (tests wait on it). */
  readonly onSaved?: (tenant: TenantId) => void
}): Effect.fn.Return<KeptDesired, never, Scope.Scope> {
  const { desired, restore, fileOf } = options
  const loaded = new Set<TenantId>()
  const dirty = new Set<TenantId>()
  const saving = yield* Semaphore.make(1)

  const load = (tenant: TenantId) =>
    Effect.suspend(() => {
      if (loaded.has(tenant)) return Effect.void
      loaded.add(tenant)
      const file = fileOf(tenant)
      return readJson(file, tenant).pipe(
        Effect.flatMap((stored) => {
          if (stored._tag === "None") return Effect.void
          const decoded = decodeFile(stored.value)
          if (decoded._tag === "Failure") return Effect.logWarning(`${file} is not a file of confirmed PBX commands; every user is written again`)
          return restore(tenant, decoded.success.users.map(commandOf))
        }),
        Effect.catch((error) => Effect.logWarning(`${error.message}; every user is written again`))
      )
    })

  // Uninterruptible: a save that began always ends, so a stop during one cannot lose a tenant from `dirty`.
  const saveDirty = saving.withPermits(1)(Effect.uninterruptible(Effect.gen(function*() {
    for (const tenant of [...dirty]) {
      dirty.delete(tenant)
      const held = yield* desired.confirmed(tenant).pipe(Effect.orElseSucceed(() => []))
      yield* writeJson(fileOf(tenant), { format: 1, users: held.map(entryOf) }, tenant).pipe(
        Effect.andThen(Effect.sync(() => options.onSaved?.(tenant))),
        Effect.catch((error) => Effect.logWarning(`the confirmed PBX commands were not kept: ${error.message}`))
      )
    }
  })))

  const scheduleSave = debounced(saveDirty, yield* Effect.scope, options)
  const changed = (tenant: TenantId) => Effect.andThen(Effect.sync(() => dirty.add(tenant)), scheduleSave)
  yield* Effect.addFinalizer(() => saveDirty)

  const desiredKept: Desired = {
    put: (tenant, epoch, commands) => load(tenant).pipe(Effect.andThen(desired.put(tenant, epoch, commands)), Effect.tap(() => changed(tenant))),
    pending: (tenant, pbx, limit, lease, after) => Effect.andThen(load(tenant), desired.pending(tenant, pbx, limit, lease, after)),
    confirm: (tenant, confirmations, lease) =>
      load(tenant).pipe(Effect.andThen(desired.confirm(tenant, confirmations, lease)), Effect.tap(() => changed(tenant))),
    confirmed: (tenant) => Effect.andThen(load(tenant), desired.confirmed(tenant)),
    latest: (tenant, guids) => Effect.andThen(load(tenant), desired.latest(tenant, guids)),
    resend: (tenant, pbx) => load(tenant).pipe(Effect.andThen(desired.resend(tenant, pbx)), Effect.tap(() => changed(tenant))),
    lease: desired.lease,
    wakeups: desired.wakeups,
    heldWakeups: desired.heldWakeups
  }
  const forget = (tenant: TenantId) =>
    saving.withPermits(1)(Effect.sync(() => {
      dirty.delete(tenant)
      loaded.delete(tenant)
    }))
  return { desired: desiredKept, forget }
})
