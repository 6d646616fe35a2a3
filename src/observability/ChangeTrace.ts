/**
 * One trace per presence change, across the queues between the webhook and the PBX: each hop starts its span below
 * the span the change carries (webhook → decrypt → map → SetPresence) and hands its own span on with the change.
 * A change without a span (a read, not a notification) starts none.
 */
import { Clock, Effect, type Exit, type Tracer } from "effect"

/** A span below `parent`, or none when the change carries no trace. */
export const childSpan = (
  name: string,
  parent: Tracer.AnySpan | undefined,
  options: { readonly attributes?: Record<string, unknown>; readonly kind?: Tracer.SpanKind } = {}
): Effect.Effect<Tracer.Span | undefined> =>
  parent === undefined ? Effect.succeed(undefined) : Effect.makeSpan(name, { parent, ...options })

/** Ends a hop's span (if any) now, with the hop's outcome and what it decided. */
export const endSpan = (
  span: Tracer.Span | undefined,
  exit: Exit.Exit<unknown, unknown>,
  attributes: Record<string, unknown> = {}
): Effect.Effect<void> =>
  span === undefined ? Effect.void : Effect.clockWith((clock: Clock.Clock) =>
    Effect.sync(() => {
      for (const [key, value] of Object.entries(attributes)) span.attribute(key, value)
      span.end(clock.currentTimeNanosUnsafe(), exit)
    })
  )
