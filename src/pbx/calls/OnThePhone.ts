/**
 * Whether a PBX user is on the phone, decided from what the PBX sends — pure functions, one per way of watching.
 *
 * Presence: the PBX generates the activity `on-the-phone` while the user has calls, for watchers holding the "On the
 * phone" visibility right (wiki Reference13r1:PBX/Objects/Visibility). Which entry of the presence list carries it is
 * not documented (UNCONFIRMED, docs/protocol-notes.md): any entry counts except the connector's own contact — the
 * connector writes `on-the-phone` there itself for a Teams call, and that must never look like a PBX call.
 *
 * RCC: each CallInfo carries the call's state (SOAP API bit field: 1–3 setting up, 4 alerting, 5 connected,
 * 6/7 disconnecting, 8 parked; 0x100 on hold). How RCC marks a call's end is not documented (UNCONFIRMED): a `msg`
 * naming a release (`x-rel`, `r-rel`), `active: false` as in the SOAP API, or a disconnecting/parked state ends it.
 */
import type { CallInfo, PresenceItem } from "./CallMessages.ts"

export const onThePhoneActivity = "on-the-phone"

/** True when an entry other than `ownContact` shows `on-the-phone`. */
export const onThePhone = (presence: ReadonlyArray<PresenceItem>, ownContact: string): boolean =>
  presence.some((item) =>
    (item.contact ?? "").trim().toLowerCase() !== ownContact.trim().toLowerCase() &&
    (item.activity ?? "").trim().toLowerCase() === onThePhoneActivity
  )

/** Which RCC call states make a user "in a call". */
export interface CallStatePolicy {
  /** A call ringing at the user (or being set up) counts too, not only a connected one. */
  readonly ringing: boolean
  /** A connected call put on hold still counts. */
  readonly hold: boolean
}

const stateBits = { mask: 0xf, alerting: 4, connected: 5, hold: 0x100 } as const

/** Whether a CallInfo ends its call. */
export const callEnded = (info: Pick<CallInfo, "state" | "msg" | "active">): boolean => {
  if (info.active === false) return true
  const msg = (info.msg ?? "").toLowerCase()
  if (msg.endsWith("-rel") || msg === "rel") return true
  const phase = (info.state ?? 0) & stateBits.mask
  return phase >= 6
}

/** Whether a live call with this state counts as being on the phone. */
export const callCounts = (state: number, policy: CallStatePolicy): boolean => {
  const phase = state & stateBits.mask
  if (phase === stateBits.connected) return policy.hold || (state & stateBits.hold) === 0
  if (phase >= 1 && phase <= stateBits.alerting) return policy.ringing
  return false
}

/** A user's live calls (call handle → last state) after one CallInfo. */
export const applyCallInfo = (calls: ReadonlyMap<number, number>, info: CallInfo): ReadonlyMap<number, number> => {
  const next = new Map(calls)
  if (callEnded(info)) next.delete(info.call)
  else next.set(info.call, info.state ?? next.get(info.call) ?? 0)
  return next
}

/** On the phone through RCC: any live call counts under the policy. */
export const inCallByRcc = (calls: ReadonlyMap<number, number>, policy: CallStatePolicy): boolean =>
  [...calls.values()].some((state) => callCounts(state, policy))
