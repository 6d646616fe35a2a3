/**
 * The PBX messages that tell the connector when a user is on the phone, as Schemas: PbxApi's presence monitor
 * (`SubscribePresence` → `SubscribePresenceResult`, then `PresenceUpdate {presence: [...]}`, SDK PbxApi.htm) and RCC's
 * call monitor (`UserInitialize {cn}` → `UserInitializeResult {user}`, then `CallInfo {user, call, state, msg}`, SDK
 * RCC.htm). Every indication carries the `src` of the request that started it.
 */
import { Schema } from "effect"

/** One entry of a user's presence list (SDK PbxApi.htm, "presence"); the newest comes first. */
export const PresenceItem = Schema.Struct({
  contact: Schema.optionalKey(Schema.String),
  status: Schema.optionalKey(Schema.String),
  activity: Schema.optionalKey(Schema.String),
  note: Schema.optionalKey(Schema.String)
})
export type PresenceItem = typeof PresenceItem.Type

export const PresenceUpdate = Schema.Struct({
  mt: Schema.Literal("PresenceUpdate"),
  presence: Schema.optionalKey(Schema.Array(PresenceItem))
})

/** `UserInitializeResult`: the handle that the user's CallInfo messages carry. */
export const UserInitializeResult = Schema.Struct({
  mt: Schema.Literal("UserInitializeResult"),
  user: Schema.optionalKey(Schema.Number)
})

/** `CallInfo`: one call of a monitored user changed; `state` is the SOAP API's bit field (SDK doc/pbx/soap.htm). */
export const CallInfo = Schema.Struct({
  mt: Schema.Literal("CallInfo"),
  user: Schema.optionalKey(Schema.Number),
  call: Schema.Number,
  state: Schema.optionalKey(Schema.Number),
  msg: Schema.optionalKey(Schema.String),
  /** The SOAP API's CallInfo has it (false once the call is gone); RCC's documentation does not list it. */
  active: Schema.optionalKey(Schema.Boolean)
})
export type CallInfo = typeof CallInfo.Type

/** The API each way of watching calls needs enabled on the App object (the checkmark of the same name). */
export const watchApis = { presence: "PbxApi", rcc: "RCC" } as const
