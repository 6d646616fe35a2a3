/**
 * The part of PbxApi the PBX simulator serves (message shapes as the innovaphone SDK documents them, SDK PbxApi.htm):
 * SetPresence on a user's presence list, and the presence monitor (SubscribePresence / UnsubscribePresence with
 * PresenceState and PresenceUpdate: SimPresenceMonitor.ts). SetPresence can be refused or its answers delayed, to test
 * the connector's retries and timeouts.
 */
import { SimPresenceMonitor } from "./SimPresenceMonitor.ts"
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
  /** The presence monitor of the current connection. */
  private readonly monitor: SimPresenceMonitor
  private readonly pbx: string
  private readonly model: SystemModel
  /** Tells every PBX's subscribers about a presence change (set by the system). */
  onPresenceChanged: (guid: string) => void = () => {}

  constructor(pbx: string, model: SystemModel, send: (message: Record<string, unknown>) => void) {
    this.pbx = pbx
    this.model = model
    this.monitor = new SimPresenceMonitor(pbx, model, send)
  }

  /** Handles one PbxApi message; `reply` adds api and src. */
  receive(mt: string, message: Record<string, unknown>, src: string | undefined, reply: Reply): void {
    if (this.monitor.receive(mt, message, src, reply)) return
    const text = (key: string) => (typeof message[key] === "string" ? message[key] : undefined)
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
    this.monitor.push(guid)
  }

  /** A new connection starts without subscriptions. */
  reset(): void {
    this.monitor.reset()
  }
}
