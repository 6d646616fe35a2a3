/**
 * Teams presence as Microsoft Graph sends it, decoded case-insensitively and without ever failing on a value that
 * Microsoft adds later: an unknown availability or activity becomes an explicit `Unknown(raw)`.
 */
import { Schema, SchemaGetter } from "effect"

/**
 * Documented `availability` values. Microsoft's current presence page also lists Focusing, InACall, InAMeeting and
 * Presenting here (docs/protocol-notes.md, "Presence values"), which older pages and samples carry in `activity` only.
 */
export const Availabilities = [
  "Available",
  "AvailableIdle",
  "Away",
  "BeRightBack",
  "Busy",
  "BusyIdle",
  "DoNotDisturb",
  "Focusing",
  "InACall",
  "InAMeeting",
  "Offline",
  "PresenceUnknown",
  "Presenting"
] as const
export type KnownAvailability = typeof Availabilities[number]

/** Documented `activity` values (protocols.md §1.4). */
export const Activities = [
  "Available",
  "Away",
  "BeRightBack",
  "Busy",
  "DoNotDisturb",
  "InACall",
  "InAConferenceCall",
  "Inactive",
  "InAMeeting",
  "Offline",
  "OffWork",
  "OutOfOffice",
  "PresenceUnknown",
  "Presenting",
  "UrgentInterruptionsOnly"
] as const
export type KnownActivity = typeof Activities[number]

/**
 * Every value either field may carry. Both fields decode against this one vocabulary, because Microsoft moves values
 * between them (a specific value such as InACall may arrive as the availability or as the activity).
 */
export const PresenceValues: ReadonlyArray<KnownAvailability | KnownActivity> = [...new Set([...Availabilities, ...Activities])]
  .sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1))
export type PresenceValue = typeof PresenceValues[number]

/** A value Graph sent that the project does not know (yet); kept verbatim for logs and counters. */
export const UnknownValue = Schema.TaggedStruct("Unknown", { raw: Schema.String })
export type UnknownValue = typeof UnknownValue.Type

export const isUnknown = (value: string | UnknownValue): value is UnknownValue => typeof value !== "string"

/** Builds a schema that decodes a string to one of `known` (ignoring case) or to `Unknown(raw)`; it never fails on a string. */
const caseInsensitiveLiterals = <const L extends ReadonlyArray<string>>(known: L) => {
  const byLowerCase = new Map<string, L[number]>(known.map((value) => [value.toLowerCase(), value]))
  const target = Schema.Union([Schema.Literals(known), UnknownValue])
  return Schema.String.pipe(
    Schema.decodeTo(target, {
      decode: SchemaGetter.transform((raw: string): L[number] | UnknownValue =>
        byLowerCase.get(raw.trim().toLowerCase()) ?? { _tag: "Unknown", raw }
      ),
      encode: SchemaGetter.transform((value: L[number] | UnknownValue): string =>
        typeof value === "string" ? value : value.raw
      )
    })
  )
}

/** A presence value as either field carries it: one of `PresenceValues`, or `Unknown(raw)`. */
export const PresenceValueSchema = caseInsensitiveLiterals(PresenceValues)
export const Availability = PresenceValueSchema
export type Availability = typeof Availability.Type
export const Activity = PresenceValueSchema
export type Activity = typeof Activity.Type

/** Looks up a documented presence value ignoring case (used for configuration keys). */
export const findPresenceValue = (name: string): PresenceValue | undefined =>
  PresenceValues.find((value) => value.toLowerCase() === name.trim().toLowerCase())

export const ItemBody = Schema.Struct({
  content: Schema.optionalKey(Schema.NullOr(Schema.String)),
  contentType: Schema.optionalKey(Schema.NullOr(Schema.String))
})

/** `expiryDateTime` is a `dateTimeTimeZone` object in the docs; some revisions show a plain string. */
const DateTimeTimeZone = Schema.Union([
  Schema.String,
  Schema.Struct({ dateTime: Schema.String, timeZone: Schema.optionalKey(Schema.NullOr(Schema.String)) })
])

export const StatusMessage = Schema.Struct({
  message: Schema.optionalKey(Schema.NullOr(ItemBody)),
  expiryDateTime: Schema.optionalKey(Schema.NullOr(DateTimeTimeZone)),
  publishedDateTime: Schema.optionalKey(Schema.NullOr(Schema.String))
})
export type StatusMessage = typeof StatusMessage.Type

export const OutOfOfficeSettings = Schema.Struct({
  message: Schema.optionalKey(Schema.NullOr(Schema.String)),
  isOutOfOffice: Schema.optionalKey(Schema.NullOr(Schema.Boolean))
})
export type OutOfOfficeSettings = typeof OutOfOfficeSettings.Type

/** The Graph `presence` resource: from GET /presence, getPresencesByUserId and decrypted rich notifications. */
export const GraphPresence = Schema.Struct({
  id: Schema.String,
  availability: Availability,
  activity: Activity,
  statusMessage: Schema.optionalKey(Schema.NullOr(StatusMessage)),
  outOfOfficeSettings: Schema.optionalKey(Schema.NullOr(OutOfOfficeSettings)),
  sequenceNumber: Schema.optionalKey(Schema.NullOr(Schema.String))
})
export type GraphPresence = typeof GraphPresence.Type
export type GraphPresenceEncoded = typeof GraphPresence.Encoded

export const decodeGraphPresence = Schema.decodeUnknownEffect(GraphPresence)
export const decodeGraphPresenceSync = Schema.decodeUnknownSync(GraphPresence)
export const decodeGraphPresenceResult = Schema.decodeUnknownResult(GraphPresence)
