/** Test helpers: the webhook and other router layers on 127.0.0.1 with an ephemeral port, and POSTs to them. */
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { createServer } from "node:http"
import { NotificationPipeline, NotificationRoutes } from "../../src/graph/notifications/NotificationRoutes.ts"
import { SubscriptionSettings, type SubscriptionSettingsOptions } from "../../src/graph/subscriptions/SubscriptionSettings.ts"
import { fileState } from "../support/state.ts"

export const localServer = NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })

export const baseUrlOf = (server: HttpServer.HttpServer["Service"]): string =>
  `http://127.0.0.1:${"port" in server.address ? server.address.port : 0}`

/**
 * The connector's webhook (routes, inbox, key store, decryption pool, validation tokens) on a 127.0.0.1 server, with
 * tenant `default`'s state (the notification keys) in the files of `dataDir`.
 */
export const webhookServer = (settings: SubscriptionSettingsOptions, dataDir: string) =>
  HttpRouter.serve(NotificationRoutes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(NotificationPipeline.pipe(
      Layer.provideMerge(Layer.merge(SubscriptionSettings.layer(settings), fileState(dataDir)))
    )),
    Layer.provideMerge(localServer)
  )

/** Builds `layer` (which must include an HttpServer) in the current scope and returns its context and base URL. */
export const buildServer = <A, E, R>(layer: Layer.Layer<A | HttpServer.HttpServer, E, R>) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(layer)
    return { context, baseUrl: baseUrlOf(Context.get(context, HttpServer.HttpServer)) }
  })

export const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  Effect.promise(async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body)
    })
    return { status: response.status, contentType: response.headers.get("content-type"), text: await response.text() }
  })
