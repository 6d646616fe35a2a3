import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as fc from "fast-check"
import { Activities, Availabilities, GraphPresence, type GraphPresenceEncoded, PresenceValues } from "../../src/domain/Presence.ts"
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

// The original table (protocols.md §2.7) and the values Microsoft documents today, written out independently of the
// implementation's table.
const expected: Record<string, string> = {
  Away: "away",
  BeRightBack: "away",
  OutOfOffice: "away",
  Busy: "busy",
  BusyIdle: "busy",
  DoNotDisturb: "dnd",
  UrgentInterruptionsOnly: "dnd",
  Focusing: "dnd",
  InACall: "on-the-phone",
  Presenting: "on-the-phone",
  InAConferenceCall: "on-the-phone",
  InAMeeting: "meeting",
  Inactive: "clear",
  PresenceUnknown: "clear",
  Available: "clear",
  AvailableIdle: "clear",
  Offline: "clear",
  OffWork: "clear"
}
/** Values that name what the user is doing; they win over a base state in the other field. */
const specific = new Set(["InACall", "InAConferenceCall", "InAMeeting", "Presenting", "Focusing", "UrgentInterruptionsOnly", "OutOfOffice", "OffWork"])
const rank = (value: string) => (specific.has(value) ? 3 : value === "PresenceUnknown" ? 1 : 2)

describe("mapPresence: the table", () => {
  it("covers every documented availability and activity, and only those", () => {
    assert.deepStrictEqual([...PresenceValues].sort(), Object.keys(expected).sort())
    assert.deepStrictEqual([...new Set([...Activities, ...Availabilities])].sort(), Object.keys(expected).sort())
  })

  it("maps each value the same whether it comes as the activity or as the availability", () => {
    for (const value of PresenceValues) {
      const asActivity = mapPresenceDetailed(presence(value, "PresenceUnknown"))
      assert.strictEqual(label(asActivity.command), expected[value], `activity ${value}`)
      const asAvailability = mapPresenceDetailed(presence("PresenceUnknown", value))
      assert.strictEqual(label(asAvailability.command), expected[value], `availability ${value}`)
    }
  })

  it("the more specific value wins, whichever field carries it (the current docs' InACall as availability)", () => {
    const cases: Array<[availability: string, activity: string, target: string, basis: string]> = [
      ["InACall", "Busy", "on-the-phone", "availability"],
      ["Busy", "InACall", "on-the-phone", "activity"],
      ["InAMeeting", "Busy", "meeting", "availability"],
      ["Presenting", "DoNotDisturb", "on-the-phone", "availability"],
      ["DoNotDisturb", "Presenting", "on-the-phone", "activity"],
      ["Focusing", "DoNotDisturb", "dnd", "availability"],
      ["Away", "PresenceUnknown", "away", "availability"],
      ["Busy", "Away", "away", "activity"],
      ["InACall", "InAMeeting", "meeting", "activity"]
    ]
    for (const [availability, activity, target, basis] of cases) {
      const result = mapPresenceDetailed(presence(activity, availability))
      assert.strictEqual(label(result.command), target, `${availability}/${activity}`)
      assert.strictEqual(result.basis, basis, `${availability}/${activity}`)
    }
  })

  it("uses the known field when the other is unknown", () => {
    for (const value of PresenceValues) {
      const fromAvailability = mapPresenceDetailed(presence("SomethingNew", value))
      assert.strictEqual(label(fromAvailability.command), expected[value], value)
      assert.strictEqual(fromAvailability.basis, "availability")
      const fromActivity = mapPresenceDetailed(presence(value, "SomethingNew"))
      assert.strictEqual(label(fromActivity.command), expected[value], value)
      assert.strictEqual(fromActivity.basis, "activity")
    }
  })

  it("clears and reports basis none when both are unknown", () => {
    const result = mapPresenceDetailed(presence("Meditating", "Levitating"))
    assert.deepStrictEqual(result.command, { _tag: "Clear" })
    assert.strictEqual(result.basis, "none")
  })

  it("keeps an unknown value verbatim as Unknown(raw), and reads camelCase values", () => {
    const p = presence("napping", "focusing")
    assert.deepStrictEqual(p.activity, { _tag: "Unknown", raw: "napping" })
    assert.strictEqual(p.availability, "Focusing")
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
    // An override follows the value into either field.
    assert.strictEqual(label(mapPresence(presence("Busy", "InAMeeting"), config)), "busy")
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
  const anyName = fc.oneof(fc.string(), fc.constantFrom(...PresenceValues))
  const casing = (s: string, mode: number) =>
    mode === 0 ? s : mode === 1 ? s.toLowerCase() : mode === 2 ? s.toUpperCase() : s.charAt(0).toLowerCase() + s.slice(1)
  const known = (name: string) => PresenceValues.find((value) => value.toLowerCase() === name.trim().toLowerCase())

  it("every pair of availability × activity maps to the more specific value's entry (activity on a tie)", () => {
    for (const availability of PresenceValues) {
      for (const activity of PresenceValues) {
        const winner = rank(availability) > rank(activity) ? availability : activity
        const result = mapPresenceDetailed(presence(activity, availability))
        assert.strictEqual(label(result.command), expected[winner], `${availability}/${activity}`)
        assert.strictEqual(result.basis, winner === activity ? "activity" : "availability", `${availability}/${activity}`)
      }
    }
  })

  it("any strings decode, and the mapping follows the rule for known, half-known and unknown pairs", () => {
    fc.assert(
      fc.property(anyName, anyName, fc.string(), (activity, availability, id) => {
        const result = mapPresenceDetailed(decode({ id, activity, availability }))
        const a = known(activity)
        const v = known(availability)
        const winner = a === undefined ? v : v === undefined ? a : rank(v) > rank(a) ? v : a
        if (winner === undefined) {
          assert.deepStrictEqual(result.command, { _tag: "Clear" })
          assert.strictEqual(result.basis, "none")
        } else {
          assert.strictEqual(label(result.command), expected[winner])
          assert.strictEqual(result.value, winner)
        }
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
        fc.constantFrom(...PresenceValues),
        fc.constantFrom(...PresenceValues),
        fc.integer({ min: 0, max: 3 }),
        (activity, availability, mode) => {
          const reference = mapPresence(decode({ id: "x", activity, availability }))
          const other = mapPresence(decode({ id: "x", activity: casing(activity, mode), availability: casing(availability, mode) }))
          assert.isTrue(commandEquals(reference, other))
        }
      )
    )
  })

  it("a presence whose id, availability or activity is not a string is refused with a SchemaError, never a crash", () => {
    const notAString = fc.anything().filter((value) => typeof value !== "string")
    fc.assert(
      fc.property(fc.constantFrom("id", "availability", "activity"), notAString, (field, bad) => {
        const result = Schema.decodeUnknownExit(GraphPresence)({ id: "x", availability: "Busy", activity: "InACall", [field]: bad })
        assert.strictEqual(result._tag, "Failure")
      })
    )
    fc.assert(
      fc.property(fc.anything().filter((value) => value === null || typeof value !== "object" || Array.isArray(value)), (value) => {
        assert.strictEqual(Schema.decodeUnknownExit(GraphPresence)(value)._tag, "Failure")
      })
    )
  })
})
