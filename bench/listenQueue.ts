/**
 * The connector's public port seen from the kernel while a scenario runs (Linux, /proc/net/tcp or tcp6): its listen
 * socket's accept queue (connections established and not yet accepted by the process: `rx_queue` of the LISTEN line)
 * every 100 ms, against the queue's size (`ss`'s Send-Q: the backlog after the kernel's cap), and the connections
 * half-open (SYN_RECV) or established to it once a second. An accept queue at its size means the kernel drops SYNs
 * for that port, which the clients send again only after 1, 3, 7 … s.
 *
 * The kernel writes the listening sockets first: the accept queue is read from the file's first pages, which costs
 * ≈ 1 ms; the connections need the whole file, which with the ≈ 6,000 sockets of tenants-50 costs ≈ 25 ms of CPU
 * (the kernel formats every socket). Read whole every 100 ms, as before, that was a fifth of a core in the bench
 * process during a burst (docs/performance.md, "Fifth round").
 */
import { execFileSync } from "node:child_process"
import { closeSync, openSync, readFileSync, readSync } from "node:fs"

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

/** The fields of a /proc/net/tcp line: local address (`ADDR:PORT` in hex) at 1, state at 3, `tx:rx` queues at 4. */
const fieldsOf = (line: string): ReadonlyArray<string> => line.trim().split(/\s+/)

const chunk = Buffer.alloc(4096)

/** The port's accept queue: its LISTEN lines' rx_queue summed (-1 when it does not listen), from the file's head. */
const acceptQueueOf = (file: string, portHex: string): number => {
  let queue = -1
  let fd: number
  try {
    fd = openSync(file, "r")
  } catch {
    return queue
  }
  try {
    let rest = ""
    for (;;) {
      const read = readSync(fd, chunk, 0, chunk.length, null)
      if (read === 0) return queue
      const lines = (rest + chunk.toString("latin1", 0, read)).split("\n")
      rest = lines.pop()!
      for (const line of lines) {
        const fields = fieldsOf(line)
        if (fields[0] === "sl") continue
        // The listening sockets come first: the first other line ends them.
        if (fields[3] !== LISTEN) return queue
        // The connector may listen with several sockets on the port (FrontSockets.ts acceptSockets): their queues summed.
        if (fields[1]!.endsWith(`:${portHex}`)) queue = Math.max(queue, 0) + parseInt(fields[4]!.split(":")[1]!, 16)
      }
    }
  } finally {
    closeSync(fd)
  }
}

/** Connections to the port half-open and established (the whole file). */
const connectionsOf = (file: string, portHex: string) => {
  let synRecv = 0
  let established = 0
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch {
    return { synRecv, established }
  }
  for (const line of text.split("\n")) {
    const fields = fieldsOf(line)
    if (fields.length < 5 || !fields[1]!.endsWith(`:${portHex}`)) continue
    if (fields[3] === SYN_RECV) synRecv++
    else if (fields[3] === ESTABLISHED) established++
  }
  return { synRecv, established }
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

/**
 * Starts sampling `port` (listened on at an IPv4 address, or IPv6 with `ipv6`: only that family's file is read);
 * `stop()` ends it and returns the figures.
 */
export const watchListenQueue = (port: number, options: { readonly everyMs?: number; readonly ipv6?: boolean } = {}): { stop: () => ListenQueueFigures } => {
  const portHex = port.toString(16).toUpperCase().padStart(4, "0")
  const file = options.ipv6 === true ? "/proc/net/tcp6" : "/proc/net/tcp"
  const figures = { samples: 0, backlog: backlogOf(port), acceptQueueMax: 0, samplesAtBacklog: 0, synRecvMax: 0, establishedMax: 0 }
  const queueTimer = setInterval(() => {
    const queue = acceptQueueOf(file, portHex)
    figures.samples++
    figures.acceptQueueMax = Math.max(figures.acceptQueueMax, queue)
    if (figures.backlog > 0 && queue >= figures.backlog) figures.samplesAtBacklog++
  }, options.everyMs ?? 100)
  const connectionsTimer = setInterval(() => {
    const s = connectionsOf(file, portHex)
    figures.synRecvMax = Math.max(figures.synRecvMax, s.synRecv)
    figures.establishedMax = Math.max(figures.establishedMax, s.established)
  }, 1000)
  return {
    stop: () => {
      clearInterval(queueTimer)
      clearInterval(connectionsTimer)
      return { ...figures }
    }
  }
}
