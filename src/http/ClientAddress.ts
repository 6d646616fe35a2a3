/**
 * The client's address, the key of the login backoffs (status page, PBX logins). Behind the public front of `run`
 * (src/cluster/RunnerFront.ts) every request reaches a tenant's connector from the loopback address, so the front
 * passes the address it saw in `x-connector-client-address`, replacing whatever a client sent there. The value carries
 * a random token of this process: only this process's front can set it, so a client behind some other proxy cannot
 * pick its own address; without the token the address is the TCP peer's, as always.
 */
import { randomBytes, timingSafeEqual } from "node:crypto"
import type { HttpServerRequest } from "effect/http"
import { clip } from "../domain/LogText.ts"

export const clientAddressHeader = "x-connector-client-address"

const token = randomBytes(16).toString("hex")

/** The header's value for a client at `address`, as this process's front sends it. */
export const relayedAddress = (address: string | undefined): string => `${token} ${address ?? ""}`

const fromFront = (relayed: string): string | undefined => {
  const [given = "", address = ""] = relayed.split(" ", 2)
  return given.length === token.length && timingSafeEqual(Buffer.from(given), Buffer.from(token)) && address !== "" ? address : undefined
}

/** The address this process's front saw for the client, or the TCP peer's own. */
export const clientAddress = (peer: string | undefined, relayed: string | ReadonlyArray<string> | undefined): string => {
  const address = (typeof relayed === "string" ? fromFront(relayed) : undefined) ?? peer
  return address === undefined ? "unknown address" : clip(address, 64)
}

export const clientAddressOf = (request: HttpServerRequest.HttpServerRequest): string =>
  clientAddress(request.remoteAddress._tag === "Some" ? request.remoteAddress.value : undefined, request.headers[clientAddressHeader])
