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
}

export interface TenantSupervisor {
  /** Each running (or retrying) tenant's state, for the status overview. */
  readonly states: SubscriptionRef.SubscriptionRef<ReadonlyMap<TenantId, TenantRunState>>
}

const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}

/** Starts the supervision in the current scope; closing the scope stops every tenant. */
export const superviseTenants = Effect.fnUntraced(function*(store: StateStore["Service"], options: TenantSupervisorOptions) {
  const scope = yield* Effect.scope
  const first = Duration.toMillis(Duration.fromInputUnsafe(options.firstPause ?? "1 second"))
  const max = Duration.toMillis(Duration.fromInputUnsafe(options.maxPause ?? "5 minutes"))
  const pauseAfter = (failures: number) => Duration.millis(Math.min(max, first * 2 ** Math.min(failures - 1, 30)))
  const states = yield* SubscriptionRef.make<ReadonlyMap<TenantId, TenantRunState>>(new Map())
  const running = new Map<TenantId, { readonly version: number; readonly fiber: Fiber.Fiber<unknown> }>()

  const setState = (id: TenantId, state: TenantRunState | undefined) =>
    SubscriptionRef.update(states, (current) => {
      const next = new Map(current)
      if (state === undefined) next.delete(id)
      else next.set(id, state)
      return next
    })

  /** One tenant's work, started again after each failure; it ends only when interrupted or the tenant is gone. */
  const work = (id: TenantId, version: number) => {
    const attempt = (failures: number): Effect.Effect<void> =>
      Effect.gen(function*() {
        const tenant = yield* store.tenants.get(id)
        // Removed meanwhile: the removal's change stops the (already finished) entry.
        if (Option.isNone(tenant)) return
        yield* setState(id, { state: "running", version: tenant.value.version })
        if (failures > 0) yield* Effect.logInfo(`tenant ${id}: started again`)
        yield* Effect.scoped(options.run(tenant.value))
        return yield* Effect.fail(new Error("its work ended by itself"))
      }).pipe(
        Effect.catchCause((cause) => {
          if (Cause.hasInterruptsOnly(cause)) return Effect.interrupt
          const error = describe(cause)
          return Effect.logError(`tenant ${id} failed: ${error}; starting it again in ${Duration.format(pauseAfter(failures + 1))}`).pipe(
            Effect.andThen(setState(id, { state: "failed", version, error, failures: failures + 1 })),
            Effect.andThen(Effect.sleep(pauseAfter(failures + 1))),
            Effect.andThen(Effect.suspend(() => attempt(failures + 1)))
          )
        })
      )
    return attempt(0).pipe(Effect.annotateLogs({ tenant: id }))
  }

  const stop = Effect.fnUntraced(function*(id: TenantId) {
    const entry = running.get(id)
    if (entry === undefined) return
    running.delete(id)
    yield* Fiber.interrupt(entry.fiber)
    yield* setState(id, undefined)
    yield* Effect.logInfo(`tenant ${id}: stopped`)
  })

  const start = Effect.fnUntraced(function*(id: TenantId, version: number) {
    yield* stop(id)
    const fiber = yield* Effect.forkIn(work(id, version), scope)
    running.set(id, { version, fiber })
    yield* Effect.logInfo(`tenant ${id}: starting (version ${version})`)
  })

  const remove = (id: TenantId) =>
    running.has(id)
      ? (options.removing?.(id) ?? Effect.void).pipe(Effect.andThen(stop(id)), Effect.andThen(options.removed?.(id) ?? Effect.void))
      : Effect.void

  const apply = (change: TenantChange) =>
    change.kind === "removed"
      ? remove(change.id)
      : running.get(change.id)?.version === change.version
      ? Effect.void
      : start(change.id, change.version)

  /** After the stream failed: each running tenant checked against the store (gone → stopped, changed → restarted). */
  const recheck = Effect.forEach([...running.keys()], (id) =>
    store.tenants.get(id).pipe(
      Effect.flatMap((found) =>
        Option.isNone(found) ? remove(id) : found.value.version === running.get(id)?.version ? Effect.void : start(id, found.value.version)
      ),
      Effect.catch(() => Effect.void)
    ), { discard: true })

  const follow = (failures: number): Effect.Effect<void> =>
    store.tenants.changes.pipe(
      Stream.runForEach(apply),
      Effect.catch((error) =>
        Effect.logError(`the tenants cannot be followed: ${error.message}; again in ${Duration.format(pauseAfter(failures + 1))}`).pipe(
          Effect.andThen(Effect.sleep(pauseAfter(failures + 1))),
          Effect.andThen(recheck),
          Effect.andThen(Effect.suspend(() => follow(failures + 1)))
        )
      )
    )

  yield* Effect.forkIn(follow(0), scope)
  // All at once: each tenant's stop takes its own shutdown's time (the flow's last writes, the server closing), and one
  // after the other they would add up past a shutdown grace period with many tenants.
  yield* Scope.addFinalizer(scope, Effect.suspend(() => Effect.forEach([...running.keys()], stop, { concurrency: "unbounded", discard: true })))
  return { states } satisfies TenantSupervisor
})
