/**
 * The client's address, the key of the login backoffs (status page, PBX logins). Behind the public front of `run`
 * (src/cluster/RunnerFront.ts) every request reaches a tenant's connector from the loopback address, so the front
 * passes the address it saw in `x-connector-client-address`, replacing whatever a client sent there; the header is
 * believed only from a loopback peer, anything else is the TCP peer's own address.
 */
import type { HttpServerRequest } from "effect/http"
import { clip } from "../domain/LogText.ts"

export const clientAddressHeader = "x-connector-client-address"

const isLoopback = (address: string): boolean =>
  address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.")

/** The address `peer` forwards for its client, or the peer's own. */
export const clientAddress = (peer: string | undefined, relayed: string | ReadonlyArray<string> | undefined): string => {
  const address = peer !== undefined && isLoopback(peer) && typeof relayed === "string" && relayed !== "" ? relayed : peer
  return address === undefined ? "unknown address" : clip(address, 64)
}

export const clientAddressOf = (request: HttpServerRequest.HttpServerRequest): string =>
  clientAddress(request.remoteAddress._tag === "Some" ? request.remoteAddress.value : undefined, request.headers[clientAddressHeader])
