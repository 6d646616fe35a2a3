import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as fc from "fast-check"
import { Activities, Availabilities, GraphPresence, type GraphPresenceEncoded } from "../../src/domain/Presence.ts"
import { commandEquals, type PbxPresenceCommand } from "../../src/domain/PbxPresence.ts"
import {
  buildMappingConfig,
  defaultMappingConfig,
  mapPresence,
  mapPresenceDetailed,
  PbxCommandFromGraphPresence,
  plainText
} from "../../src/domain/PresenceMapping.ts"

const decode = Schema.decodeUnknownSync(GraphPresence)
const presence = (activity: string, availability = "Available", extra: Partial<GraphPresenceEncoded> = {}) =>
  decode({ id: "u1", activity, availability, ...extra })
const label = (command: PbxPresenceCommand) => command._tag === "Clear" ? "clear" : command.activity

// The seed's table (protocols.md §2.7), written out independently of the implementation's table.
const expected: Record<string, string> = {
  Away: "away",
  BeRightBack: "away",
  OutOfOffice: "away",
  Busy: "busy",
  DoNotDisturb: "dnd",
  UrgentInterruptionsOnly: "dnd",
  InACall: "on-the-phone",
  Presenting: "on-the-phone",
  InAConferenceCall: "on-the-phone",
  InAMeeting: "meeting",
  Inactive: "clear",
  PresenceUnknown: "clear",
  Available: "clear",
  Offline: "clear",
  OffWork: "clear"
}

describe("mapPresence: the seed's table", () => {
  it("covers exactly the 15 documented activities", () => {
    assert.deepStrictEqual([...Activities].sort(), Object.keys(expected).sort())
  })

  for (const activity of Activities) {
    for (const availability of Availabilities) {
      it(`${activity} / ${availability} → ${expected[activity]}`, () => {
        const result = mapPresenceDetailed(presence(activity, availability))
        assert.strictEqual(label(result.command), expected[activity])
        assert.strictEqual(result.basis, "activity")
      })
    }
  }

  it("falls back to availability when the activity is unknown", () => {
    const cases: Array<[string, string]> = [
      ["BusyIdle", "busy"],
      ["AvailableIdle", "clear"],
      ["Away", "away"],
      ["BeRightBack", "away"],
      ["Busy", "busy"],
      ["DoNotDisturb", "dnd"],
      ["Offline", "clear"],
      ["Available", "clear"],
      ["PresenceUnknown", "clear"]
    ]
    for (const [availability, target] of cases) {
      const result = mapPresenceDetailed(presence("Focusing", availability))
      assert.strictEqual(label(result.command), target, availability)
      assert.strictEqual(result.basis, "availability")
    }
  })

  it("clears and reports basis none when both are unknown", () => {
    const result = mapPresenceDetailed(presence("Focusing", "Meditating"))
    assert.deepStrictEqual(result.command, { _tag: "Clear" })
    assert.strictEqual(result.basis, "none")
  })

  it("keeps an unknown value verbatim as Unknown(raw)", () => {
    const p = presence("focusing", "AvailableIdle")
    assert.deepStrictEqual(p.activity, { _tag: "Unknown", raw: "focusing" })
    assert.strictEqual(p.availability, "AvailableIdle")
  })
})

describe("mapping overrides", () => {
  it("overrides one activity and leaves the rest", () => {
    const { config, issues } = buildMappingConfig({ inameeting: "busy", BusyIdle: "dnd", Offline: "away" })
    assert.deepStrictEqual(issues, [])
    assert.strictEqual(label(mapPresence(presence("InAMeeting"), config)), "busy")
    assert.strictEqual(label(mapPresence(presence("Offline"), config)), "away")
    assert.strictEqual(label(mapPresence(presence("Presenting"), config)), "on-the-phone")
    assert.strictEqual(label(mapPresence(presence("Whatever", "BusyIdle"), config)), "dnd")
  })

  it("reports an override to an activity the PBX does not know, and a key Teams does not know", () => {
    const { issues } = buildMappingConfig({ InAMeeting: "sleeping", Napping: "away" })
    assert.strictEqual(issues.length, 2)
    assert.match(issues[0]!.message, /not a PBX activity/)
    assert.match(issues[0]!.message, /on-the-phone/)
    assert.match(issues[1]!.message, /not a Teams activity/)
  })
})

