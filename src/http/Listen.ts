/**
 * How the connector's public port listens. A connection the process has not accepted yet waits in the kernel's accept
 * queue; when that queue is full the kernel drops the client's SYN and the client sends it again only after 1, 3, 7,
 * 15 … s, so a short stall of a busy event loop becomes answers seconds late (docs/performance.md, "tenants-50").
 * Node asks for 511 by default; the connector asks for more, and the kernel caps it at `net.core.somaxconn`.
 */
import { readFileSync } from "node:fs"
import { Effect } from "effect"

/** The accept queue asked for on the public port (connections the kernel holds until the event loop accepts them). */
export const publicBacklog = 4096

/**
 * Idle keep-alive connections stay open this long (ms): longer than the usual load balancer's idle timeout (60 s), so
 * the balancer, not the connector, closes them; a client that reuses connections (Graph, a PBX) then rarely opens one.
 */
export const keepAliveTimeoutMillis = 65_000

/** The kernel's cap on any listen backlog (Linux `net.core.somaxconn`); undefined where it cannot be read. */
export const somaxconn = (path = "/proc/sys/net/core/somaxconn"): number | undefined => {
  try {
    const value = Number(readFileSync(path, "utf8").trim())
    return Number.isInteger(value) && value > 0 ? value : undefined
  } catch {
    return undefined
  }
}

/** The kernel's range for the ports of sockets bound to port 0 and of outgoing connections (Linux), if known. */
export const ephemeralPortRange = (path = "/proc/sys/net/ipv4/ip_local_port_range"): readonly [number, number] | undefined => {
  try {
    const [low, high] = readFileSync(path, "utf8").trim().split(/\s+/).map(Number)
    return Number.isInteger(low) && Number.isInteger(high) && low! <= high! ? [low!, high!] : undefined
  } catch {
    return undefined
  }
}

/** The accept queue the public port gets: what is asked for, capped by the kernel. */
export const effectiveBacklog = (cap: number | undefined, asked = publicBacklog): number =>
  cap === undefined ? asked : Math.min(asked, cap)

/** A warning when the kernel caps the public port's accept queue below what the connector asks for (else nothing). */
export const backlogWarning = (cap: number | undefined, asked = publicBacklog): string | undefined =>
  cap === undefined || cap >= asked
    ? undefined
    : `the public port's accept queue is capped at ${cap} by net.core.somaxconn (${asked} asked); under bursts of new ` +
      `connections the kernel drops the excess and clients retry after seconds: raise it (sysctl -w net.core.somaxconn=${asked})`

/** Logged once at start-up: the public port's accept queue, and a warning when the kernel keeps it small. */
export const logListenBacklog = Effect.fn("Listen.logBacklog")(function*(port: number) {
  const cap = somaxconn()
  const warning = backlogWarning(cap)
  if (warning !== undefined) yield* Effect.logWarning(warning)
  else yield* Effect.logDebug(`public port ${port}: accept queue ${effectiveBacklog(cap)}`)
})
