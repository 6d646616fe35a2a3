/**
 * The pure Teams → PBX presence mapping (protocols.md §2.7), overridable per Teams activity, plus the same mapping as
 * a one-way Schema so that decoding a Graph presence yields the PBX command directly.
 */
import { Schema, SchemaGetter } from "effect"
import {
  Activities,
  type Availability,
  Availabilities,
  findActivity,
  findAvailability,
  GraphPresence,
  isUnknown,
  type KnownActivity,
  type KnownAvailability
} from "./Presence.ts"
import { clearPresence, isPbxActivity, type PbxActivity, PbxActivities, PbxPresenceCommand, setPresence } from "./PbxPresence.ts"

/** A mapping target: a PBX activity, or "clear" (the Teams presence is removed from the PBX). */
export type MappingTarget = PbxActivity | "clear"

/** The original connector's table, by Teams activity. */
export const defaultActivityTable: Readonly<Record<KnownActivity, MappingTarget>> = {
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

/** Used only when the activity is not one the project knows. */
export const defaultAvailabilityTable: Readonly<Record<KnownAvailability, MappingTarget>> = {
  Available: "clear",
  AvailableIdle: "clear",
  Away: "away",
  BeRightBack: "away",
  Busy: "busy",
  BusyIdle: "busy",
  DoNotDisturb: "dnd",
  Offline: "clear",
  PresenceUnknown: "clear"
}

export interface NoteOptions {
  readonly enabled: boolean
  readonly maxLength: number
}

export interface MappingConfig {
  /** Overrides by Teams activity (or, for the fallback, availability). Keys are normalised to the documented spelling. */
  readonly activities: Partial<Record<KnownActivity, MappingTarget>>
  readonly availabilities: Partial<Record<KnownAvailability, MappingTarget>>
  readonly note: NoteOptions
}

export const defaultMappingConfig: MappingConfig = {
  activities: {},
  availabilities: {},
  note: { enabled: false, maxLength: 100 }
}

/** Which field decided the mapping: the caller counts `"none"` (both values unknown). */
export type MappingBasis = "activity" | "availability" | "none"

export interface MappingResult {
  readonly command: PbxPresenceCommand
  readonly basis: MappingBasis
}

const targetToCommand = (target: MappingTarget, note: string): PbxPresenceCommand =>
  target === "clear" ? clearPresence : setPresence(target, note)

const availabilityTarget = (availability: Availability, config: MappingConfig): MappingTarget | undefined =>
  isUnknown(availability)
    ? undefined
    : config.availabilities[availability] ?? defaultAvailabilityTable[availability]

/** Maps one Graph presence to the PBX command, and says which field decided it. Total: never throws. */
export const mapPresenceDetailed = (presence: GraphPresence, config: MappingConfig = defaultMappingConfig): MappingResult => {
  const note = config.note.enabled ? presenceNote(presence, config.note.maxLength) : ""
  if (!isUnknown(presence.activity)) {
    const target = config.activities[presence.activity] ?? defaultActivityTable[presence.activity]
    return { command: targetToCommand(target, note), basis: "activity" }
  }
  const fallback = availabilityTarget(presence.availability, config)
  return fallback === undefined
    ? { command: clearPresence, basis: "none" }
    : { command: targetToCommand(fallback, note), basis: "availability" }
}

export const mapPresence = (presence: GraphPresence, config: MappingConfig = defaultMappingConfig): PbxPresenceCommand =>
  mapPresenceDetailed(presence, config).command

/** The note text: the out-of-office message while out of office, else the status message; plain text, trimmed, capped. */
export const presenceNote = (presence: GraphPresence, maxLength: number): string => {
  const ooo = presence.outOfOfficeSettings
  const raw = ooo?.isOutOfOffice === true && ooo.message
    ? ooo.message
    : presence.statusMessage?.message?.content ?? ""
  return capLength(plainText(raw), maxLength)
}

const entities: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: "\"", apos: "'", nbsp: " " }

/** Strips tags and decodes the few entities Teams emits in status messages. Not an HTML sanitiser: the PBX gets plain text. */
export const plainText = (html: string): string =>
  html
    .replace(/<br\s*\/?>/gi, " ")
    .replace(/<[^>]*>/g, "")
    .replace(/&(#\d+|#x[0-9a-f]+|[a-z]+);/gi, (match, name: string) => {
      if (name.startsWith("#x") || name.startsWith("#X")) return String.fromCodePoint(parseInt(name.slice(2), 16) || 32)
      if (name.startsWith("#")) return String.fromCodePoint(parseInt(name.slice(1), 10) || 32)
      return entities[name.toLowerCase()] ?? match
    })
    .replace(/\s+/g, " ")
    .trim()

const capLength = (text: string, maxLength: number): string => {
  const chars = Array.from(text)
  if (chars.length <= maxLength) return text
  return maxLength <= 1 ? chars.slice(0, maxLength).join("") : chars.slice(0, maxLength - 1).join("").trimEnd() + "…"
}

// ---------------------------------------------------------------------------------------------------------------
// Mapping configuration as it appears in the configuration file.

/** The mapping section of the configuration file: `{ "InAMeeting": "busy", "BusyIdle": "clear", ... }`, keys case-insensitive. */
export const MappingOverrides = Schema.Record(Schema.String, Schema.String)
export type MappingOverrides = typeof MappingOverrides.Type

export interface MappingIssue {
  readonly key: string
  readonly message: string
}

/**
 * Validates overrides: every key must name a documented Teams activity or availability, every value a PBX activity or
 * "clear". Returns all issues at once, so a configuration is reported whole.
 */
export const buildMappingConfig = (
  overrides: MappingOverrides,
  note: NoteOptions = defaultMappingConfig.note
): { readonly config: MappingConfig; readonly issues: ReadonlyArray<MappingIssue> } => {
  const activities: Partial<Record<KnownActivity, MappingTarget>> = {}
  const availabilities: Partial<Record<KnownAvailability, MappingTarget>> = {}
  const issues: Array<MappingIssue> = []
  for (const [key, rawValue] of Object.entries(overrides)) {
    const value = rawValue.trim().toLowerCase()
    const target: MappingTarget | undefined = value === "clear" || value === "online" || value === ""
      ? "clear"
      : isPbxActivity(value)
      ? value
      : undefined
    if (target === undefined) {
      issues.push({
        key,
        message: `"${rawValue}" is not a PBX activity; expected one of ${PbxActivities.join(", ")} or clear`
      })
    }
    const activity = findActivity(key)
    const availability = findAvailability(key)
    if (activity === undefined && availability === undefined) {
      issues.push({
        key,
        message: `"${key}" is not a Teams activity or availability; expected one of ${
          [...new Set([...Activities, ...Availabilities])].join(", ")
        }`
      })
      continue
    }
    if (target === undefined) continue
    if (activity !== undefined) activities[activity] = target
    // A name that is both (Away, Busy, …) is an activity override; availability-only names (BusyIdle) feed the fallback.
    if (availability !== undefined && activity === undefined) availabilities[availability] = target
  }
  return { config: { activities, availabilities, note }, issues }
}

// ---------------------------------------------------------------------------------------------------------------
// The mapping as a Schema: Graph presence wire shape → PBX command (decode only).

export const PbxCommandFromGraphPresence = (config: MappingConfig = defaultMappingConfig) =>
  GraphPresence.pipe(
    Schema.decodeTo(Schema.toType(PbxPresenceCommand), {
      decode: SchemaGetter.transform((presence: GraphPresence) => mapPresence(presence, config)),
      encode: SchemaGetter.forbidden(() => "a PBX presence command cannot be turned back into a Teams presence")
    })
  )