describe("note", () => {
  it("is empty unless enabled", () => {
    const p = presence("Busy", "Busy", { statusMessage: { message: { content: "Back at 3", contentType: "text" } } })
    assert.deepStrictEqual(mapPresence(p), { _tag: "Set", activity: "busy", note: "" })
  })

  it("carries the status message, plain text, trimmed and capped", () => {
    const { config } = buildMappingConfig({}, { enabled: true, maxLength: 12 })
    const p = presence("Busy", "Busy", {
      statusMessage: { message: { content: "  <p>Back&nbsp;at <b>3</b> pm &amp; later</p> ", contentType: "html" } }
    })
    const command = mapPresence(p, config)
    assert.strictEqual(command._tag, "Set")
    if (command._tag === "Set") {
      assert.strictEqual(command.note, "Back at 3 p…")
      assert.isAtMost(Array.from(command.note).length, 12)
    }
  })

  it("prefers the out-of-office message while out of office", () => {
    const { config } = buildMappingConfig({}, { enabled: true, maxLength: 100 })
    const p = presence("OutOfOffice", "Away", {
      statusMessage: { message: { content: "status", contentType: "text" } },
      outOfOfficeSettings: { message: "On leave until Monday", isOutOfOffice: true }
    })
    assert.deepStrictEqual(mapPresence(p, config), { _tag: "Set", activity: "away", note: "On leave until Monday" })
  })

  it("plainText strips tags and decodes entities", () => {
    assert.strictEqual(plainText("a<br/>b &lt;c&gt; &#65;&#x42;"), "a b <c> AB")
  })
})

describe("the mapping as a Schema", () => {
  it.effect("decoding a presence payload yields the PBX command", () =>
    Effect.gen(function*() {
      const command = yield* Schema.decodeUnknownEffect(PbxCommandFromGraphPresence())({
        "@odata.type": "#microsoft.graph.presence",
        id: "u1",
        availability: "Busy",
        activity: "InAConferenceCall"
      })
      assert.deepStrictEqual(command, { _tag: "Set", activity: "on-the-phone", note: "" })
    }))

  it.effect("a payload without an id is refused, not mapped", () =>
    Effect.gen(function*() {
      const result = yield* Schema.decodeUnknownEffect(PbxCommandFromGraphPresence())({ availability: "Busy" }).pipe(
        Effect.flip
      )
      assert.match(result.message, /id/)
    }))
})

describe("properties", () => {
  const anyName = fc.oneof(fc.string(), fc.constantFrom(...Activities, ...Availabilities))
  const casing = (s: string, mode: number) =>
    mode === 0 ? s : mode === 1 ? s.toLowerCase() : mode === 2 ? s.toUpperCase() : s.charAt(0).toLowerCase() + s.slice(1)

  it("decoding any strings never throws, and the mapping is total", () => {
    fc.assert(
      fc.property(anyName, anyName, fc.string(), (activity, availability, id) => {
        const p = decode({ id, activity, availability })
        const command = mapPresence(p)
        assert.isTrue(command._tag === "Clear" || command._tag === "Set")
      }),
      { numRuns: 2000 }
    )
  })

  it("an empty override table equals the default mapping", () => {
    const { config } = buildMappingConfig({})
    fc.assert(
      fc.property(anyName, anyName, (activity, availability) => {
        const p = decode({ id: "x", activity, availability })
        assert.isTrue(commandEquals(mapPresence(p, config), mapPresence(p, defaultMappingConfig)))
      })
    )
  })

  it("camelCase, PascalCase and other casings map alike", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...Activities),
        fc.constantFrom(...Availabilities),
        fc.integer({ min: 0, max: 3 }),
        (activity, availability, mode) => {
          const reference = mapPresence(decode({ id: "x", activity, availability }))
          const other = mapPresence(decode({ id: "x", activity: casing(activity, mode), availability: casing(availability, mode) }))
          assert.isTrue(commandEquals(reference, other))
        }
      )
    )
  })

  it("decoding non-string values fails with a SchemaError, never a crash", () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        const result = Schema.decodeUnknownExit(GraphPresence)(value)
        assert.isTrue(result._tag === "Success" || result._tag === "Failure")
      })
    )
  })
})
