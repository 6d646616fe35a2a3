/**
 * PBX → Teams against innovaphone's SDK (test/fixtures/conformance/pbx-to-teams-samples.json): the messages the
 * connector sends to watch calls carry the documented members, the RCC answers of the PBX simulator carry only
 * documented members with their types, and the connector reads the documented shapes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { readFileSync } from "node:fs"
import { CallInfo, PresenceUpdate, UserInitializeResult } from "../../src/pbx/calls/CallMessages.ts"
import { presenceProtocol, rccProtocol } from "../../src/pbx/calls/WatchProtocol.ts"
import { SimRcc } from "../../src/simulators/pbx/SimRcc.ts"
import { SystemModel } from "../../src/simulators/pbx/SimulatorModel.ts"

interface Documented {
  readonly members: Record<string, unknown>
  readonly optional?: ReadonlyArray<string>
  readonly oneOf?: ReadonlyArray<string>
}
const fixture: { readonly innovaphone: { readonly toPbx: Record<string, Documented>; readonly fromPbx: Record<string, Documented> } } = JSON.parse(
  readFileSync(new URL("../fixtures/conformance/pbx-to-teams-samples.json", import.meta.url), "utf8")
)
const sdk: { readonly fromPbx: Record<string, Documented> } = JSON.parse(
  readFileSync(new URL("../fixtures/conformance/innovaphone-sdk-messages.json", import.meta.url), "utf8")
)

type Message = Record<string, unknown>

const typeOk = (value: unknown, documented: unknown): boolean =>
  documented === "integer" ? Number.isInteger(value) : documented === "boolean" ? typeof value === "boolean"
    : documented === "string" ? typeof value === "string" : Array.isArray(documented) ? Array.isArray(value)
    : documented === "connector" ? typeof value === "object" : value === documented

/** Documented members only (src is the app's correlation); the required ones present (one of `oneOf`), types as documented. */
const assertDocumented = (documentation: Record<string, Documented>, message: Message) => {
  const documented = documentation[String(message["mt"])]
  assert.isDefined(documented, `${String(message["mt"])} is documented`)
  const optional = new Set([...(documented!.optional ?? []), ...(documented!.oneOf ?? [])])
  for (const key of Object.keys(documented!.members)) if (!optional.has(key)) assert.isTrue(key in message, `${String(message["mt"])} has ${key}`)
  if (documented!.oneOf !== undefined) assert.isTrue(documented!.oneOf.some((key) => key in message), `${String(message["mt"])} has one of ${documented!.oneOf}`)
  for (const [key, value] of Object.entries(message)) {
    if (key === "src") continue
    assert.isTrue(key in documented!.members || optional.has(key), `${String(message["mt"])} member ${key} is documented`)
    if (key in documented!.members) assert.isTrue(typeOk(value, documented!.members[key]), `${String(message["mt"])}.${key}`)
  }
}

const user = { guid: "g1", h323: "alice", cn: "Alice Example", loc: "pbx-master" }

describe("PBX → Teams: innovaphone conformance", () => {
  it("the connector's SubscribePresence / UnsubscribePresence and RCC Initialize / UserInitialize / UserEnd are documented", () => {
    const presence = presenceProtocol("teams:")
    const rcc = rccProtocol({ ringing: false, hold: true })
    const sent = [
      presence.watch(user),
      presence.unwatch(user, {})!,
      ...rcc.open,
      rcc.watch(user),
      rcc.unwatch(user, { handle: 7 })!
    ]
    for (const message of sent) assertDocumented(fixture.innovaphone.toPbx, message as Message)
    assert.strictEqual(rcc.unwatch(user, {}), undefined, "no UserEnd without a handle")
  })

  it("the simulator's RCC answers carry the documented members; the connector reads them and the documented PresenceUpdate", () => {
    const model = new SystemModel()
    model.users.set("g1", { user: { guid: "g1", h323: "alice", cn: "Alice Example", apps: ["app"] }, home: "pbx-master" })
    const frames: Array<Message> = []
    const rcc = new SimRcc("pbx-master", "app", model, (message) => frames.push(message))
    const reply = (src: string) => (result: Message) => frames.push({ api: "RCC", ...result, src })
    rcc.receive("Initialize", {}, "s0", reply("s0"))
    rcc.receive("UserInitialize", { cn: "Alice Example" }, "s1", reply("s1"))
    const call = { id: 3, guid: "g1", state: "connected" as const, hold: true, since: 0 }
    model.calls.set(3, call)
    rcc.pushCall(call, "x-conn")
    for (const frame of frames.filter((f) => f["mt"] !== "InitializeResult")) assertDocumented(fixture.innovaphone.fromPbx, frame)
    const result = Schema.decodeUnknownSync(UserInitializeResult)(frames.find((f) => f["mt"] === "UserInitializeResult"))
    const info = Schema.decodeUnknownSync(CallInfo)(frames.find((f) => f["mt"] === "CallInfo"))
    assert.strictEqual(info.user, result.user)
    assert.strictEqual(info.state, 5 | 0x100)
    // The SDK's PresenceUpdate (types as values) with the values filled in: the connector's schema reads it.
    const documented = sdk.fromPbx["PresenceUpdate"]!.members
    const update = Schema.decodeUnknownSync(PresenceUpdate)({
      ...documented,
      presence: [{ contact: "tel:", status: "open", activity: "on-the-phone", note: "" }]
    })
    assert.strictEqual(update.presence?.[0]?.activity, "on-the-phone")
    assert.deepStrictEqual(Object.keys((documented["presence"] as Array<object>)[0]!).sort(), ["activity", "contact", "note", "status"])
  })
})
