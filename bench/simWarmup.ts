/**
 * The simulators' warm-up before a measured burst (BENCH_SIM_WARMUP, docs/performance.md "tenants-50: the simulators
 * warm before the burst"). The Graph simulators stand for Microsoft's cloud, which is never cold; a burst that starts
 * on cold simulators (their code not yet optimised, the first RSA/AES/HMAC use, their first HTTP requests) measures
 * the bench's own start as much as the connector, on the cores the connector needs. So before the burst, users'
 * presences are changed and changed back, and the simulators build, encrypt, sign and POST the notifications as they
 * do in the burst — but the POSTs go to a sink in the bench (202, nothing else), not to the connector, whose code the
 * warm-up must leave as cold as the bench otherwise leaves it. Every changed user ends as it was, so the simulators'
 * directory and the connector's view of it still agree when the burst starts.
 *
 * Not warmed by this: the PBX simulators (they only answer the connector's SetPresence, which the warm-up does not
 * cause), and the simulators' connections to the connector (each side pays half of a new connection).
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import type { GraphSimulatorHandle } from "../src/simulators/graph/GraphSimulator.ts"
import { webhookClient } from "../src/simulators/graph/SimWebhookClient.ts"

/**
 * BENCH_SIM_WARMUP=<changes> (default 2,000; 0: off): changes the simulators deliver to the sink before the measured
 * burst, at the burst's rate (half of them to Away, half back to the user's presence before).
 */
export const SIM_WARMUP_CHANGES = Math.max(0, Number(process.env["BENCH_SIM_WARMUP"] ?? 2000))

/** What the warm-up did, for the bench's output. */
export interface SimWarmupReport {
  readonly changes: number
  readonly sinkPosts: number
  readonly sinkItems: number
  /** The CPU ms of the thread that ran the changes over their first half and their second (the cold start's excess). */
  readonly threadCpuMsByHalf: ReadonlyArray<number>
  readonly seconds: number
}

const presenceMarker = "communications/presences/"

/** An HTTP server that answers every POST 202 once its body is read, counting the POSTs and the presence items. */
const startSink = Effect.acquireRelease(
  Effect.promise(() =>
    new Promise<{ url: string; counts: { posts: number; items: number }; close: () => Promise<void> }>((resolve) => {
      const counts = { posts: 0, items: 0 }
      const server = createServer((request, response) => {
        const chunks: Array<Buffer> = []
        request.on("data", (chunk: Buffer) => chunks.push(chunk))
        request.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8")
          counts.posts++
          for (let at = body.indexOf(presenceMarker); at >= 0; at = body.indexOf(presenceMarker, at + presenceMarker.length)) counts.items++
          response.writeHead(202).end()
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resolve({
          url: `http://127.0.0.1:${port}/sink`,
          counts,
          close: () => new Promise<void>((done) => server.close(() => done()))
        })
        server.unref()
      })
    })
  ),
  (sink) => Effect.promise(() => sink.close())
)

/** Until uninstalled: the simulators' notification POSTs (not validations, not lifecycle events) go to `sinkUrl`. */
const redirectNotifications = (isNotificationUrl: (url: string) => boolean, sinkUrl: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const original = webhookClient.post
      webhookClient.post = (url, post) => original(isNotificationUrl(url) ? sinkUrl : url, post)
      return original
    }),
    (original) => Effect.sync(() => void (webhookClient.post = original))
  )

/**
 * Changes each of `users` to Away (BeRightBack if it was away), then each back to what it showed before, one change every `intervalMs`; waits
 * until the sink has every item (or 10 s passed), and 1 s more so that no retry or late batch reaches the connector.
 */
export const warmSimulators = (options: {
  readonly users: ReadonlyArray<{ readonly graph: GraphSimulatorHandle; readonly id: string }>
  readonly intervalMs: number
  readonly isNotificationUrl: (url: string) => boolean
}) =>
  Effect.scoped(Effect.gen(function*() {
    const started = performance.now()
    const sink = yield* startSink
    yield* redirectNotifications(options.isNotificationUrl, sink.url)
    const before = options.users.map(({ graph, id }) => graph.state.getPresence(id))
    // Away, or BeRightBack for a user already away: a change the simulator notifies.
    const changes = [
      ...options.users.map((user, i) => ({ ...user, to: before[i]?.availability === "Away" ? { availability: "BeRightBack", activity: "BeRightBack" } : { availability: "Away", activity: "Away" } })),
      ...options.users.flatMap((user, i) => {
        const was = before[i]
        return was === undefined ? [] : [{ ...user, to: { availability: was.availability, activity: was.activity } }]
      })
    ]
    // This thread's CPU over each half of the changes (Away, then back): a cold start shows as a costlier first half.
    const halves: Array<number> = []
    let cpu = process.threadCpuUsage()
    for (const [i, change] of changes.entries()) {
      if (i === options.users.length || i === changes.length - 1) {
        const used = process.threadCpuUsage(cpu)
        halves.push(Math.round((used.user + used.system) / 1000))
        cpu = process.threadCpuUsage()
      }
      yield* change.graph.setPresence(change.id, change.to)
      yield* Effect.sleep(options.intervalMs)
    }
    const deadline = performance.now() + 10_000
    while (sink.counts.items < changes.length && performance.now() < deadline) yield* Effect.sleep(50)
    yield* Effect.sleep(1000)
    return {
      changes: changes.length,
      sinkPosts: sink.counts.posts,
      sinkItems: sink.counts.items,
      threadCpuMsByHalf: halves,
      seconds: Math.round(performance.now() - started) / 1000
    } satisfies SimWarmupReport
  }))
