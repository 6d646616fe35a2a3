/**
 * Runs every stored tenant's work, kept in step with the store: a tenant added is started, one updated is stopped
 * and started again with its new configuration, one removed is stopped (its work's finalizers run before this
 * returns). Each tenant runs in a fiber of its own; a tenant that cannot be read (a secret sealed with a key that is
 * not configured) or whose work fails is logged with its id, shown as failed with the reason, and started again after
 * a growing pause (1 s doubling to 5 min) — never affecting another tenant. When the changes stream fails (the
 * database gone) it is followed again after a pause, first checking each running tenant against the store, so a
 * tenant removed or changed meanwhile is not missed.
 */
import { Cause, Duration, Effect, Fiber, Option, Scope, Stream, SubscriptionRef } from "effect"
import type { Tenant, TenantChange, TenantId } from "../state/Records.ts"
import type { StateStore } from "../state/StateStore.ts"

export type TenantRunState =
  | { readonly state: "running"; readonly version: number }
  | { readonly state: "failed"; readonly version: number; readonly error: string; readonly failures: number }

export interface TenantSupervisorOptions {
  /** A tenant's work, in a scope closed when the tenant stops: it runs until interrupted; a failure is retried. */
  readonly run: (tenant: Tenant) => Effect.Effect<unknown, unknown, Scope.Scope>
  /** The first pause after a failure; it doubles up to `maxPause`. Default 1 s. */
  readonly firstPause?: Duration.Input
  readonly maxPause?: Duration.Input
  /** Called when the store says the tenant was removed, before its work is stopped (its stop then deletes what it owns at Graph). */
  readonly removing?: (id: TenantId) => Effect.Effect<void>
  /** Called once a removed tenant's work has stopped. */
  readonly removed?: (id: TenantId) => Effect.Effect<void>
  /**
   * Called with each change as soon as it is read, before the changes ahead of it are applied: a removal that arrives
   * while an update still stops the tenant's old work is known to that stop (which then deletes what it owns at Graph).
   */
  readonly seen?: (change: TenantChange) => Effect.Effect<void>
}

export interface TenantSupervisor {
  /** Each running (or retrying) tenant's state, for the status overview. */
  readonly states: SubscriptionRef.SubscriptionRef<ReadonlyMap<TenantId, TenantRunState>>
}

const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}

/** What the supervision's steps share: the store, the options, the scope the tenants' fibers run in, and their state. */
interface Supervision {
  readonly store: StateStore["Service"]
  readonly options: TenantSupervisorOptions
  readonly scope: Scope.Scope
  readonly pauseAfter: (failures: number) => Duration.Duration
  readonly states: SubscriptionRef.SubscriptionRef<ReadonlyMap<TenantId, TenantRunState>>
  readonly running: Map<TenantId, { readonly version: number; readonly fiber: Fiber.Fiber<unknown> }>
}

/** The pause after the n-th failure in a row: `firstPause` doubling up to `maxPause`. */
const pauses = (options: TenantSupervisorOptions) => {
  const first = Duration.toMillis(Duration.fromInputUnsafe(options.firstPause ?? "1 second"))
  const max = Duration.toMillis(Duration.fromInputUnsafe(options.maxPause ?? "5 minutes"))
  return (failures: number) => Duration.millis(Math.min(max, first * 2 ** Math.min(failures - 1, 30)))
}

const setState = (s: Supervision, id: TenantId, state: TenantRunState | undefined) =>
  SubscriptionRef.update(s.states, (current) => {
    const next = new Map(current)
    if (state === undefined) next.delete(id)
    else next.set(id, state)
    return next
  })

