/**
 * The Graph simulator reads `scope` as the identity platform does (SimScopes): the forms Microsoft Learn names are
 * accepted in any order and case, and each refusal is the platform's.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  consentedDelegatedPermissions,
  delegatedEcho,
  parseClientCredentials,
  parseDelegated
} from "../../src/simulators/graph/SimScopes.ts"

const accepted = (scope: string) => {
  const result = parseDelegated(scope)
  if (result._tag === "Problem") throw new Error(`${scope} was refused: ${result.problem._tag}`)
  return result.value
}
const refusal = (result: ReturnType<typeof parseDelegated> | ReturnType<typeof parseClientCredentials>) =>
  result._tag === "Problem" ? result.problem._tag : "accepted"

describe("simulated identity platform scopes", () => {
  it("MSAL's delegated request (resource permission + openid profile offline_access) is accepted in any order and case", () => {
    for (
      const scope of [
        "https://graph.microsoft.com/Presence.Read.All openid profile offline_access",
        "OFFLINE_ACCESS Profile OpenID https://graph.microsoft.com/presence.read.all",
        "  openid\thttps://GRAPH.microsoft.com/Presence.Read.All   offline_access profile "
      ]
    ) {
      const value = accepted(scope)
      assert.deepStrictEqual(value.permissions, ["Presence.Read.All"])
      assert.deepStrictEqual([...value.oidc].sort(), ["offline_access", "openid", "profile"])
      assert.isFalse(value.graphDefault)
    }
  })

  it("Graph is named by its URI (with or without a trailing slash), its app id, or not at all", () => {
    assert.isTrue(accepted("https://graph.microsoft.com/.default").graphDefault)
    assert.isTrue(accepted("https://graph.microsoft.com//.default offline_access").graphDefault)
    assert.isTrue(accepted("00000003-0000-0000-c000-000000000000/.default").graphDefault)
    assert.deepStrictEqual(accepted("User.Read.All presence.read.all").permissions, ["User.Read.All", "Presence.Read.All"])
    assert.deepStrictEqual(accepted("openid email").permissions, [])
  })

  it("refusals: unknown resource, .default mixed with named permissions, not consented, empty", () => {
    assert.strictEqual(refusal(parseDelegated("http://127.0.0.1:8081/.default offline_access")), "UnknownResource")
    assert.strictEqual(refusal(parseDelegated("https://vault.azure.net/user_impersonation")), "UnknownResource")
    assert.strictEqual(refusal(parseDelegated("https://graph.microsoft.com/.default Mail.Read")), "MixedDefault")
    assert.strictEqual(refusal(parseDelegated("https://graph.microsoft.com/.default https://graph.microsoft.com/User.Read")), "MixedDefault")
    assert.strictEqual(refusal(parseDelegated("https://graph.microsoft.com/Mail.Read openid")), "NotConsented")
    assert.strictEqual(refusal(parseDelegated("   ")), "Missing")
    assert.strictEqual(refusal(parseDelegated(undefined)), "Missing")
  })

  it("client credentials take exactly {resource}/.default", () => {
    assert.strictEqual(refusal(parseClientCredentials("https://graph.microsoft.com/.default")), "accepted")
    assert.strictEqual(refusal(parseClientCredentials("00000003-0000-0000-c000-000000000000/.default")), "accepted")
    assert.strictEqual(refusal(parseClientCredentials("https://graph.microsoft.com/User.Read.All")), "ClientCredentialsNeedDefault")
    assert.strictEqual(refusal(parseClientCredentials("https://graph.microsoft.com/.default openid")), "ClientCredentialsNeedDefault")
    assert.strictEqual(refusal(parseClientCredentials("https://foo.microsoft.com/.default")), "UnknownResource")
    assert.strictEqual(refusal(parseClientCredentials("")), "Missing")
  })

  it("the echo names every consented permission in Graph's own form, .default only when asked, never offline_access", () => {
    const named = delegatedEcho(accepted("Presence.Read.All offline_access openid"))
    const all = consentedDelegatedPermissions.map((permission) => `https://graph.microsoft.com/${permission}`)
    assert.deepStrictEqual(named.split(" "), ["email", "openid", "profile", ...[...all].sort()])
    const byDefault = delegatedEcho(accepted("https://graph.microsoft.com/.default offline_access")).split(" ")
    assert.strictEqual(byDefault.at(-1), "https://graph.microsoft.com/.default")
    assert.notInclude(byDefault, "offline_access")
  })
})
