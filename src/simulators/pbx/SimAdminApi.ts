/**
 * The part of PbxAdminApi the PBX simulator serves: `CheckAppLic {guid | cn | h323, lic}` → `CheckAppLicResult {ok}`,
 * true when the user holds that App licence (SDK 13r2 doc/appwebsocket/PbxAdminApi.htm). Only reached when the App
 * object enables PbxAdminApi (its Admin checkmark); answers can be delayed or withheld to test timeouts, and every
 * request is recorded with the number of requests that were unanswered at the time.
 */
import type { SimUser, SystemModel } from "./SimulatorModel.ts"

export interface AdminBehaviour {
  /** Answer each CheckAppLic after this many milliseconds. */
  delayMs: number
  /** Users (by h323) whose CheckAppLic is never answered. */
  unanswered: ReadonlySet<string>
}

const text = (message: Record<string, unknown>, key: string) => (typeof message[key] === "string" ? message[key] : undefined)

/** The user a CheckAppLic names, by guid, cn or h323 (one of them must be present). */
const userNamed = (model: SystemModel, message: Record<string, unknown>): SimUser | undefined => {
  const guid = text(message, "guid")
  if (guid !== undefined) return model.findUser(guid, undefined)
  const cn = text(message, "cn")
  if (cn !== undefined) return [...model.users.values()].find(({ user }) => user.cn === cn)?.user
  return model.findUser(undefined, text(message, "h323"))
}

export class SimAdminApi {
  readonly behaviour: AdminBehaviour = { delayMs: 0, unanswered: new Set() }
  private inFlight = 0
  private readonly pbx: string
  private readonly model: SystemModel

  constructor(pbx: string, model: SystemModel) {
    this.pbx = pbx
    this.model = model
  }

  /** Handles one PbxAdminApi message; `reply` adds api and src. */
  receive(mt: string, message: Record<string, unknown>, src: string | undefined, reply: (result: Record<string, unknown>) => void): void {
    if (mt !== "CheckAppLic") return reply({ mt: `${mt}Result`, error: 1, errorText: `unknown message ${mt}` })
    const lic = text(message, "lic") ?? ""
    this.inFlight++
    this.model.checkAppLicLog.push({ pbx: this.pbx, src, h323: text(message, "h323"), guid: text(message, "guid"), lic, inFlight: this.inFlight })
    this.model.changed()
    const user = userNamed(this.model, message)
    if (user !== undefined && this.behaviour.unanswered.has(user.h323)) return
    const answer = () => {
      this.inFlight--
      reply({ mt: "CheckAppLicResult", ok: user !== undefined && (user.licences ?? []).includes(lic) })
      this.model.changed()
    }
    if (this.behaviour.delayMs > 0) setTimeout(answer, this.behaviour.delayMs)
    else answer()
  }

  /** A new connection starts with nothing in flight. */
  reset(): void {
    this.inFlight = 0
  }
}
