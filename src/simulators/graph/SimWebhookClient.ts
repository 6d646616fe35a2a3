/**
 * How the simulated Graph reaches a webhook: one place for a choice the sources leave open. Microsoft Learn
 * documents what Graph sends and how fast it must be answered, not whether it keeps connections open between
 * notifications (UNCONFIRMED, docs/protocol-notes.md). The simulator keeps HTTP/1.1 connections alive in a pool per
 * origin without a connection limit — a POST reuses an idle connection to the endpoint, else opens a new one — as
 * common HTTP clients do by default. It is Node's own HTTP client with a keep-alive pool (`http.Agent`) rather than
 * `fetch`, which behaves the same way here at about three times the CPU per POST (its web streams, abort signals and
 * header objects): with many tenants the simulators POST once per change, and their CPU is taken from the connector
 * they test on the same cores (docs/performance.md, "tenants-50: the main thread's cost per POST").
 */
import http from "node:http"
import https from "node:https"

/** Idle connections are kept without a limit, as `fetch`'s pool keeps them (`http.Agent` keeps 256 by default). */
const pool = { keepAlive: true, maxSockets: Infinity, maxFreeSockets: Infinity } as const
const agents = { "http:": new http.Agent(pool), "https:": new https.Agent(pool) }

/** A webhook's answer: its status, content type and body. */
export interface WebhookAnswer {
  readonly status: number
  readonly contentType: string
  readonly text: string
}

/** A POST that is not answered in full within this many milliseconds fails (the client gives up and closes it). */
export interface WebhookPost {
  readonly headers: Readonly<Record<string, string>>
  readonly body?: string | undefined
  readonly timeoutMillis: number
}

interface Target {
  readonly secure: boolean
  readonly options: { readonly protocol: string; readonly hostname: string; readonly port: string; readonly path: string }
}

/**
 * Parsed URLs: a simulator POSTs to the same few notification URLs all the time. Bounded, as for a long run with
 * many validation handshakes (their URLs differ by the token).
 */
const targets = new Map<string, Target>()
const TARGETS_MAX = 1024

const targetOf = (url: string): Target => {
  const known = targets.get(url)
  if (known !== undefined) return known
  const parsed = new URL(url)
  const target = {
    secure: parsed.protocol === "https:",
    options: { protocol: parsed.protocol, hostname: parsed.hostname.replace(/^\[(.*)\]$/, "$1"), port: parsed.port, path: parsed.pathname + parsed.search }
  }
  if (targets.size >= TARGETS_MAX) targets.clear()
  targets.set(url, target)
  return target
}

/** One POST to a webhook (a notification or the validation handshake), over the pool described above. */
export const webhookPost = (url: string, post: WebhookPost): Promise<WebhookAnswer> =>
  new Promise((resolve, reject) => {
    const { options, secure } = targetOf(url)
    const body = post.body ?? ""
    let timer: ReturnType<typeof setTimeout> | undefined
    const fail = (error: Error) => {
      clearTimeout(timer)
      reject(error)
    }
    const request = (secure ? https : http).request({
      ...options,
      method: "POST",
      agent: secure ? agents["https:"] : agents["http:"],
      headers: { ...post.headers, "content-length": String(Buffer.byteLength(body)) }
    }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("error", fail)
      response.on("end", () => {
        clearTimeout(timer)
        resolve({
          status: response.statusCode ?? 0,
          contentType: String(response.headers["content-type"] ?? ""),
          text: Buffer.concat(chunks).toString("utf8")
        })
      })
    })
    const late = () => request.destroy(new Error(`no answer within ${post.timeoutMillis} ms`))
    timer = setTimeout(late, post.timeoutMillis)
    // As an abort signal's timer: it does not keep the process alive by itself.
    timer.unref()
    request.on("error", fail)
    request.end(body)
  })

/**
 * What the simulator sends its POSTs with: `webhookPost`, replaced only by the benchmark's measurement tap, which times
 * each notification POST from its start to its answer (bench/taps.ts).
 */
export const webhookClient: { post: (url: string, post: WebhookPost) => Promise<WebhookAnswer> } = { post: webhookPost }
