/**
 * PbxApi's presence monitor on one simulated App object connection (SDK doc/appwebsocket/PbxApi.htm):
 * `SubscribePresence {sip | num}` → `SubscribePresenceResult`, `PresenceState {up, sip, num, dn, email}`, then
 * `PresenceUpdate {presence}` at once and on every change, each with the subscription's src; `UnsubscribePresence`
 * stops it. What a watcher sees is SystemModel.presenceFor: the list, with on-the-phone while the user has calls.
 */
import type { SystemModel } from "./SimulatorModel.ts"

type Reply = (result: Record<string, unknown>) => void

export class SimPresenceMonitor {
  /** Presence subscriptions of this connection: src → user guid. */
  private readonly subscriptions = new Map<string, string>()
  private readonly pbx: string
  private readonly model: SystemModel
  private readonly send: (message: Record<string, unknown>) => void

  constructor(pbx: string, model: SystemModel, send: (message: Record<string, unknown>) => void) {
    this.pbx = pbx
    this.model = model
    this.send = send
  }

  reset(): void {
    this.subscriptions.clear()
  }

  /** Handles SubscribePresence / UnsubscribePresence; false for any other message. */
  receive(mt: string, message: Record<string, unknown>, src: string | undefined, reply: Reply): boolean {
    if (mt !== "SubscribePresence" && mt !== "UnsubscribePresence") return false
    const text = (key: string) => (typeof message[key] === "string" ? message[key] : undefined)
    // The monitored object is named by `sip` or `num` (SDK PbxApi.htm).
    const user = this.model.findUser(undefined, text("sip")) ?? this.model.findUserByNumber(text("num"))
    if (mt === "UnsubscribePresence") {
      // Stops the monitor started with this src, or every monitor of the named user on this connection.
      for (const [key, guid] of this.subscriptions) {
        if (key === (src ?? "") || guid === user?.guid) this.subscriptions.delete(key)
      }
      reply({ mt: "UnsubscribePresenceResult" })
      return true
    }
    this.model.watchLog.push({ pbx: this.pbx, mt, guid: user?.guid })
    this.model.changed()
    if (user === undefined) {
      reply({ mt: "SubscribePresenceResult", error: 1, errorText: "unknown user" })
      return true
    }
    this.subscriptions.set(src ?? "", user.guid)
    reply({ mt: "SubscribePresenceResult" })
    // The monitor is up: PresenceState with the endpoint, then the presence itself.
    reply({ mt: "PresenceState", up: true, sip: user.h323, num: user.e164 ?? "", dn: user.dn ?? user.cn, email: user.emails?.[0] ?? "" })
    this.push(user.guid)
    return true
  }

  /** Sends PresenceUpdate `{presence}` to this connection's subscribers of a user. */
  push(guid: string): void {
    for (const [src, subscribed] of this.subscriptions) {
      if (subscribed === guid) this.send({ api: "PbxApi", mt: "PresenceUpdate", src, presence: this.model.presenceFor(guid) })
    }
  }
}
