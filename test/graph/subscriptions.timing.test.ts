import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Effect, Layer, Stream, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import { GraphError } from "../../src/graph/client/GraphError.ts"
import { credentialKey, GraphConfig } from "../../src/graph/client/GraphSettings.ts"
import { SubscriptionApi } from "../../src/graph/subscriptions/SubscriptionApi.ts"
import { LicenceCheck } from "../../src/graph/subscriptions/SubscriptionLicenceCheck.ts"
import { SubscriptionManager } from "../../src/graph/subscriptions/SubscriptionManager.ts"
import { defaultSubscriptionSettings, SubscriptionSettings } from "../../src/graph/subscriptions/SubscriptionSettings.ts"
import { inertWebhook } from "../timers/fakeGraph.ts"
import { collect } from "../support/streams.ts"
import { tempDir } from "../support/tempDir.ts"
import { fileState } from "../support/state.ts"

interface Call {
  readonly op: "create" | "renew" | "remove" | "list" | "reauthorize"
  readonly id: string
  readonly minute: number
  readonly credential: string
}

const notFound = new GraphError({ status: 404, code: "ResourceNotFound", message: "gone", method: "PATCH", path: "/v1.0/subscriptions" })

const fakes = (calls: Array<Call>, failRenewOnce: Set<string>) => {
  let next = 0
  const minute = Clock.currentTimeMillis.pipe(Effect.map((ms) => Math.round(ms / 60_000)))
  const api = Layer.succeed(SubscriptionApi, SubscriptionApi.of({
    create: (credential, body) =>
      Effect.gen(function*() {
        const id = body.resource === "/users" ? `users-${next++}` : `presence-${next++}`
        calls.push({ op: "create", id, minute: yield* minute, credential: credentialKey(credential) })
        return { id, resource: body.resource, expirationDateTime: body.expirationDateTime }
      }),
    renew: (credential, id, body) =>
      Effect.gen(function*() {
        calls.push({ op: "renew", id, minute: yield* minute, credential: credentialKey(credential) })
        if (failRenewOnce.delete(id)) return yield* notFound
        return { id, resource: "x", expirationDateTime: body.expirationDateTime }
      }),
    reauthorize: (credential, id) =>
      minute.pipe(Effect.map((m) => void calls.push({ op: "reauthorize", id, minute: m, credential: credentialKey(credential) }))),
    remove: (credential, id) =>
      Effect.gen(function*() {
        calls.push({ op: "remove", id, minute: yield* minute, credential: credentialKey(credential) })
        return yield* notFound
      }),
    list: () => Effect.succeed([]),
    // The lookups between renewals (SubscriptionManager.verifyShard) always find the subscription here.
    get: (_credential, id) => Effect.succeed({ id, resource: "x", expirationDateTime: "2100-01-01T00:00:00Z" })
  }))
  return Layer.mergeAll(api, inertWebhook, LicenceCheck.allowAll)
}

const graphConfig = (accounts: ReadonlyArray<string>) =>
  Layer.succeed(GraphConfig, {
    tenantId: "t",
    clientId: "c",
    loginBaseUrl: "http://127.0.0.1",
    graphBaseUrl: "http://127.0.0.1",
    accounts: accounts.map((name) => ({ name, username: `${name}@contoso.com`, flow: "password" as const }))
  })

describe("SubscriptionManager timing (TestClock, fake Graph)", () => {
  it.effect("renews presence every 10 minutes and users every 60 minutes; a 404 renewal recreates and resyncs", () =>
    Effect.gen(function*() {
      const calls: Array<Call> = []
      const failRenewOnce = new Set<string>()
      const dataDir = yield* tempDir
      const settings = defaultSubscriptionSettings({
        publicBaseUrl: "https://connector.example",
        appId: "app",
        includeResourceData: false,
        maxUsersPerShard: 2
      })
      const context = yield* Layer.build(
        SubscriptionManager.layer.pipe(
          Layer.provide(fakes(calls, failRenewOnce)),
          Layer.provide(graphConfig(["tech1", "tech2"])),
          Layer.provide(fileState(dataDir)),
          Layer.provide(SubscriptionSettings.layer(settings))
        )
      )
      const manager = Context.get(context, SubscriptionManager)
      // The first resync of u1 is its shard's creation, the second its recreation.
      const resyncsOfU1 = yield* collect(manager.resyncs.pipe(Stream.filter((ids) => ids.includes("u1"))), 2)
      yield* manager.setDesiredUsers(["u1", "u2", "u3"])

      const creates = calls.filter((c) => c.op === "create")
      assert.deepStrictEqual(creates.map((c) => c.credential).sort(), ["account:tech1", "account:tech2", "app"])
      const shardIds = creates.filter((c) => c.id.startsWith("presence")).map((c) => c.id)
      const usersId = creates.find((c) => c.id.startsWith("users"))!.id

      for (let m = 0; m < 180; m++) yield* TestClock.adjust("1 minute")

      const renewMinutes = (id: string) => calls.filter((c) => c.op === "renew" && c.id === id).map((c) => c.minute)
      const tens = Array.from({ length: 18 }, (_, i) => (i + 1) * 10)
      for (const id of shardIds) assert.deepStrictEqual(renewMinutes(id), tens)
      assert.deepStrictEqual(renewMinutes(usersId), [60, 120, 180])
      const state = yield* SubscriptionRef.get(manager.state)
      assert.deepStrictEqual(state.shards.map((s) => [s.key, s.userCount, s.status, s.lastRenewalAt]), [
        ["tech1", 2, "active", 180 * 60_000],
        ["tech2", 1, "active", 180 * 60_000]
      ])
      assert.strictEqual(state.users.status, "active")
      assert.strictEqual(state.users.lastRenewalAt, 180 * 60_000)

      // the next renewal of tech1's shard answers 404: delete, create again, resync its users
      const tech1 = creates.find((c) => c.credential === "account:tech1")!.id
      failRenewOnce.add(tech1)
      const before = calls.length
      yield* TestClock.adjust("10 minutes")
      const after = calls.slice(before).filter((c) => c.credential === "account:tech1").map((c) => `${c.op}:${c.id}`)
      assert.strictEqual(after[0], `renew:${tech1}`)
      assert.strictEqual(after[1], `remove:${tech1}`)
      assert.match(after[2]!, /^create:presence-/)
      assert.deepStrictEqual([...(yield* resyncsOfU1)[1]!].sort(), ["u1", "u2"])
    }).pipe(Effect.scoped))
})
