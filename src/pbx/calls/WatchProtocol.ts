/**
 * The two ways of watching a user's calls on a PBX connection, behind one shape: what to send to start and stop
 * watching a user, and what an indication means for that user. `presence` uses PbxApi's presence monitor and the
 * on-the-phone activity the PBX generates; `rcc` uses RCC's call monitor and its exact call states. Every message
 * carries the src `calls:<guid>`, which the PBX echoes in the result and in every indication (SDK AppWebsocket.htm).
 */
import { Schema } from "effect"
import type { PbxMessage } from "../socket/PbxMessages.ts"
import { ResultError } from "../socket/PbxMessages.ts"
import { CallInfo, PresenceUpdate, UserInitializeResult, watchApis } from "./CallMessages.ts"
import { applyCallInfo, type CallStatePolicy, inCallByRcc, onThePhone } from "./OnThePhone.ts"

export type CallSource = keyof typeof watchApis

/** Who is watched: the PBX user, by the names each API wants. */
export interface WatchedUser {
  readonly guid: string
  /** The user name (SIP), for SubscribePresence. */
  readonly h323: string
  /** The long name, for RCC UserInitialize. */
  readonly cn: string
  /** The PBX the user is registered at. */
  readonly loc: string
}

/** What the protocol keeps per watched user between indications. */
export interface WatchMemory {
  /** RCC: the handle UserInitialize answered. */
  readonly handle?: number | undefined
  /** RCC: live calls, call handle → state. */
  readonly calls?: ReadonlyMap<number, number> | undefined
}

/** What an indication means for the user it names. */
export type Reading =
  /** The PBX watches the user now; `inCall` when the answer itself tells (RCC: no call until a CallInfo says so). */
  | { readonly _tag: "Accepted"; readonly memory: WatchMemory; readonly inCall?: boolean | undefined }
  | { readonly _tag: "Refused"; readonly reason: string }
  | { readonly _tag: "InCall"; readonly inCall: boolean; readonly memory: WatchMemory }
  | { readonly _tag: "Malformed"; readonly reason: string }
  | { readonly _tag: "Ignored" }

export interface WatchProtocol {
  readonly source: CallSource
  /** The App object's API (and checkmark) this protocol needs. */
  readonly api: string
  /** Sent once per connection before the first user (RCC: Initialize). */
  readonly open: ReadonlyArray<PbxMessage>
  readonly watch: (user: WatchedUser) => PbxMessage
  readonly unwatch: (user: WatchedUser, memory: WatchMemory) => PbxMessage | undefined
  readonly read: (mt: string, message: unknown, memory: WatchMemory) => Reading
}

export const srcPrefix = "calls:"
export const srcOf = (guid: string): string => `${srcPrefix}${guid}`

const decodeError = Schema.decodeUnknownOption(ResultError)
/** The PBX's refusal in a result, if it is one. */
const refusal = (message: unknown): string | undefined => {
  const result = decodeError(message)
  if (result._tag === "None") return undefined
  const { error, errorText } = result.value
  const failed = (error !== undefined && error !== false && error !== 0 && error !== "") || (errorText !== undefined && errorText !== "")
  return failed ? (errorText ?? `error ${String(error)}`) : undefined
}

const decodePresence = Schema.decodeUnknownResult(PresenceUpdate)
const decodeUserInitialize = Schema.decodeUnknownResult(UserInitializeResult)
const decodeCallInfo = Schema.decodeUnknownResult(CallInfo)

export const presenceProtocol = (ownContact: string): WatchProtocol => ({
  source: "presence",
  api: watchApis.presence,
  open: [],
  watch: (user) => ({ api: "PbxApi", mt: "SubscribePresence", sip: user.h323, src: srcOf(user.guid) }),
  unwatch: (user) => ({ api: "PbxApi", mt: "UnsubscribePresence", sip: user.h323, src: srcOf(user.guid) }),
  read: (mt, message, memory) => {
    if (mt === "SubscribePresenceResult") {
      const refused = refusal(message)
      return refused === undefined ? { _tag: "Accepted", memory } : { _tag: "Refused", reason: refused }
    }
    if (mt !== "PresenceUpdate") return { _tag: "Ignored" }
    const update = decodePresence(message)
    if (update._tag === "Failure") return { _tag: "Malformed", reason: update.failure.message }
    return { _tag: "InCall", inCall: onThePhone(update.success.presence ?? [], ownContact), memory }
  }
})

export const rccProtocol = (policy: CallStatePolicy): WatchProtocol => ({
  source: "rcc",
  api: watchApis.rcc,
  open: [{ api: "RCC", mt: "Initialize", src: `${srcPrefix}initialize` }],
  watch: (user) => ({ api: "RCC", mt: "UserInitialize", cn: user.cn, src: srcOf(user.guid) }),
  unwatch: (user, memory) =>
    memory.handle === undefined ? undefined : { api: "RCC", mt: "UserEnd", user: memory.handle, src: srcOf(user.guid) },
  read: (mt, message, memory) => {
    if (mt === "UserInitializeResult") {
      const refused = refusal(message)
      if (refused !== undefined) return { _tag: "Refused", reason: refused }
      const result = decodeUserInitialize(message)
      if (result._tag === "Failure") return { _tag: "Malformed", reason: result.failure.message }
      const handle = result.success.user
      return handle === undefined || handle === 0
        ? { _tag: "Refused", reason: "the PBX answered no user handle" }
        : { _tag: "Accepted", memory: { handle, calls: new Map() }, inCall: false }
    }
    if (mt !== "CallInfo") return { _tag: "Ignored" }
    const info = decodeCallInfo(message)
    if (info._tag === "Failure") return { _tag: "Malformed", reason: info.failure.message }
    const calls = applyCallInfo(memory.calls ?? new Map(), info.success)
    return { _tag: "InCall", inCall: inCallByRcc(calls, policy), memory: { ...memory, calls } }
  }
})
