import { assert, describe, it } from "@effect/vitest"
import { parseJsonBody, splitFromBytes } from "../../src/graph/notifications/JsonBody.ts"

/** A base64-like filler that makes a body large enough to be split. */
const filler = "QUJD".repeat(Math.ceil(splitFromBytes / 4 / 50))

const richItem = (i: number) => ({
  subscriptionId: `sub-${i % 3}`,
  clientState: "state \"quoted\" \\ back\\slash",
  changeType: "updated",
  resource: `communications/presences('user-${i}')`,
  resourceData: { "@odata.type": "#Microsoft.Graph.presence", id: `user-${i}`, nested: [1, [2, { x: "]}" }], true, null, -1.5e3] },
  encryptedContent: { data: filler, dataKey: "ünïcødé ✓ 🎉", dataSignature: "\\\"", encryptionCertificateId: "c", encryptionCertificateThumbprint: "T" }
})

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)

/** The body parsed both ways: the same value, or both throw. */
const sameAsJsonParse = (text: string): void => {
  let expected: unknown
  let expectedError: unknown
  try {
    expected = JSON.parse(text)
  } catch (error) {
    expectedError = error
  }
  if (expectedError !== undefined) {
    assert.throws(() => parseJsonBody(bytes(text)), SyntaxError)
    return
  }
  const parsed = parseJsonBody(bytes(text))
  assert.deepStrictEqual(parsed, expected)
  // The same key order as JSON.parse gives.
  assert.strictEqual(JSON.stringify(parsed), JSON.stringify(expected))
}

const large = (body: string): string => {
  assert.isAtLeast(bytes(body).byteLength, splitFromBytes)
  return body
}

describe("webhook body parsing (JsonBody.ts)", () => {
  it("parses a large body of rich items as JSON.parse does, whitespace and escapes included", () => {
    const value = Array.from({ length: 60 }, (_, i) => richItem(i))
    sameAsJsonParse(large(JSON.stringify({ value, validationTokens: ["a.b.c", "d.e.f"] })))
    sameAsJsonParse(large(JSON.stringify({ validationTokens: ["x"], value }, null, 2)))
    sameAsJsonParse(large(` \r\n\t{ "value" : [ ${value.map((v) => JSON.stringify(v)).join(" ,\n ")} ] , "other": {"value": [1]} }\n`))
  })

  it("parses small bodies and empty arrays", () => {
    sameAsJsonParse(JSON.stringify({ value: [richItem(1)] }))
    sameAsJsonParse(large(JSON.stringify({ pad: filler.repeat(60), value: [] })))
  })

  it("gives the last of a repeated value key, and the escaped key spelled differently, as JSON.parse does", () => {
    const value = Array.from({ length: 60 }, (_, i) => richItem(i))
    sameAsJsonParse(large(`{"value": ${JSON.stringify(value)}, "value": [1, 2]}`))
    sameAsJsonParse(large(`{"value": ${JSON.stringify(value)}, "\\u0076alue": [3]}`))
    sameAsJsonParse(large(`{"\\u0076alue": ${JSON.stringify(value)}}`))
  })

  it("throws SyntaxError on a malformed large body, wherever the fault is", () => {
    const good = JSON.stringify({ value: Array.from({ length: 130 }, (_, i) => richItem(i)), validationTokens: ["t"] })
    const broken = [
      good.slice(0, -1),
      good + "x",
      good.replace(`"changeType":"updated"`, `"changeType":updated`),
      good.replace(`},{`, `}{`),
      good.replace(`},{`, `},,{`),
      good.replace(`"validationTokens":["t"]`, `"validationTokens":["t",]`),
      good.replace(`[1,[2,`, `[1,[2,,`),
      good.replace(`"QUJD`, `"QU\u0001JD`),
      good.slice(0, good.length / 2),
      "\uFEFF" + good,
      `[${good}]`
    ]
    for (const text of broken) sameAsJsonParse(large(text))
  })

  it("takes an ArrayBuffer as the request body gives it", () => {
    const text = large(JSON.stringify({ value: Array.from({ length: 60 }, (_, i) => richItem(i)) }))
    const view = bytes(text)
    const buffer = view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength) as ArrayBuffer
    assert.deepStrictEqual(parseJsonBody(buffer), JSON.parse(text))
  })
})
