/**
 * Wake-ups from a runner's one LISTEN, handed only to the fibers of the tenant they name (docs/scaling.md, "What a
 * change costs"). A runner runs a sender per tenant with a PBX socket there and a handoff drain per tenant it owns:
 * with one hub for all of them, every NOTIFY woke every one of those fibers to find that it was for another tenant —
 * tens of fiber wake-ups per change on a runner of tens of tenants. Here each tenant has a hub of its own (made with
 * its first subscriber, dropped with its last), a wake-up goes to its tenant's hub only and a resync (after every
 * re-LISTEN) to every hub.
 */
import { Effect, PubSub, type Scope } from "effect"
import type { TenantId } from "../state/StateStore.ts"

export interface TenantHubs<A> {
  /** Wake-ups for `tenant` (and every resync) for as long as the scope lasts. */
  readonly subscribe: (tenant: TenantId) => Effect.Effect<PubSub.Subscription<A>, never, Scope.Scope>
  /** To the subscribers of `tenant` only; nothing when it has none here. */
  readonly publish: (tenant: TenantId, value: A) => Effect.Effect<void>
  /** To every subscriber of every tenant (a resync). */
  readonly publishAll: (value: A) => Effect.Effect<void>
}

/** Each tenant's hub keeps the newest `capacity` wake-ups (sliding): a wake-up only asks for a look. */
export const makeTenantHubs = <A>(capacity: number): TenantHubs<A> => {
  const hubs = new Map<TenantId, { readonly hub: PubSub.PubSub<A>; subscribers: number }>()
  const acquire = (tenant: TenantId) =>
    Effect.gen(function*() {
      const held = hubs.get(tenant)
      if (held !== undefined) {
        held.subscribers += 1
        return held
      }
      const made = { hub: yield* PubSub.sliding<A>(capacity), subscribers: 1 }
      hubs.set(tenant, made)
      return made
    })
  const release = (tenant: TenantId, held: { readonly hub: PubSub.PubSub<A>; subscribers: number }) =>
    Effect.suspend(() => {
      held.subscribers -= 1
      if (held.subscribers > 0 || hubs.get(tenant) !== held) return Effect.void
      hubs.delete(tenant)
      return PubSub.shutdown(held.hub)
    })
  return {
    subscribe: (tenant) =>
      Effect.acquireRelease(acquire(tenant), (held) => release(tenant, held)).pipe(
        Effect.flatMap((held) => PubSub.subscribe(held.hub))
      ),
    publish: (tenant, value) =>
      Effect.suspend(() => {
        const held = hubs.get(tenant)
        return held === undefined ? Effect.void : PubSub.publish(held.hub, value).pipe(Effect.asVoid)
      }),
    publishAll: (value) => Effect.suspend(() => Effect.forEach([...hubs.values()], ({ hub }) => PubSub.publish(hub, value), { discard: true }))
  }
}
