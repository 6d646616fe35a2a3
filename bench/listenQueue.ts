/**
 * The connector's public port seen from the kernel while a scenario runs (Linux, /proc/net/tcp and tcp6), sampled every
 * 100 ms: its listen socket's accept queue (connections established and not yet accepted by the process: `rx_queue`
 * of the LISTEN line) against the queue's size (`ss`'s Send-Q: the backlog after the kernel's cap), and the
 * connections half-open (SYN_RECV) or established to it. An accept queue at its size means the kernel drops SYNs for
 * that port, which the clients send again only after 1, 3, 7 … s.
 */
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"

export interface ListenQueueFigures {
  readonly samples: number
  readonly backlog: number
  readonly acceptQueueMax: number
  readonly samplesAtBacklog: number
  readonly synRecvMax: number
  readonly establishedMax: number
}

const LISTEN = "0A"
const SYN_RECV = "03"
const ESTABLISHED = "01"

const sampleOnce = (portHex: string) => {
  let queue = -1
  let synRecv = 0
  let established = 0
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string
    try {
      text = readFileSync(file, "utf8")
    } catch {
      continue
    }
    for (const line of text.split("\n")) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 5 || !fields[1]!.endsWith(`:${portHex}`)) continue
      const state = fields[3]
      if (state === LISTEN) {
        const rx = fields[4]!.split(":")[1]
        // The connector may listen with several sockets on the port (FrontSockets.ts acceptSockets): their queues summed.
        queue = Math.max(queue, 0) + parseInt(rx!, 16)
      } else if (state === SYN_RECV) synRecv++
      else if (state === ESTABLISHED) established++
    }
  }
  return { queue, synRecv, established }
}

/** The accept queue's size for `port` (`ss`), or -1 where `ss` is missing. */
const backlogOf = (port: number): number => {
  try {
    const line = execFileSync("ss", ["-ltnH", `sport = :${port}`], { encoding: "utf8" }).trim().split("\n")[0] ?? ""
    return Number(line.trim().split(/\s+/)[2] ?? -1)
  } catch {
    return -1
  }
}

/** Starts sampling `port`; `stop()` ends it and returns the figures. */
export const watchListenQueue = (port: number, everyMs = 100): { stop: () => ListenQueueFigures } => {
  const portHex = port.toString(16).toUpperCase().padStart(4, "0")
  const figures = { samples: 0, backlog: backlogOf(port), acceptQueueMax: 0, samplesAtBacklog: 0, synRecvMax: 0, establishedMax: 0 }
  const timer = setInterval(() => {
    const s = sampleOnce(portHex)
    figures.samples++
    figures.acceptQueueMax = Math.max(figures.acceptQueueMax, s.queue)
    if (figures.backlog > 0 && s.queue >= figures.backlog) figures.samplesAtBacklog++
    figures.synRecvMax = Math.max(figures.synRecvMax, s.synRecv)
    figures.establishedMax = Math.max(figures.establishedMax, s.established)
  }, everyMs)
  return {
    stop: () => {
      clearInterval(timer)
      return { ...figures }
    }
  }
}
