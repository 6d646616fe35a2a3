import { assert, describe, it } from "@effect/vitest"
import { Exit } from "effect"
import * as fs from "node:fs"
import { decodeGraphPresenceSync } from "../../src/domain/Presence.ts"
import { decodeChangeNotifications, decodeLifecycleNotifications, notificationUserId } from "../../src/graph/notifications/Notifications.ts"

const samples = JSON.parse(fs.readFileSync(new URL("../fixtures/conformance/graph-samples.json", import.meta.url), "utf8")) as Record<
  string,
  { body: unknown }
>
const body = (name: string): unknown => {
  const sample = samples[name]
  if (sample === undefined) throw new Error(`sample ${name} missing`)
  return sample.body
}

describe("notification schemas (conformance)", () => {
  it.each(["notification_presence_basic", "notification_presence_rich", "notification_mail_webhook", "notification_chatmessage_rich_encrypted", "notification_validation_tokens_two_tenants"])(
    "decodes %s",
    (name) => {
      const exit = decodeChangeNotifications(body(name))
      assert.isTrue(Exit.isSuccess(exit), String(exit))
    }
  )

  it("keeps encryptedContent and the user id of a rich presence notification", () => {
    const exit = decodeChangeNotifications(body("notification_presence_rich"))
    assert.isTrue(Exit.isSuccess(exit))
    if (!Exit.isSuccess(exit)) return
    const item = exit.value.value[0]!
    assert.strictEqual(item.encryptedContent?.dataKey, "{Encrypted data key for encrypting content}")
    assert.strictEqual(notificationUserId(item), "{User Id}")
  })

  it("decodes the Event Grid users notifications' data member", () => {
    for (const name of ["notification_user_updated_eventgrid", "notification_user_deleted_eventgrid", "notification_user_updated_eventgrid_sample"]) {
      const data = (body(name) as { data: unknown }).data
      const exit = decodeChangeNotifications({ value: [{ subscriptionId: "s", ...(data as object) }] })
      assert.isTrue(Exit.isSuccess(exit), name)
    }
  })

  it.each(["lifecycle_reauthorization_required", "lifecycle_subscription_removed", "lifecycle_missed"])("decodes %s", (name) => {
    const exit = decodeLifecycleNotifications(body(name))
    assert.isTrue(Exit.isSuccess(exit), String(exit))
  })

  it("rejects the docs' placeholder lifecycleEvent", () => {
    assert.isTrue(Exit.isFailure(decodeLifecycleNotifications(body("lifecycle_notification_structure"))))
  })

  it("rejects bodies without value[]", () => {
    assert.isTrue(Exit.isFailure(decodeChangeNotifications({ values: [] })))
    assert.isTrue(Exit.isFailure(decodeChangeNotifications({ value: [{ clientState: "x" }] })))
  })

  it("decodes the decrypted presence payload", () => {
    const presence = decodeGraphPresenceSync(body("notification_presence_decrypted_payload"))
    assert.strictEqual(presence.id, "{User Id}")
  })
})
