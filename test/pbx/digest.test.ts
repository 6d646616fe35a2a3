import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Redacted, Schema } from "effect"
import { digestMatches, loginDigest, rawTopLevelMember } from "../../src/pbx/socket/AppLoginDigest.ts"
import { AppLogin } from "../../src/pbx/socket/PbxMessages.ts"

interface Captures {
  readonly sdkDigestVectors: ReadonlyArray<{
    readonly app: string
    readonly domain: string
    readonly sip: string
    readonly guid: string
    readonly dn: string
    readonly info: unknown
    readonly challenge: string
    readonly password: string
    readonly digest: string
  }>
  readonly realAppLogins: ReadonlyArray<{ readonly name: string; readonly message: string; readonly password: string; readonly challenge: string }>
}

const captures = JSON.parse(
  readFileSync(new URL("../fixtures/conformance/innovaphone-captures.json", import.meta.url), "utf8")
) as Captures
const decodeLogin = Schema.decodeUnknownSync(Schema.fromJsonString(AppLogin))

const verifyCapture = (message: string, challenge: string, password: string): boolean => {
  const login = decodeLogin(message)
  const expected = loginDigest({ ...login, infoText: rawTopLevelMember(message, "info") }, challenge, Redacted.make(password))
  return digestMatches(login.digest, expected)
}

describe("AppLogin digest", () => {
  it("reproduces the SDK digest vectors", () => {
    assert.strictEqual(captures.sdkDigestVectors.length, 3)
    for (const vector of captures.sdkDigestVectors) {
      const digest = loginDigest(
        { ...vector, infoText: vector.info === null ? undefined : JSON.stringify(vector.info) },
        vector.challenge,
        Redacted.make(vector.password)
      )
      assert.strictEqual(digest, vector.digest)
    }
  })

  it("verifies the four real AppLogin captures", () => {
    assert.strictEqual(captures.realAppLogins.length, 4)
    for (const capture of captures.realAppLogins) {
      assert.isTrue(verifyCapture(capture.message, capture.challenge, capture.password), capture.name)
    }
  })

  it("fails with a wrong password", () => {
    for (const capture of captures.realAppLogins) {
      assert.isFalse(verifyCapture(capture.message, capture.challenge, `${capture.password}x`), capture.name)
    }
  })

  it("fails when a field or the info is tampered with", () => {
    for (const capture of captures.realAppLogins) {
      const tamperedDn = capture.message.replace(/"dn":"([^"]*)"/, "\"dn\":\"$1x\"")
      assert.notStrictEqual(tamperedDn, capture.message)
      assert.isFalse(verifyCapture(tamperedDn, capture.challenge, capture.password), `${capture.name}: dn`)
      const tamperedInfo = capture.message.replace("\"pbx\":\"pbx-main\"", "\"pbx\":\"pbx-other\"")
      assert.notStrictEqual(tamperedInfo, capture.message)
      assert.isFalse(verifyCapture(tamperedInfo, capture.challenge, capture.password), `${capture.name}: info`)
      assert.isFalse(verifyCapture(capture.message, "0000000000000000", capture.password), `${capture.name}: challenge`)
    }
  })

  it("extracts the info member as received, without re-serialising it", () => {
    const text = "{\"mt\":\"AppLogin\", \"a\":[1,{\"info\":2}],\"info\" : {\"cn\":\"\\u00e4 \\\"x\\\"\",\"n\":1.0}}"
    assert.strictEqual(rawTopLevelMember(text, "info"), "{\"cn\":\"\\u00e4 \\\"x\\\"\",\"n\":1.0}")
    assert.strictEqual(rawTopLevelMember(text, "missing"), undefined)
    assert.strictEqual(rawTopLevelMember("[1]", "info"), undefined)
  })
})
