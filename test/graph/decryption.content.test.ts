/**
 * What a chunk keeps while the decrypt workers have it (Dispatcher.ts): its items without their `encryptedContent`, so
 * that the ciphertext of a change in flight is not kept (and promoted to the old generation) until the answer; the
 * answer still publishes each item's presence, checked against the user its notification names.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, PubSub } from "effect"
import type { GraphPresence } from "../../src/domain/Presence.ts"
import { type Answered, DecryptPool } from "../../src/graph/notifications/crypto/DecryptPool.ts"
import { decryptBatch, type PushedPresence } from "../../src/graph/notifications/Decryption.ts"
import type { EncryptedContent } from "../../src/graph/notifications/Notifications.ts"
import { decryptionWithPool } from "./inboxes.ts"
import { richBatchItem } from "./richItems.ts"

const presence = (id: string): GraphPresence => ({ id, availability: "Busy", activity: "Busy" })

describe("a chunk with the decrypt workers", () => {
  it.effect("keeps its items without their encrypted content until the answer, which publishes their presences", () =>
    Effect.gen(function*() {
      const posted = yield* Deferred.make<{ readonly contents: ReadonlyArray<EncryptedContent>; readonly answered: Answered }>()
      const held = DecryptPool.of({
        decrypt: () => Effect.die("not used"),
        post: (contents, answered) => (Deferred.doneUnsafe(posted, Effect.succeed({ contents, answered })), () => {}),
        reloadKeys: Effect.void,
        size: 1,
        itemMicros: () => 350,
        pendingItems: () => 0
      })
      const presences = yield* PubSub.unbounded<PushedPresence>()
      const published = yield* PubSub.subscribe(presences)
      const decryption = yield* decryptionWithPool(presences, held)
      const rich = [richBatchItem(presence("u-1")), richBatchItem(presence("u-2"))]
      yield* decryptBatch(decryption, { items: rich, validationTokens: [], receivedAt: yield* Clock.currentTimeMillis, span: undefined }, rich)
      const { answered, contents } = yield* Deferred.await(posted)
      assert.deepStrictEqual(contents.map((c) => (JSON.parse(c.data) as GraphPresence).id), ["u-1", "u-2"])
      const [chunk] = [...decryption.room.out]
      assert.isDefined(chunk)
      assert.deepStrictEqual(chunk!.items.map((entry) => entry.item.encryptedContent), [null, null])
      assert.deepStrictEqual(chunk!.items.map((entry) => entry.item.subscriptionId), rich.map((entry) => entry.item.subscriptionId))
      answered(contents.map((c) => ({ ok: true as const, plaintext: c.data })))
      const first = yield* PubSub.take(published)
      const second = yield* PubSub.take(published)
      assert.deepStrictEqual([first.userId, second.userId], ["u-1", "u-2"])
    }).pipe(Effect.scoped))
})
