/**
 * The pure Teams → PBX presence mapping (protocols.md §2.7), overridable per Teams presence value, plus the same
 * mapping as a one-way Schema so that decoding a Graph presence yields the PBX command directly.
 *
 * Both fields are read: Microsoft carries a specific value such as InACall in `activity` on older pages and samples,
 * and in `availability` on its current one. Of the two known values the more specific one decides; at equal
 * specificity the activity decides (the original connector mapped by activity).
 */
import { Schema, SchemaGetter } from "effect"
import { findPresenceValue, GraphPresence, isUnknown, type PresenceValue, PresenceValues } from "./Presence.ts"
import { clearPresence, isPbxActivity, type PbxActivity, PbxActivities, PbxPresenceCommand, setPresence } from "./PbxPresence.ts"

/** A mapping target: a PBX activity, or "clear" (the Teams presence is removed from the PBX). */
export type MappingTarget = PbxActivity | "clear"

/**
 * The original connector's table (protocols.md §2.7), completed with the values Microsoft documents today, each with
 * the nearest PBX presence: Focusing (Teams shows it under Do not disturb) → dnd, AvailableIdle → clear (available),
 * BusyIdle → busy.
 */
export const defaultMappingTable: Readonly<Record<PresenceValue, MappingTarget>> = {
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

/**
 * How much a value says about what the user is doing: 3 = a specific activity (a call, a meeting, focus time, out of
 * office), 2 = a base state, 1 = nothing known. The more specific of the two fields decides.
 */
export const specificity: Readonly<Record<PresenceValue, 1 | 2 | 3>> = {
  InACall: 3,
  InAConferenceCall: 3,
  InAMeeting: 3,
  Presenting: 3,
  Focusing: 3,
  UrgentInterruptionsOnly: 3,
  OutOfOffice: 3,
  OffWork: 3,
  Available: 2,
  AvailableIdle: 2,
  Away: 2,
  BeRightBack: 2,
  Busy: 2,
  BusyIdle: 2,
  DoNotDisturb: 2,
  Inactive: 2,
  Offline: 2,
  PresenceUnknown: 1
}

export interface NoteOptions {
  readonly enabled: boolean
  readonly maxLength: number
}

export interface MappingConfig {
  /** Overrides by Teams presence value, whichever field carries it. Keys are normalised to the documented spelling. */
  readonly values: Partial<Record<PresenceValue, MappingTarget>>
  readonly note: NoteOptions
}

export const defaultMappingConfig: MappingConfig = {
  values: {},
  note: { enabled: false, maxLength: 100 }
}

/** Which field decided the mapping: the caller counts `"none"` (both values unknown). */
export type MappingBasis = "activity" | "availability" | "none"

export interface MappingResult {
  readonly command: PbxPresenceCommand
  readonly basis: MappingBasis
  /** The value that decided it, when one did. */
  readonly value?: PresenceValue
}

const targetToCommand = (target: MappingTarget, note: string): PbxPresenceCommand =>
  target === "clear" ? clearPresence : setPresence(target, note)

/** The field whose value decides: the more specific known one, the activity when both are equally specific. */
export const decidingField = (presence: Pick<GraphPresence, "availability" | "activity">): MappingBasis => {
  const { activity, availability } = presence
  if (isUnknown(activity)) return isUnknown(availability) ? "none" : "availability"
  if (isUnknown(availability)) return "activity"
  return specificity[availability] > specificity[activity] ? "availability" : "activity"
}

/** Maps one Graph presence to the PBX command, and says which field decided it. Total: never throws. */
export const mapPresenceDetailed = (presence: GraphPresence, config: MappingConfig = defaultMappingConfig): MappingResult => {
  const basis = decidingField(presence)
  const value = basis === "activity" ? presence.activity : basis === "availability" ? presence.availability : undefined
  if (value === undefined || isUnknown(value)) return { command: clearPresence, basis: "none" }
  const note = config.note.enabled ? presenceNote(presence, config.note.maxLength) : ""
  const target = config.values[value] ?? defaultMappingTable[value]
  return { command: targetToCommand(target, note), basis, value }
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
 * Validates overrides: every key must name a documented Teams presence value, every value a PBX activity or "clear".
 * Returns all issues at once, so a configuration is reported whole.
 */
export const buildMappingConfig = (
  overrides: MappingOverrides,
  note: NoteOptions = defaultMappingConfig.note
): { readonly config: MappingConfig; readonly issues: ReadonlyArray<MappingIssue> } => {
  const values: Partial<Record<PresenceValue, MappingTarget>> = {}
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
    const presenceValue = findPresenceValue(key)
    if (presenceValue === undefined) {
      issues.push({
        key,
        message: `"${key}" is not a Teams activity or availability; expected one of ${PresenceValues.join(", ")}`
      })
      continue
    }
    if (target !== undefined) values[presenceValue] = target
  }
  return { config: { values, note }, issues }
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
