/**
 * A small OTLP/HTTP receiver for the tests (JSON encoding): it keeps every body posted to /v1/traces, /v1/metrics and
 * /v1/logs, answers 200 as a collector does, and lets a test wait on a Deferred until what it expects has arrived.
 */
import { createServer } from "node:http"
import { Deferred, Effect, type Scope } from "effect"

export interface OtlpValue {
  readonly stringValue?: string
  readonly intValue?: string | number
  readonly boolValue?: boolean
  readonly doubleValue?: number
  readonly arrayValue?: { readonly values: ReadonlyArray<OtlpValue> }
}
export interface OtlpAttribute {
  readonly key: string
  readonly value: OtlpValue
}
export interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly attributes: ReadonlyArray<OtlpAttribute>
}

interface ResourceSpans {
  readonly resource: { readonly attributes: ReadonlyArray<OtlpAttribute> }
  readonly scopeSpans: ReadonlyArray<{ readonly spans: ReadonlyArray<OtlpSpan> }>
}

export interface Received {
  /** Every body as text, by signal. */
  readonly bodies: { readonly traces: Array<string>; readonly metrics: Array<string>; readonly logs: Array<string> }
  readonly spans: Array<OtlpSpan>
  readonly resources: Array<ReadonlyArray<OtlpAttribute>>
}

export const attribute = (attributes: ReadonlyArray<OtlpAttribute>, key: string): string | undefined => {
  const value = attributes.find((a) => a.key === key)?.value
  return value === undefined ? undefined : String(value.stringValue ?? value.intValue ?? value.boolValue ?? value.doubleValue)
}

/**
 * Starts the receiver on a free port for the scope. `until(check)` gives a Deferred completed as soon as `check`
 * holds for what was received (checked after every body).
 */
export const startOtlpReceiver: Effect.Effect<
  {
    readonly url: string
    readonly received: Received
    readonly until: <A>(check: (received: Received) => A | undefined) => Effect.Effect<A>
  },
  never,
  Scope.Scope
> = Effect.gen(function*() {
  const received: Received = { bodies: { traces: [], metrics: [], logs: [] }, spans: [], resources: [] }
  const waiting: Array<() => void> = []
  const server = createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8")
      const signal = request.url?.replace(/^\/v1\//, "")
      if (signal === "traces" || signal === "metrics" || signal === "logs") {
        received.bodies[signal].push(body)
        if (signal === "traces") {
          for (const resourceSpans of (JSON.parse(body) as { resourceSpans: ReadonlyArray<ResourceSpans> }).resourceSpans) {
            received.resources.push(resourceSpans.resource.attributes)
            for (const scope of resourceSpans.scopeSpans) received.spans.push(...scope.spans)
          }
        }
      }
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
      for (const wake of waiting.splice(0)) wake()
    })
  })
  const port = yield* Effect.acquireRelease(
    Effect.callback<number>((resume) => {
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0))
      })
    }),
    () => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
  )
  const until = <A>(check: (received: Received) => A | undefined) =>
    Effect.gen(function*() {
      const done = yield* Deferred.make<A>()
      const test = () => {
        const value = check(received)
        if (value !== undefined) Deferred.doneUnsafe(done, Effect.succeed(value))
        else waiting.push(test)
      }
      test()
      return yield* Deferred.await(done)
    })
  return { url: `http://127.0.0.1:${port}`, received, until }
})
