/**
 * The RCC API of one simulated App object connection (SDK doc/appwebsocket/RCC.htm): `Initialize` lists the users
 * that have access to the App (UserInfo, then InitializeResult), `UserInitialize {cn}` starts monitoring a user and
 * answers a user handle, after which every call of that user is indicated with `CallInfo {user, call, state, msg}`
 * carrying the src of the UserInitialize; `UserEnd {user}` stops it. The state is the PBX SOAP API's bit field
 * (SDK doc/pbx/soap.htm, CallInfo): 4 alert, 5 connect in the low nibble, 0x80 outbound (PBX → phone), 0x100 on hold.
 */
import type { SimCall, SystemModel } from "./SimulatorModel.ts"

type Reply = (result: Record<string, unknown>) => void

/** The CallInfo state of a call: alerting 4 or connected 5, plus 0x100 while on hold. */
export const rccState = (call: SimCall): number => (call.state === "alerting" ? 4 : 5) | (call.hold ? 0x100 : 0)

export class SimRcc {
  /** Monitored users of this connection: handle → the user's guid and the UserInitialize's src. */
  private readonly monitors = new Map<number, { readonly guid: string; readonly src: string | undefined }>()
  private nextHandle = 1

  private readonly appObject: string
  private readonly model: SystemModel
  private readonly send: (message: Record<string, unknown>) => void

  private readonly pbx: string

  constructor(pbx: string, appObject: string, model: SystemModel, send: (message: Record<string, unknown>) => void) {
    this.pbx = pbx
    this.appObject = appObject
    this.model = model
    this.send = send
  }

  reset(): void {
    this.monitors.clear()
  }

  /** Users with access to the App object (their `apps` name it) are visible to RCC. */
  private visible(guid: string): boolean {
    return (this.model.users.get(guid)?.user.apps ?? []).includes(this.appObject)
  }

  receive(mt: string, message: Record<string, unknown>, src: string | undefined, reply: Reply): void {
    if (mt === "Initialize") {
      for (const { user, home } of this.model.users.values()) {
        if (!this.visible(user.guid)) continue
        this.send({
          api: "RCC",
          mt: "UserInfo",
          ...(src !== undefined ? { src } : {}),
          guid: user.guid,
          cn: user.cn,
          dn: user.dn ?? user.cn,
          h323: user.h323,
          e164: user.e164 ?? "",
          node: user.node ?? "root",
          pbx: user.loc ?? home
        })
      }
      return reply({ mt: "InitializeResult" })
    }
    if (mt === "UserInitialize") {
      const cn = typeof message["cn"] === "string" ? message["cn"] : ""
      const user = [...this.model.users.values()].find((entry) => entry.user.cn === cn)?.user
      this.model.watchLog.push({ pbx: this.pbx, mt, guid: user?.guid })
      if (user === undefined || !this.visible(user.guid)) {
        return reply({ mt: "UserInitializeResult", error: 1, errorText: `no visible user with the cn ${cn}` })
      }
      const handle = this.nextHandle++
      this.monitors.set(handle, { guid: user.guid, src })
      reply({ mt: "UserInitializeResult", user: handle })
      for (const call of this.model.calls.values()) if (call.guid === user.guid) this.callInfo(handle, call, "x-alert")
      return
    }
    if (mt === "UserEnd") {
      this.monitors.delete(typeof message["user"] === "number" ? message["user"] : -1)
      return reply({ mt: "UserEndResult" })
    }
    reply({ mt: `${mt}Result`, error: 1, errorText: `unknown message ${mt}` })
  }

  private callInfo(handle: number, call: SimCall, msg: string): void {
    const monitor = this.monitors.get(handle)
    if (monitor === undefined) return
    this.send({
      api: "RCC",
      mt: "CallInfo",
      ...(monitor.src !== undefined ? { src: monitor.src } : {}),
      user: handle,
      call: call.id,
      state: rccState(call),
      msg
    })
  }

  /** Indicates a call's change to every monitor of its user; `msg` names the signalling message ("r-rel" ends it). */
  pushCall(call: SimCall, msg: string): void {
    for (const [handle, monitor] of this.monitors) if (monitor.guid === call.guid) this.callInfo(handle, call, msg)
  }
}
