/**
 * One trace per presence change, across the queues between the webhook and the PBX: each hop starts its span below
 * the span the change carries (webhook → decrypt → map → SetPresence) and hands its own span on with the change.
 * A change without a span (a read, not a notification) starts none.
 */
import { Clock, Effect, type Exit, Tracer } from "effect"

/**
 * Whether a tracing backend (OpenTelemetry, docs/operations.md) is installed. Without one, effect's native tracer keeps
 * spans in memory only, where nothing ever reads them: a change then carries no span and its hops start none, which
 * spares every change four span objects on the way to the PBX.
 */
export const tracing: Effect.Effect<boolean> = Effect.map(Effect.tracer, (tracer) => tracer !== Tracer.nativeTracer)

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
