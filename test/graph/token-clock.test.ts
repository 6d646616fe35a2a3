/** Token lifetime under TestClock, on a fake identity platform (no sockets, so TestClock drives everything). */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Redacted } from "effect"
import { HttpClient, HttpClientResponse } from "effect/http"
import { TestClock } from "effect/testing"
import { AppCredentialRef, GraphConfig } from "../../src/graph/client/GraphSettings.ts"
import { TokenService } from "../../src/graph/auth/TokenService.ts"
import { tempDataDir } from "./harness.ts"
import { fileState } from "../support/state.ts"

interface Fake {
  requests: number
  failing: boolean
  gate: Deferred.Deferred<void> | undefined
  firstRequest: Deferred.Deferred<void>
}

const makeFake = Effect.gen(function*() {
  const fake: Fake = { requests: 0, failing: false, gate: undefined, firstRequest: yield* Deferred.make<void>() }
  const client = HttpClient.make((request) =>
    Effect.gen(function*() {
      fake.requests++
      yield* Deferred.succeed(fake.firstRequest, undefined)
      if (fake.gate !== undefined) yield* Deferred.await(fake.gate)
      const body = fake.failing
        ? new Response("unavailable", { status: 503 })
        : Response.json({ token_type: "Bearer", expires_in: 3600, ext_expires_in: 3600, access_token: `tok-${fake.requests}` })
      return HttpClientResponse.fromWeb(request, body)
    })
  )
  return { fake, client }
})

const tokenService = (client: HttpClient.HttpClient) =>
  Layer.build(
    TokenService.layer.pipe(
      Layer.provide(Layer.succeed(HttpClient.HttpClient, client)),
      Layer.provide(Layer.succeed(GraphConfig, {
        tenantId: "t",
        clientId: "c",
        loginBaseUrl: "https://login.example",
        graphBaseUrl: "https://graph.example",
        app: { _tag: "ClientSecret", secret: Redacted.make("s") },
        accounts: [],
        refreshAheadSeconds: 300
      })),
      Layer.provide(Layer.orDie(fileState(tempDataDir())))
    )
  ).pipe(Effect.map((context) => Context.get(context, TokenService)))

describe("TokenService with TestClock", () => {
  it.effect("refreshes ahead of expiry and never hands out an expired token", () =>
    Effect.gen(function*() {
      const { fake, client } = yield* makeFake
      const tokens = yield* tokenService(client)
      const get = tokens.getToken(AppCredentialRef).pipe(Effect.map(Redacted.value))

      assert.strictEqual(yield* get, "tok-1")
      yield* TestClock.adjust("3299 seconds")
      assert.strictEqual(yield* get, "tok-1", "cached until 300 s before expiry")
      assert.strictEqual(fake.requests, 1)
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* get, "tok-2", "refreshed inside the refresh-ahead window, before expiry")
      assert.strictEqual(fake.requests, 2)

      // The identity platform fails: the still-valid token is used until it expires, never after.
      fake.failing = true
      yield* TestClock.adjust("3400 seconds")
      assert.strictEqual(yield* get, "tok-2")
      const status = yield* tokens.status
      assert.isFalse(status[0]!.ok, "the status light turns red while refreshing fails")
      yield* TestClock.adjust("201 seconds")
      const error = yield* get.pipe(Effect.flip)
      assert.strictEqual(error.reason, "Network")

      fake.failing = false
      assert.match(yield* get, /^tok-\d+$/)
      assert.isTrue((yield* tokens.status)[0]!.ok)
    }).pipe(Effect.scoped))

  it.effect("concurrent callers share one refresh", () =>
    Effect.gen(function*() {
      const { fake, client } = yield* makeFake
      const tokens = yield* tokenService(client)
      fake.gate = yield* Deferred.make<void>()
      const callers = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        () => tokens.getToken(AppCredentialRef).pipe(Effect.map(Redacted.value)),
        { concurrency: "unbounded" }
      ).pipe(Effect.forkChild)
      yield* Deferred.await(fake.firstRequest)
      yield* Deferred.succeed(fake.gate, undefined)
      const results = yield* Fiber.join(callers)
      assert.strictEqual(fake.requests, 1)
      assert.deepStrictEqual(new Set(results), new Set(["tok-1"]))
    }).pipe(Effect.scoped))
})
