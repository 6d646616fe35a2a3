/**
 * One simulated PBX with an App object: it connects to the connector's app service as a real PBX does, performs the
 * AppChallenge / AppLogin handshake (an AppLogin shaped like the real captures), sends PbxInfo and asks AppInfo, serves
 * PbxTableUsers replication and PbxApi SetPresence / SubscribePresence / UnsubscribePresence (message shapes as the
 * innovaphone SDK documents them, test/fixtures/conformance/innovaphone-sdk-messages.json), and reconnects after a drop.
 */
import { createHash } from "node:crypto"
import { Redacted } from "effect"
import WebSocket from "ws"
import { loginDigest } from "../../pbx/socket/AppLoginDigest.ts"
import { corkPerTick } from "../../pbx/socket/PbxConnection.ts"
import { SimAdminApi } from "./SimAdminApi.ts"
import { SimPresenceMonitor } from "./SimPresenceMonitor.ts"
import { SimRcc } from "./SimRcc.ts"
import { nextRow, pushFor, type Replication, startReplication } from "./SimReplication.ts"
import type { SimCall, SimUser, SystemModel } from "./SimulatorModel.ts"

export interface SimPbxConfig {
  readonly name: string
  readonly isMaster: boolean
  readonly password: Redacted.Redacted<string>
  /** PBX APIs enabled on the App object, e.g. ["PbxApi", "PbxTableUsers"]. */
  apis: ReadonlyArray<string>
  /**
   * Service licences given to the App object (`info.lics`); undefined = none, and then `lics` is left out of the
   * AppLogin as in every real capture.
   */
  lics: number | undefined
  /** `info.unlicensed`; true in every real capture of an App object login (default true). */
  unlicensed?: boolean
  /** The App object's name (its `sip` / `info.appobj`). */
  readonly appObject: string
  /** Fault: replicate every object of the table, whatever types ReplicateStart asks for (an older PBX). */
  replicateAllObjects?: boolean
}

export interface SimPbxStatus {
  readonly name: string
  readonly isMaster: boolean
  readonly connected: boolean
  readonly loggedIn: boolean
  /** Logins the connector answered with ok:false. */
  readonly loginsRefused: number
  /** Successful logins so far (a reconnect adds one). */
  readonly logins: number
  /** KeepAlive messages received from the connector (an app service never sends one: this stays 0). */
  readonly keepAlivesReceived: number
  /** AppInfoResult answers to the AppInfo the PBX asks after login, the latest last. */
  readonly appInfoResults: ReadonlyArray<unknown>
  /** KeepAlive messages this PBX sent, as the AppWebsocket client does after `keepAliveMs` without traffic. */
  readonly keepAlivesSent: number
  /** What the connector's last ReplicateStart asked for. */
  readonly replication?: Replication["request"]
}

export interface SimPbxConnectOptions {
  readonly connectUrl: string
  readonly domain: string
  readonly reconnectDelayMs: number
  /** Idle time after which the PBX, as the websocket's client, sends KeepAlive (0 = never). */
  readonly keepAliveMs: number
}

const hex32 = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 32)

export class SimulatedPbx {
  private socket: WebSocket | undefined
  private loggedIn = false
  private loginsRefused = 0
  private keepAlivesReceived = 0
  private appInfoResults: Array<unknown> = []
  private keepAlivesSent = 0
  private lastReplicateStart: Replication["request"] | undefined
  private keepAliveTimer: ReturnType<typeof setTimeout> | undefined
  private logins = 0
  private autoReconnect = true
  private stopped = false
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined
  /** Holds the TCP socket's writes until the end of the tick: the answers to one wave of requests leave in one write. */
  private hold: () => void = () => {}
  /** The connection's replication (SimReplication.ts). */
  private replication: Replication | undefined
  /** PbxApi's presence monitor (SubscribePresence / PresenceUpdate). */
  private readonly monitor: SimPresenceMonitor
  refuseSetPresence: string | undefined
  /** PbxAdminApi (CheckAppLic), with its behaviour for tests. */
  readonly admin: SimAdminApi
  /** RCC (UserInitialize / CallInfo), when the App object enables it. */
  readonly rcc: SimRcc
  delaySetPresenceMs = 0

  readonly config: SimPbxConfig
  private readonly options: SimPbxConnectOptions
  private readonly model: SystemModel

  constructor(
    config: SimPbxConfig,
    options: SimPbxConnectOptions,
    model: SystemModel
  ) {
    this.config = config
    this.options = options
    this.model = model
    this.admin = new SimAdminApi(config.name, model)
    this.rcc = new SimRcc(config.name, config.appObject, model, (message) => this.send(message))
    this.monitor = new SimPresenceMonitor(config.name, model, (message) => this.send(message))
  }

  status(): SimPbxStatus {
    return {
      name: this.config.name,
      isMaster: this.config.isMaster,
      connected: this.socket?.readyState === WebSocket.OPEN,
      loggedIn: this.loggedIn,
      loginsRefused: this.loginsRefused,
      logins: this.logins,
      keepAlivesReceived: this.keepAlivesReceived,
      appInfoResults: [...this.appInfoResults],
      keepAlivesSent: this.keepAlivesSent,
      ...(this.lastReplicateStart !== undefined ? { replication: this.lastReplicateStart } : {})
    }
  }