/** One tenant's work, started again after each failure; it ends only when interrupted or the tenant is gone. */
const work = (s: Supervision, id: TenantId, version: number) => {
  const attempt = (failures: number): Effect.Effect<void> =>
    Effect.gen(function*() {
      const tenant = yield* s.store.tenants.get(id)
      // Removed meanwhile: the removal's change stops the (already finished) entry.
      if (Option.isNone(tenant)) return
      yield* setState(s, id, { state: "running", version: tenant.value.version })
      if (failures > 0) yield* Effect.logInfo(`tenant ${id}: started again`)
      yield* Effect.scoped(s.options.run(tenant.value))
      return yield* Effect.fail(new Error("its work ended by itself"))
    }).pipe(
      Effect.catchCause((cause) => {
        if (Cause.hasInterruptsOnly(cause)) return Effect.interrupt
        const error = describe(cause)
        return Effect.logError(`tenant ${id} failed: ${error}; starting it again in ${Duration.format(s.pauseAfter(failures + 1))}`).pipe(
          Effect.andThen(setState(s, id, { state: "failed", version, error, failures: failures + 1 })),
          Effect.andThen(Effect.sleep(s.pauseAfter(failures + 1))),
          Effect.andThen(Effect.suspend(() => attempt(failures + 1)))
        )
      })
    )
  return attempt(0).pipe(Effect.annotateLogs({ tenant: id }))
}

const stop = Effect.fnUntraced(function*(s: Supervision, id: TenantId) {
  const entry = s.running.get(id)
  if (entry === undefined) return
  s.running.delete(id)
  yield* Fiber.interrupt(entry.fiber)
  yield* setState(s, id, undefined)
  yield* Effect.logInfo(`tenant ${id}: stopped`)
})

const start = Effect.fnUntraced(function*(s: Supervision, id: TenantId, version: number) {
  yield* stop(s, id)
  const fiber = yield* Effect.forkIn(work(s, id, version), s.scope)
  s.running.set(id, { version, fiber })
  yield* Effect.logInfo(`tenant ${id}: starting (version ${version})`)
})

const remove = (s: Supervision, id: TenantId) =>
  s.running.has(id)
    ? (s.options.removing?.(id) ?? Effect.void).pipe(Effect.andThen(stop(s, id)), Effect.andThen(s.options.removed?.(id) ?? Effect.void))
    : Effect.void

const apply = (s: Supervision, change: TenantChange) =>
  change.kind === "removed"
    ? remove(s, change.id)
    : s.running.get(change.id)?.version === change.version
    ? Effect.void
    : start(s, change.id, change.version)

/**
 * After the stream failed: each tenant running at that moment checked against the store (gone → stopped, changed →
 * restarted). The running tenants are read when the check runs, after the pause.
 */
const recheck = (s: Supervision) =>
  Effect.suspend(() =>
    Effect.forEach([...s.running.keys()], (id) =>
      s.store.tenants.get(id).pipe(
        Effect.flatMap((found) =>
          Option.isNone(found) ? remove(s, id) : found.value.version === s.running.get(id)?.version ? Effect.void : start(s, id, found.value.version)
        ),
        Effect.catch(() => Effect.void)
      ), { discard: true }))

const follow = (s: Supervision, failures: number): Effect.Effect<void> =>
  s.store.tenants.changes.pipe(
    Stream.tap((change) => s.options.seen?.(change) ?? Effect.void),
    Stream.buffer({ capacity: "unbounded" }),
    Stream.runForEach((change) => apply(s, change)),
    Effect.catch((error) =>
      Effect.logError(`the tenants cannot be followed: ${error.message}; again in ${Duration.format(s.pauseAfter(failures + 1))}`).pipe(
        Effect.andThen(Effect.sleep(s.pauseAfter(failures + 1))),
        Effect.andThen(recheck(s)),
        Effect.andThen(Effect.suspend(() => follow(s, failures + 1)))
      )
    )
  )

/** Starts the supervision in the current scope; closing the scope stops every tenant. */
export const superviseTenants = Effect.fnUntraced(function*(store: StateStore["Service"], options: TenantSupervisorOptions) {
  const scope = yield* Effect.scope
  const states = yield* SubscriptionRef.make<ReadonlyMap<TenantId, TenantRunState>>(new Map())
  const s: Supervision = { store, options, scope, pauseAfter: pauses(options), states, running: new Map() }
  yield* Effect.forkIn(follow(s, 0), scope)
  // All at once: each tenant's stop takes its own shutdown's time (the flow's last writes, the server closing), and one
  // after the other they would add up past a shutdown grace period with many tenants.
  yield* Scope.addFinalizer(scope, Effect.suspend(() => Effect.forEach([...s.running.keys()], (id) => stop(s, id), { concurrency: "unbounded", discard: true })))
  return { states } satisfies TenantSupervisor
})
