import { assert, describe, it } from "@effect/vitest"
import { Console, Deferred, Effect, Fiber } from "effect"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { decodeConfig, parseConfigText } from "../../src/config/ConfigFile.ts"
import type { GraphSimulatorHandle } from "../../src/simulators/graph/GraphSimulator.ts"
import { runGraphSimulator } from "../../src/simulators/graph/Standalone.ts"
import { tempDirSync } from "../support/tempDir.ts"

/** A console that keeps what is printed. */
const captureConsole = () => {
  const lines: Array<string> = []
  const console: Console.Console = Object.assign(Object.create(globalThis.console), {
    log: (...args: ReadonlyArray<unknown>) => void lines.push(args.map(String).join(" ")),
    error: (...args: ReadonlyArray<unknown>) => void lines.push(args.map(String).join(" "))
  })
  return { lines, console }
}

const fetchJson = (url: string, init?: RequestInit) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  })

const tokenRequest = (url: string, tenantId: string, form: Record<string, string>) =>
  fetchJson(`${url}/${tenantId}/oauth2/v2.0/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ scope: "https://graph.microsoft.com/.default", ...form }).toString()
  })

const usersFile = (text: string) => {
  const path = join(tempDirSync("graph-standalone-"), "users.yaml")
  writeFileSync(path, text)
  return path
}

describe("simulate graph (standalone)", () => {
  it.live("generated users: a client-credentials token lists them over real HTTP; the printed snippet is a valid configuration", () =>
    Effect.gen(function*() {
      const ready = yield* Deferred.make<GraphSimulatorHandle>()
      const out = captureConsole()
      const fiber = yield* runGraphSimulator({ port: 0, host: "127.0.0.1", users: 12, ready }).pipe(
        Effect.provideService(Console.Console, out.console),
        Effect.forkChild
      )
      const sim = yield* Deferred.await(ready)
      const printed = out.lines.join("\n")
      assert.include(printed, `Graph simulator listening on ${sim.url}`)
      assert.include(printed, "client secret: sim-client-secret")
      assert.include(printed, "presence-1@contoso.com  password sim-password")

      const token = yield* tokenRequest(sim.url, sim.tenantId, {
        grant_type: "client_credentials",
        client_id: sim.clientId,
        client_secret: "sim-client-secret"
      })
      assert.strictEqual(token.status, 200)
      assert.strictEqual(token.body["token_type"], "Bearer")
      const users = yield* fetchJson(`${sim.url}/v1.0/users?$top=999`, {
        headers: { authorization: `Bearer ${String(token.body["access_token"])}` }
      })
      assert.strictEqual(users.status, 200)
      const listed = (users.body["value"] as Array<{ userPrincipalName: string }>).map((u) => u.userPrincipalName)
      assert.strictEqual(listed.length, 13) // 12 people + the technical account
      assert.include(listed, "user12@contoso.com")

      // What the administrator pastes, plus a pbx section, is a configuration the connector accepts.
      const snippet = printed.slice(printed.indexOf("tenantId:"), printed.indexOf("\n\nPress Ctrl+C"))
      const config = yield* parseConfigText(`${snippet}\npbx: { masterPbx: pbx-master, appPassword: x }\n`, "connector.yaml").pipe(
        Effect.flatMap((raw) => decodeConfig(raw, "connector.yaml"))
      )
      assert.strictEqual(config.graph.loginBaseUrl, sim.url)
      assert.strictEqual(config.graph.graphBaseUrl, sim.url)
      const jwks = yield* fetchJson(config.graph.jwksUrl)
      assert.strictEqual(jwks.status, 200)
      assert.isAbove((jwks.body["keys"] as Array<unknown>).length, 0)
      assert.deepStrictEqual(config.accounts.map((a) => [a.name, a.username, a.flow]), [["presence-1", "presence-1@contoso.com", "password"]])

      assert.strictEqual(config.notifications.mode, "push")

      // The subscriptions extension is served: an unauthenticated create is refused, not unknown.
      const subscription = yield* fetchJson(`${sim.url}/v1.0/subscriptions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ changeType: "updated", resource: "/users" })
      })
      assert.strictEqual(subscription.status, 401)
      assert.strictEqual((subscription.body["error"] as { code: string }).code, "InvalidAuthenticationToken")

      yield* Fiber.interrupt(fiber)
      const after = yield* Effect.promise(() => fetch(`${sim.url}/_sim/users`).then(() => "answered", () => "closed"))
      assert.strictEqual(after, "closed")
    }))

  it.live("a users file sets tenant, credentials, accounts and who has Teams", () =>
    Effect.gen(function*() {
      const path = usersFile(`
tenantId: 0a0a0a0a-1111-2222-3333-444444444444
clientId: 0b0b0b0b-1111-2222-3333-444444444444
clientSecret: file-secret
accounts: [{ upn: tech@fabrikam.com, password: tech-pw }, { upn: mfa@fabrikam.com, password: x, mfa: true }]
users:
  - { name: Alice Adams, email: alice@fabrikam.com }
  - { name: Bob Brown, email: bob@fabrikam.com, teams: false }
`)
      const ready = yield* Deferred.make<GraphSimulatorHandle>()
      const out = captureConsole()
      const fiber = yield* runGraphSimulator({ port: 0, host: "127.0.0.1", usersFile: path, users: 50, ready }).pipe(
        Effect.provideService(Console.Console, out.console),
        Effect.forkChild
      )
      const sim = yield* Deferred.await(ready)
      assert.strictEqual(sim.tenantId, "0a0a0a0a-1111-2222-3333-444444444444")
      assert.include(out.lines.join("\n"), "users:         2 (1 with Teams)")
      assert.include(out.lines.join("\n"), "flow: deviceCode") // the MFA account cannot use the password flow

      const wrong = yield* tokenRequest(sim.url, sim.tenantId, {
        grant_type: "client_credentials",
        client_id: sim.clientId,
        client_secret: "sim-client-secret"
      })
      assert.strictEqual(wrong.status, 401)
      const delegated = yield* tokenRequest(sim.url, sim.tenantId, {
        grant_type: "password",
        client_id: sim.clientId,
        username: "tech@fabrikam.com",
        password: "tech-pw",
        scope: "https://graph.microsoft.com/.default offline_access"
      })
      assert.strictEqual(delegated.status, 200)
      const bob = yield* fetchJson(`${sim.url}/v1.0/users/bob@fabrikam.com?$select=displayName,assignedPlans`, {
        headers: { authorization: `Bearer ${String(delegated.body["access_token"])}` }
      })
      assert.strictEqual(bob.body["displayName"], "Bob Brown")
      assert.deepStrictEqual(bob.body["assignedPlans"], [])
      yield* Fiber.interrupt(fiber)
    }))

  it.live("a broken users file or an unsupported host fails with the problems, before listening", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(runGraphSimulator({ port: 0, host: "127.0.0.1", usersFile: usersFile("users: [{ name: A }]\n") }))
      assert.deepStrictEqual(error.problems.map((p) => p.path), ["users[0].email"])
      const host = yield* Effect.flip(runGraphSimulator({ port: 0, host: "0.0.0.0" }))
      assert.deepStrictEqual(host.problems.map((p) => p.path), ["--host"])
    }))
})
