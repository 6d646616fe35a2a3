/**
 * What the connector writes into the PBX for one user: set an activity (with a note), or clear the Teams presence.
 */
import { Schema } from "effect"

/** PBX activities a presence source may set (protocols.md §2.4, RFC 4480 based). `""` (available) is expressed as Clear. */
export const PbxActivities = ["away", "busy", "dnd", "meeting", "on-the-phone", "lunch", "vacation"] as const
export const PbxActivity = Schema.Literals(PbxActivities)
export type PbxActivity = typeof PbxActivity.Type

export const isPbxActivity = (value: string): value is PbxActivity =>
  (PbxActivities as ReadonlyArray<string>).includes(value)

export const SetPresence = Schema.TaggedStruct("Set", { activity: PbxActivity, note: Schema.String })
export type SetPresence = typeof SetPresence.Type
export const ClearPresence = Schema.TaggedStruct("Clear", {})
export type ClearPresence = typeof ClearPresence.Type

export const PbxPresenceCommand = Schema.Union([SetPresence, ClearPresence])
export type PbxPresenceCommand = typeof PbxPresenceCommand.Type

export const setPresence = (activity: PbxActivity, note = ""): PbxPresenceCommand => ({ _tag: "Set", activity, note })
export const clearPresence: PbxPresenceCommand = { _tag: "Clear" }

export const commandEquals = (a: PbxPresenceCommand, b: PbxPresenceCommand): boolean =>
  a._tag === "Clear" ? b._tag === "Clear" : b._tag === "Set" && a.activity === b.activity && a.note === b.note

/** A short label for logs and the status page: the activity, or "clear". */
export const commandLabel = (command: PbxPresenceCommand): string =>
  command._tag === "Clear" ? "clear" : command.activity