  start(): void {
    this.stopped = false
    this.autoReconnect = true
    this.connect()
  }

  stop(): void {
    this.stopped = true
    this.loggedIn = false
    this.restartKeepAlive()
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer)
    this.socket?.terminate()
    this.socket = undefined
  }

  /** Drops the connection abruptly; it comes back after the reconnect delay unless `reconnect` is false. */
  drop(reconnect = true): void {
    this.autoReconnect = reconnect
    this.socket?.terminate()
  }

  reconnect(): void {
    this.autoReconnect = true
    if (this.socket === undefined && this.reconnectTimer === undefined && !this.stopped) this.connect()
  }

  /** Sends a frame exactly as given (for malformed-frame tests). */
  sendRaw(text: string): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false
    this.socket.send(text)
    return true
  }

  private send(message: Record<string, unknown>): void {
    if (this.socket?.readyState !== WebSocket.OPEN) return
    this.hold()
    this.socket.send(JSON.stringify(message))
    this.restartKeepAlive()
  }

  /** As the SDK's AppWebsocket client: KeepAlive after `keepAliveMs` without a frame either way, once logged in. */
  private restartKeepAlive(): void {
    if (this.keepAliveTimer !== undefined) clearTimeout(this.keepAliveTimer)
    this.keepAliveTimer = undefined
    if (!this.loggedIn || this.options.keepAliveMs <= 0) return
    this.keepAliveTimer = setTimeout(() => {
      this.keepAliveTimer = undefined
      if (this.socket?.readyState !== WebSocket.OPEN) return
      this.keepAlivesSent++
      this.send({ mt: "KeepAlive" })
      this.model.changed()
    }, this.options.keepAliveMs)
  }

  private connect(): void {
    this.reconnectTimer = undefined
    const socket = new WebSocket(this.options.connectUrl)
    this.socket = socket
    this.hold = () => {}
    socket.once("upgrade", (response) => {
      if (this.socket === socket) this.hold = corkPerTick(response.socket)
    })
    socket.on("open", () => {
      this.model.changed()
      socket.send(JSON.stringify({ mt: "AppChallenge" }))
    })
    socket.on("message", (data, isBinary) => {
      if (this.socket !== socket || isBinary) return
      this.receive(data.toString())
    })
    socket.on("error", () => {
      // "close" follows and handles the reconnect.
    })
    socket.on("close", () => {
      if (this.socket !== socket) return
      this.socket = undefined
      this.loggedIn = false
      this.restartKeepAlive()
      this.admin.reset()
      this.rcc.reset()
      this.replication = undefined
      this.monitor.reset()
      this.model.changed()
      if (!this.stopped && this.autoReconnect) {
        this.reconnectTimer = setTimeout(() => this.connect(), this.options.reconnectDelayMs)
      }
    })
  }

  /** The app service's name as the App object's URL ends (the `app` of AppLogin and AppInfo, as in the real captures). */
  private app(): string {
    return this.options.connectUrl.split("/").filter((part) => part.length > 0).pop() ?? "app"
  }

  /** The AppLogin a PBX sends for its App object: the same fields and order as the real captures. */
  private appLogin(challenge: string): string {
    const appUrl = this.options.connectUrl
    const app = this.app()
    const info = {
      appobj: this.config.appObject,
      appdn: this.config.appObject,
      appurl: appUrl,
      pbx: this.config.name,
      cn: this.config.appObject,
      unlicensed: this.config.unlicensed ?? true,
      ...(this.config.lics !== undefined ? { lics: this.config.lics } : {}),
      apps: []
    }
    const infoText = JSON.stringify(info)
    const fields = {
      app,
      domain: this.options.domain,
      sip: this.config.appObject,
      guid: hex32(`${this.options.domain}/${this.config.name}/${this.config.appObject}`),
      dn: this.config.appObject,
      infoText
    }
    const digest = loginDigest(fields, challenge, this.config.password)
    return `{"mt":"AppLogin","sip":${JSON.stringify(fields.sip)},"guid":"${fields.guid}","dn":${
      JSON.stringify(fields.dn)
    },"digest":"${digest}","domain":${JSON.stringify(fields.domain)},"app":${JSON.stringify(app)},"info":${infoText}}`
  }

  private receive(text: string): void {
    let message: Record<string, unknown>
    try {
      const parsed: unknown = JSON.parse(text)
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return
      message = parsed as Record<string, unknown>
    } catch {
      return
    }
    const mt = message["mt"]
    this.restartKeepAlive()
    const src = typeof message["src"] === "string" ? message["src"] : undefined
    const api = typeof message["api"] === "string" ? message["api"] : undefined
    const reply = (result: Record<string, unknown>) => this.send({ ...(api ? { api } : {}), ...result, ...(src !== undefined ? { src } : {}) })
    switch (mt) {
      case "AppChallengeResult": {
        const challenge = typeof message["challenge"] === "string" ? message["challenge"] : ""
        this.socket?.send(this.appLogin(challenge))
        return
      }
      case "AppLoginResult": {
        if (message["ok"] === true) {
          this.loggedIn = true
          this.logins++
          this.send({
            mt: "PbxInfo",
            domain: this.options.domain,
            pbx: this.config.name,
            pbxDns: `${this.config.name}.${this.options.domain}`,
            apis: this.config.apis,
            version: "13r3 sr99 [simulator]",
            build: "139999"
          })
          // The PBX asks the app service for the APIs it provides (SDK AppWebsocket.htm, AppInfo).
          this.send({ mt: "AppInfo", app: this.app() })
        } else {
          this.loginsRefused++
        }
        this.model.changed()
        return
      }
      case "KeepAlive":
        this.keepAlivesReceived++
        this.model.changed()
        return
      case "AppInfoResult":
        this.appInfoResults.push(message)
        this.model.changed()
        return
    }
    if (!this.loggedIn) return
    if (api !== undefined && !this.config.apis.includes(api)) {
      reply({ mt: `${String(mt)}Result`, error: 1, errorText: `API ${api} is not enabled on the App object` })
      return
    }
    if (api === "PbxTableUsers") return this.tableUsers(String(mt), message, src, reply)
    if (api === "PbxApi") return this.pbxApi(String(mt), message, src, reply)
    if (api === "PbxAdminApi") return this.admin.receive(String(mt), message, src, reply)
    if (api === "RCC") return this.rcc.receive(String(mt), message, src, reply)
    reply({ mt: `${String(mt)}Result`, error: 1, errorText: `unknown message ${String(mt)}` })
  }

  private tableUsers(
    mt: string,
    message: Record<string, unknown>,
    src: string | undefined,
    reply: (result: Record<string, unknown>) => void
  ): void {
    if (mt === "ReplicateStart") {
      this.replication = startReplication(message, src, this.model, this.config.replicateAllObjects === true)
      this.lastReplicateStart = this.replication.request
      this.model.changed()
      return reply({ mt: "ReplicateStartResult" })
    }
    if (mt === "ReplicateNext") {
      const row = this.replication === undefined ? undefined : nextRow(this.replication, this.model)
      return reply(row === undefined ? { mt: "ReplicateNextResult" } : { mt: "ReplicateNextResult", columns: row })
    }
    reply({ mt: `${mt}Result`, error: 1, errorText: `unknown message ${mt}` })
  }

  /** Pushes a change of `user` (its last state, for a deletion) to this connection's replication. */
  pushUserChange(kind: "ReplicateAdd" | "ReplicateUpdate" | "ReplicateDel", user: SimUser): void {
    if (this.replication === undefined) return
    const push = pushFor(this.replication, kind, user, this.model, this.config.replicateAllObjects === true)
    if (push !== undefined) this.send(push)
  }

  /** Sends PresenceUpdate `{presence}` (SDK PbxApi.htm) to this connection's subscribers of a user. */
  pushPresence(guid: string): void {
    this.monitor.push(guid)
  }

  /** A call changed: the user's watchers get the presence (on-the-phone while calls exist), RCC monitors a CallInfo. */
  pushCall(call: SimCall, msg: string): void {
    this.pushPresence(call.guid)
    this.rcc.pushCall(call, msg)
  }

  private pbxApi(
    mt: string,
    message: Record<string, unknown>,
    src: string | undefined,
    reply: (result: Record<string, unknown>) => void
  ): void {
    if (this.monitor.receive(mt, message, src, reply)) return
    const text = (key: string) => (typeof message[key] === "string" ? message[key] : undefined)
    if (mt !== "SetPresence") return reply({ mt: `${mt}Result`, error: 1, errorText: `unknown message ${mt}` })
    const apply = () => {
      const user = this.model.findUser(text("guid"), text("sip"))
      const contact = text("contact") ?? ""
      const record = {
        pbx: this.config.name,
        guid: text("guid"),
        sip: text("sip"),
        contact,
        activity: text("activity") ?? "",
        note: text("note") ?? ""
      }
      if (user === undefined || this.refuseSetPresence !== undefined) {
        this.model.setPresenceLog.push({ ...record, accepted: false })
        reply({ mt: "SetPresenceResult", error: 1, errorText: user === undefined ? "unknown user" : this.refuseSetPresence })
        this.model.changed()
        return
      }
      this.model.setPresence(user.guid, contact, record.activity, record.note)
      this.model.setPresenceLog.push({ ...record, accepted: true })
      reply({ mt: "SetPresenceResult" })
      this.model.changed()
      this.onPresenceChanged(user.guid)
    }
    if (this.delaySetPresenceMs > 0) setTimeout(apply, this.delaySetPresenceMs)
    else apply()
  }

  /** Set by the system: tells every PBX's subscribers about a presence change. */
  onPresenceChanged: (guid: string) => void = () => {}
}

export const redactedPassword = (password: string | Redacted.Redacted<string>): Redacted.Redacted<string> =>
  Redacted.isRedacted(password) ? password : Redacted.make(password)
