/**
 * Technical causes in words (src/status/Explain.ts): each kind the connector meets becomes a sentence an administrator
 * understands, with the cause kept as the detail; a text no rule knows stays as it is.
 */
import { assert, describe, it } from "@effect/vitest"
import { explain } from "../../src/status/Explain.ts"
import { lightLine } from "../../src/status/LightText.ts"

describe("explain", () => {
  const cases: ReadonlyArray<readonly [technical: string, words: string]> = [
    ["~effect/socket/Socket/SocketError: 1006", "the connection to the PBX broke off without a goodbye (network error, or the PBX restarted)"],
    ["disconnected: the PBX closed the websocket (code 1006)", "disconnected: the connection to the PBX broke off without a goodbye (network error, or the PBX restarted)"],
    ["the PBX closed the websocket (code 1001)", "the PBX closed the connection (it is going away, e.g. restarting)"],
    ["the PBX closed the websocket (code 4321)", "the connection to the PBX ended (close code 4321)"],
    ["connect ECONNREFUSED 10.0.0.5:443", "connection refused: nothing answers at that address and port"],
    ["getaddrinfo ENOTFOUND login.microsoftonline.com", "the host name cannot be resolved (DNS)"],
    [
      "Sign-in of app failed: the client secret was rejected (AADSTS7000215). Copy the secret's Value",
      "Sign-in of app failed: wrong client secret"
    ],
    ["AADSTS50076: multi-factor", "the technical account must use multi-factor sign-in"],
    ["AADSTS99999", "Microsoft refused the sign-in (AADSTS99999)"],
    ["wrong App object password for PBX pbx-master", "wrong App password: the App object's password on the PBX differs from the connector's"],
    ["renewal failed: TooManyRequests (HTTP 429): slow down", "renewal failed: Microsoft Graph is throttling the connector (too many requests)"],
    [
      "creating the presence subscription failed: ValidationError (HTTP 400): Subscription validation request failed",
      "creating the presence subscription failed: Microsoft Graph could not validate the webhook: it cannot reach the connector at notifications.publicBaseUrl"
    ],
    ["unable to verify the first certificate: UNABLE_TO_VERIFY_LEAF_SIGNATURE", "the TLS certificate of the other side is not trusted"]
  ]
  for (const [technical, words] of cases) {
    it(technical, () => {
      const explained = explain(technical)
      assert.strictEqual(explained.text, words)
      assert.strictEqual(explained.detail, technical)
      assert.notInclude(explained.text, "~effect/")
    })
  }

  it("a text in words already is left alone, without a detail", () => {
    assert.deepStrictEqual(explain("loading the user table of pbx-master"), { text: "loading the user table of pbx-master" })
  })

  it("a very long cause is clipped in the detail", () => {
    const detail = explain("ECONNRESET " + "x".repeat(2000)).detail ?? ""
    assert.isAtMost(detail.length, 501)
  })

  it("the log line of a light has its times in UTC and its detail", () => {
    const line = lightLine({ state: "green", reason: "connected (13r3 sr5)", since: Date.UTC(2026, 10, 27, 8, 41) })
    assert.strictEqual(line, "connected (13r3 sr5) since 08:41 UTC")
    assert.strictEqual(
      lightLine({ state: "red", reason: "PBX x is not connected: connection refused", detail: "ECONNREFUSED" }),
      "PBX x is not connected: connection refused (ECONNREFUSED)"
    )
  })
})
