/**
 * One simulated PBX with an App object: it connects to the connector's app service as a real PBX does, performs the
 * AppChallenge / AppLogin handshake (an AppLogin shaped like the real captures), sends PbxInfo and asks AppInfo, serves
 * PbxTableUsers replication and PbxApi SetPresence / SubscribePresence / UnsubscribePresence (message shapes as the
 * innovaphone SDK documents them, test/fixtures/conformance/innovaphone-sdk-messages.json), and reconnects after a drop.
 */
import type { Redacted } from "effect"
import WebSocket from "ws"
import { corkPerTick } from "../../pbx/socket/SocketLink.ts"
import { SimAdminApi } from "./SimAdminApi.ts"
import { appLoginFrame, appName } from "./SimAppLogin.ts"
import { SimPbxApi } from "./SimPbxApi.ts"
import type { SimPbxStatus } from "./SimulatorHandle.ts"
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
  /** Fault: this many of the next ReplicateNext get no answer (a PBX that stalls), then it answers again. */
  stalledReplicateNexts?: number
}

export interface SimPbxConnectOptions {
  readonly connectUrl: string
  readonly domain: string
  readonly reconnectDelayMs: number
  /** Idle time after which the PBX, as the websocket's client, sends KeepAlive (0 = never). */
  readonly keepAliveMs: number
}

export class SimulatedPbx {
  private socket: WebSocket | undefined
  private loggedIn = false
  private loginsRefused = 0
  private keepAlivesReceived = 0
  private appInfoResults: Array<unknown> = []
  private keepAlivesSent = 0
  private lastReplicateStart: Replication["request"] | undefined
  private readonly counts = { replicateStarts: 0, replicateNexts: 0, replicateNextsUnanswered: 0 }
  private keepAliveTimer: ReturnType<typeof setTimeout> | undefined
  private logins = 0
  private autoReconnect = true
  private stopped = false
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined
  /** Holds the TCP socket's writes until the end of the tick: the answers to one wave of requests leave in one write. */
  private hold: () => void = () => {}
  /** The connection's replication (SimReplication.ts). */
  private replication: Replication | undefined
  /** PbxAdminApi (CheckAppLic), with its behaviour for tests. */
  readonly admin: SimAdminApi
  /** PbxApi (SetPresence, presence monitors), with its behaviour for tests. */
  readonly pbxApi: SimPbxApi
  /** RCC (UserInitialize / CallInfo), when the App object enables it. */
  readonly rcc: SimRcc

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
    this.pbxApi = new SimPbxApi(config.name, model, (message) => this.send(message))
    this.rcc = new SimRcc(config.name, config.appObject, model, (message) => this.send(message))
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
      ...this.counts,
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
    // Every frame either way restarts it: a running timer is re-armed rather than replaced.
    if (this.loggedIn && this.options.keepAliveMs > 0 && this.keepAliveTimer !== undefined) return void this.keepAliveTimer.refresh()
    clearTimeout(this.keepAliveTimer)
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
      this.pbxApi.reset()
      this.model.changed()
      if (!this.stopped && this.autoReconnect) {
        this.reconnectTimer = setTimeout(() => this.connect(), this.options.reconnectDelayMs)
      }
    })
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
        this.socket?.send(appLoginFrame({
          connectUrl: this.options.connectUrl,
          domain: this.options.domain,
          pbx: this.config.name,
          appObject: this.config.appObject,
          password: this.config.password,
          unlicensed: this.config.unlicensed ?? true,
          lics: this.config.lics,
          challenge
        }))
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
          this.send({ mt: "AppInfo", app: appName(this.options.connectUrl) })
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
    if (api === "PbxApi") return this.pbxApi.receive(String(mt), message, src, reply)
    if (api === "PbxAdminApi") return this.admin.receive(String(mt), message, src, reply)
    if (api === "RCC") return this.rcc.receive(String(mt), message, src, reply)
    reply({ mt: `${String(mt)}Result`, error: 1, errorText: `unknown message ${String(mt)}` })
  }

  private tableUsers(mt: string, message: Record<string, unknown>, src: string | undefined, reply: (result: Record<string, unknown>) => void): void {
    if (mt === "ReplicateStart") {
      this.replication = startReplication(message, src, this.model, this.config.replicateAllObjects === true)
      this.lastReplicateStart = this.replication.request
      this.counts.replicateStarts++
      this.model.changed()
      return reply({ mt: "ReplicateStartResult" })
    }
    if (mt === "ReplicateNext") {
      this.counts.replicateNexts++
      if ((this.config.stalledReplicateNexts ?? 0) > 0) {
        this.config.stalledReplicateNexts!--
        this.counts.replicateNextsUnanswered++
        return this.model.changed()
      }
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

  /** A call changed: the user's watchers get the presence (on-the-phone while calls exist), RCC monitors a CallInfo. */
  pushCall(call: SimCall, msg: string): void {
    this.pbxApi.pushPresence(call.guid)
    this.rcc.pushCall(call, msg)
  }
}
