/** Whether a PBX user is on the phone, from a presence list or from RCC call states (pure). */
import { assert, describe, it } from "@effect/vitest"
import { applyCallInfo, callCounts, callEnded, inCallByRcc, onThePhone } from "../../src/pbx/calls/OnThePhone.ts"

describe("on the phone (pure)", () => {
  it("any entry but the connector's own contact showing on-the-phone", () => {
    assert.isTrue(onThePhone([{ contact: "tel:", status: "open", activity: "on-the-phone", note: "" }], "teams:"))
    assert.isTrue(onThePhone([{ contact: "teams:", activity: "dnd" }, { contact: "im:", activity: " On-The-Phone " }], "teams:"))
    assert.isFalse(onThePhone([{ contact: "teams:", activity: "on-the-phone" }], "teams:"), "the connector's own Teams call")
    assert.isFalse(onThePhone([{ contact: "TEAMS:", activity: "on-the-phone" }], "teams:"))
    assert.isFalse(onThePhone([{ contact: "tel:", activity: "busy" }, { contact: "im:", status: "open" }], "teams:"))
    assert.isFalse(onThePhone([], "teams:"))
  })

  it("RCC states: connected counts; ringing and hold as configured; disconnecting and parked never", () => {
    const connectedOnly = { ringing: false, hold: true }
    const withRinging = { ringing: true, hold: false }
    assert.isTrue(callCounts(5, connectedOnly))
    assert.isTrue(callCounts(5 | 0x80, connectedOnly), "outbound")
    assert.isTrue(callCounts(5 | 0x200, connectedOnly), "held by the peer: still talking to someone")
    assert.isTrue(callCounts(5 | 0x100, connectedOnly), "on hold counts when hold is on")
    assert.isFalse(callCounts(5 | 0x100, withRinging), "on hold does not count when hold is off")
    assert.isFalse(callCounts(4, connectedOnly))
    assert.isTrue(callCounts(4, withRinging))
    assert.isTrue(callCounts(1, withRinging), "setting up")
    for (const state of [6, 7, 8, 0]) assert.isFalse(callCounts(state, withRinging), `state ${state}`)
  })

  it("a CallInfo ends its call on a release, active false, or a disconnecting state", () => {
    assert.isTrue(callEnded({ msg: "r-rel", state: 5 }))
    assert.isTrue(callEnded({ msg: "x-rel" }))
    assert.isTrue(callEnded({ active: false, state: 5 }))
    assert.isTrue(callEnded({ state: 7 }))
    assert.isFalse(callEnded({ msg: "x-conn", state: 5 }))
    const one = applyCallInfo(new Map(), { mt: "CallInfo", call: 1, state: 4, msg: "x-alert" })
    const two = applyCallInfo(one, { mt: "CallInfo", call: 2, state: 5 | 0x100, msg: "r-facility" })
    assert.isFalse(inCallByRcc(one, { ringing: false, hold: true }))
    assert.isTrue(inCallByRcc(two, { ringing: false, hold: true }))
    assert.isFalse(inCallByRcc(two, { ringing: false, hold: false }))
    const ended = applyCallInfo(two, { mt: "CallInfo", call: 2, state: 5, msg: "r-rel" })
    assert.deepStrictEqual([...ended.keys()], [1])
  })
})
