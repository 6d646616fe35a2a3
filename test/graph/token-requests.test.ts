/**
 * What the connector's own token code asks for and reads: Graph's `.default` scope for the cloud it talks to (the
 * simulator refuses any other resource, as the platform does), and the identity platform's recorded answers decode
 * with its schemas.
 */
import { assert, describe, it } from "@effect/vitest"
import { Redacted, Schema } from "effect"
import { readFileSync } from "node:fs"
import { classifyTokenError, TokenErrorBody } from "../../src/graph/auth/AuthError.ts"
import { graphScope, type GraphSettings } from "../../src/graph/client/GraphSettings.ts"
import { DeviceCodeResponse, TokenResponse } from "../../src/graph/auth/TokenEndpoint.ts"

const recorded: Record<string, { readonly body: unknown }> = JSON.parse(
  readFileSync(new URL("../fixtures/conformance/identity-discovery.json", import.meta.url), "utf8")
)

const settings = (graphBaseUrl: string): GraphSettings => ({
  tenantId: "t",
  clientId: "c",
  loginBaseUrl: "https://login.microsoftonline.com",
  graphBaseUrl,
  app: { _tag: "ClientSecret", secret: Redacted.make("s") },
  accounts: []
})

describe("the connector's token requests", () => {
  it("Graph's .default scope names the Graph cloud's root, and the public cloud's for any other address", () => {
    assert.strictEqual(graphScope(settings("https://graph.microsoft.com")), "https://graph.microsoft.com/.default")
    assert.strictEqual(graphScope(settings("https://graph.microsoft.us/")), "https://graph.microsoft.us/.default")
    assert.strictEqual(graphScope(settings("https://dod-graph.microsoft.us")), "https://dod-graph.microsoft.us/.default")
    assert.strictEqual(graphScope(settings("https://microsoftgraph.chinacloudapi.cn")), "https://microsoftgraph.chinacloudapi.cn/.default")
    assert.strictEqual(graphScope(settings("http://127.0.0.1:8081")), "https://graph.microsoft.com/.default")
    assert.strictEqual(graphScope(settings("https://graph-proxy.example.com/graph")), "https://graph.microsoft.com/.default")
  })

  it("the platform's recorded answers decode with the connector's schemas", () => {
    for (const name of ["tokenDelegatedNamedPermission", "tokenRefreshGraphDefault"]) {
      const decoded = Schema.decodeUnknownSync(TokenResponse)(recorded[name]!.body)
      assert.isString(decoded.refresh_token, name)
    }
    assert.strictEqual(Schema.decodeUnknownSync(DeviceCodeResponse)(recorded.deviceCodeResponse!.body).interval, 0)
    const pending = Schema.decodeUnknownSync(TokenErrorBody)(recorded.deviceCodePending!.body)
    assert.strictEqual(pending.error, "authorization_pending")
    // An unknown resource (AADSTS500011) tells the administrator to check the Graph base URL.
    const unknownResource = classifyTokenError("app", { error: "invalid_resource", error_codes: [500011] })
    assert.strictEqual(unknownResource.reason, "InvalidScope")
    assert.match(unknownResource.fix, /Graph base URL/)
  })
})
