/**
 * The part of PbxApi the PBX simulator serves (message shapes as the innovaphone SDK documents them, SDK PbxApi.htm):
 * SetPresence on a user's presence list, and SubscribePresence / UnsubscribePresence with PresenceState and
 * PresenceUpdate. SetPresence can be refused or its answers delayed, to test the connector's retries and timeouts.
 */
import type { SystemModel } from "./SimulatorModel.ts"

export interface PresenceBehaviour {
  /** Refuse every SetPresence with this errorText (undefined = accept). */
  refuse: string | undefined
  /** Apply and answer each SetPresence after this many milliseconds. */
  delayMs: number
}

type Reply = (result: Record<string, unknown>) => void

export class SimPbxApi {
  readonly behaviour: PresenceBehaviour = { refuse: undefined, delayMs: 0 }
  /** Presence subscriptions of the current connection: src → user guid. */
  private readonly subscriptions = new Map<string, string>()
  private readonly pbx: string
  private readonly model: SystemModel
  private readonly send: (message: Record<string, unknown>) => void
  /** Tells every PBX's subscribers about a presence change (set by the system). */
  onPresenceChanged: (guid: string) => void = () => {}

  constructor(pbx: string, model: SystemModel, send: (message: Record<string, unknown>) => void) {
    this.pbx = pbx
    this.model = model
    this.send = send
  }

  /** Handles one PbxApi message; `reply` adds api and src. */
  receive(mt: string, message: Record<string, unknown>, src: string | undefined, reply: Reply): void {
    const text = (key: string) => (typeof message[key] === "string" ? message[key] : undefined)
    // The monitored object is named by `sip` or `num` (SDK PbxApi.htm).
    const monitored = () => this.model.findUser(undefined, text("sip")) ?? this.model.findUserByNumber(text("num"))
    if (mt === "SubscribePresence") {
      const user = monitored()
      if (user === undefined) return reply({ mt: "SubscribePresenceResult", error: 1, errorText: "unknown user" })
      this.subscriptions.set(src ?? "", user.guid)
      reply({ mt: "SubscribePresenceResult" })
      // The monitor is up: PresenceState with the endpoint, then the presence itself.
      reply({ mt: "PresenceState", up: true, sip: user.h323, num: user.e164 ?? "", dn: user.dn ?? user.cn, email: user.emails?.[0] ?? "" })
      this.pushPresence(user.guid)
      return
    }
    if (mt === "UnsubscribePresence") {
      // Stops the monitor started with this src, or every monitor of the named user on this connection.
      const user = monitored()
      for (const [key, guid] of this.subscriptions) {
        if (key === (src ?? "") || guid === user?.guid) this.subscriptions.delete(key)
      }
      return reply({ mt: "UnsubscribePresenceResult" })
    }
    if (mt !== "SetPresence") return reply({ mt: `${mt}Result`, error: 1, errorText: `unknown message ${mt}` })
    const apply = () => this.setPresence(text, reply)
    if (this.behaviour.delayMs > 0) setTimeout(apply, this.behaviour.delayMs)
    else apply()
  }

  private setPresence(text: (key: string) => string | undefined, reply: Reply): void {
    const user = this.model.findUser(text("guid"), text("sip"))
    const contact = text("contact") ?? ""
    const record = { pbx: this.pbx, guid: text("guid"), sip: text("sip"), contact, activity: text("activity") ?? "", note: text("note") ?? "" }
    if (user === undefined || this.behaviour.refuse !== undefined) {
      this.model.setPresenceLog.push({ ...record, accepted: false })
      reply({ mt: "SetPresenceResult", error: 1, errorText: user === undefined ? "unknown user" : this.behaviour.refuse })
      this.model.changed()
      return
    }
    this.model.setPresence(user.guid, contact, record.activity, record.note)
    this.model.setPresenceLog.push({ ...record, accepted: true })
    reply({ mt: "SetPresenceResult" })
    this.model.changed()
    this.onPresenceChanged(user.guid)
  }

  /** Sends PresenceUpdate `{presence}` (SDK PbxApi.htm) to this connection's subscribers of a user. */
  pushPresence(guid: string): void {
    for (const [src, subscribed] of this.subscriptions) {
      if (subscribed === guid) this.send({ api: "PbxApi", mt: "PresenceUpdate", src, presence: this.model.presence.get(guid) ?? [] })
    }
  }

  /** A new connection starts without subscriptions. */
  reset(): void {
    this.subscriptions.clear()
  }
}
