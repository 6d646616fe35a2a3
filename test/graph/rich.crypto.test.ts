import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Layer, Redacted } from "effect"
import * as crypto from "node:crypto"
import { readdirSync, readFileSync } from "node:fs"
import { Worker } from "node:worker_threads"
import { CertificateStore } from "../../src/graph/notifications/crypto/CertificateStore.ts"
import { DecryptPool, SharedDecryptWorkers } from "../../src/graph/notifications/crypto/DecryptPool.ts"
import { decryptPayload, type DecryptResult, encryptPayload, inspectCertificate } from "../../src/graph/notifications/crypto/RichCrypto.ts"
import { fileState } from "../support/state.ts"
import { makeTempDir } from "../support/tempDir.ts"

const tempDir = makeTempDir("tpc-rich-")

/** A tenant's certificate store in a directory of its own, and a payload sealed to its current certificate. */
const tenantKeys = Effect.fnUntraced(function*() {
  const store = yield* CertificateStore.make().pipe(Effect.provide(fileState(yield* tempDir)))
  const certificate = yield* store.current
  const seal = (text: string) => ({
    ...encryptPayload(inspectCertificate(certificate.certificate).publicKey, text),
    encryptionCertificateId: certificate.id,
    encryptionCertificateThumbprint: certificate.thumbprint
  })
  return { store, seal }
})

const presenceJson = JSON.stringify({ id: "u1", availability: "Busy", activity: "InACall" })

/** The workers' answer to a request, into a Deferred the test awaits. */
const into = (deferred: Deferred.Deferred<ReadonlyArray<DecryptResult>>) => (answer: Effect.Effect<ReadonlyArray<DecryptResult>>) =>
  Deferred.doneUnsafe(deferred, answer)

describe("rich notification crypto", () => {
  it.effect("round-trips through the persisted certificate and rejects tampering", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const store = yield* CertificateStore.make().pipe(Effect.provide(fileState(dir)))
      const current = yield* store.current
      const { publicKey, thumbprint } = inspectCertificate(current.certificate)
      assert.strictEqual(thumbprint, current.thumbprint)
      const [key] = yield* store.keys
      const pem = Redacted.value(key!.privateKeyPem)

      const sealed = encryptPayload(publicKey, presenceJson)
      const opened = decryptPayload(pem, sealed)
      assert.deepStrictEqual(opened, { ok: true, plaintext: presenceJson })

      const bytes = Buffer.from(sealed.data, "base64")
      bytes[0] = bytes[0]! ^ 1
      const tampered = decryptPayload(pem, { ...sealed, data: bytes.toString("base64") })
      assert.strictEqual(tampered.ok ? "ok" : tampered.reason, "hmac")

      const otherKey = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
      const wrongKey = decryptPayload(otherKey.privateKey, sealed)
      assert.strictEqual(wrongKey.ok ? "ok" : wrongKey.reason, "decrypt")

      // a restart reads the same certificate instead of generating another
      const again = yield* CertificateStore.make().pipe(Effect.provide(fileState(dir)))
      assert.strictEqual((yield* again.current).id, current.id)
      assert.notInclude(String(key!.privateKeyPem), "PRIVATE KEY")
    }).pipe(Effect.scoped))

  it("interoperates with the explicit RSA-OAEP/SHA-1 form on both sides", () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
    const oaepSha1 = { padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" } as const
    // The sender spelled out as Graph documents it: OAEP/SHA-1 key wrap, HMAC-SHA256, AES-256-CBC with IV = key[0..16).
    const symmetricKey = crypto.randomBytes(32)
    const cipher = crypto.createCipheriv("aes-256-cbc", symmetricKey, symmetricKey.subarray(0, 16))
    const data = Buffer.concat([cipher.update(presenceJson, "utf8"), cipher.final()])
    const explicit = {
      data: data.toString("base64"),
      dataKey: crypto.publicEncrypt({ key: publicKey, ...oaepSha1 }, symmetricKey).toString("base64"),
      dataSignature: crypto.createHmac("sha256", symmetricKey).update(data).digest("base64")
    }
    assert.deepStrictEqual(decryptPayload(privateKey, explicit), { ok: true, plaintext: presenceJson })
    // …and what encryptPayload produces opens with the explicit form.
    const sealed = encryptPayload(publicKey, presenceJson)
    const unwrapped = crypto.privateDecrypt({ key: privateKey, ...oaepSha1 }, Buffer.from(sealed.dataKey, "base64"))
    assert.strictEqual(unwrapped.length, 32)
    const decipher = crypto.createDecipheriv("aes-256-cbc", unwrapped, unwrapped.subarray(0, 16))
    const opened = Buffer.concat([decipher.update(Buffer.from(sealed.data, "base64")), decipher.final()]).toString("utf8")
    assert.strictEqual(opened, presenceJson)
    const signature = crypto.createHmac("sha256", unwrapped).update(Buffer.from(sealed.data, "base64")).digest("base64")
    assert.strictEqual(signature, sealed.dataSignature)
    // A PKCS#1 v1.5-wrapped key (not Graph's padding) is refused, not misread.
    const v15 = { ...explicit, dataKey: crypto.publicEncrypt({ key: publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, symmetricKey).toString("base64") }
    const refused = decryptPayload(privateKey, v15)
    assert.strictEqual(refused.ok ? "ok" : refused.reason, "decrypt")
  })

  it.effect("decrypts a batch in worker threads, with old keys kept after rotation until retired", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const store = yield* CertificateStore.make().pipe(Effect.provide(fileState(dir)))
      const first = yield* store.current
      // Two workers, 10 nice steps below the main thread (notifications.decryptWorkerNice).
      const pool = yield* DecryptPool.make(2, 10).pipe(Effect.provideService(CertificateStore, store))
      const seal = (certificate: { certificate: string; id: string; thumbprint: string }, text: string) => ({
        ...encryptPayload(inspectCertificate(certificate.certificate).publicKey, text),
        encryptionCertificateId: certificate.id,
        encryptionCertificateThumbprint: certificate.thumbprint
      })
      assert.strictEqual(pool.itemMicros(), undefined, "nothing timed before the first chunk")
      const items = Array.from({ length: 200 }, (_, i) => seal(first, JSON.stringify({ id: `u${i}` })))
      const results = yield* pool.decrypt(items)
      assert.strictEqual(results.length, 200)
      results.forEach((result, i) => assert.deepStrictEqual(result, { ok: true, plaintext: JSON.stringify({ id: `u${i}` }) }))
      // The same without an effect (the pipeline's way): 120 items go in three parts over both workers and come back
      // joined in order, in one call.
      const posted = yield* Deferred.make<ReadonlyArray<DecryptResult>>()
      const calls: Array<unknown> = []
      pool.post(items.slice(0, 120), (answer, crash) => {
        calls.push(crash)
        Deferred.doneUnsafe(posted, Effect.succeed(answer))
      })
      const postedResults = yield* Deferred.await(posted)
      assert.deepStrictEqual(postedResults, results.slice(0, 120))
      assert.deepStrictEqual(calls, [undefined])
      // The workers timed their chunks: an RSA-2048 unwrap per item is far above a microsecond and below a second.
      const itemMicros = pool.itemMicros()
      assert.isDefined(itemMicros)
      assert.isAbove(itemMicros!, 1)
      assert.isBelow(itemMicros!, 1_000_000)
      // On Linux the two workers run 10 steps below the process's main thread (the default is 0: no change).
      if (process.platform === "linux") {
        const niceOf = (task: string) => Number(readFileSync(`/proc/self/task/${task}/stat`, "utf8").replace(/^.*\) /s, "").split(" ")[16])
        const main = niceOf(String(process.pid))
        const lowered = readdirSync("/proc/self/task").filter((task) => niceOf(task) === Math.min(19, main + 10))
        assert.isAtLeast(lowered.length, 2)
      }

      const second = yield* store.rotate
      yield* pool.reloadKeys
      const mixed = yield* pool.decrypt([seal(first, "old"), seal(second, "new")])
      assert.deepStrictEqual(mixed.map((r) => r.ok), [true, true])

      yield* store.retire([])
      yield* pool.reloadKeys
      const afterRetire = yield* pool.decrypt([seal(first, "old"), seal(second, "new")])
      assert.deepStrictEqual(afterRetire.map((r) => (r.ok ? "ok" : r.reason)), ["decrypt", "ok"])
    }).pipe(Effect.scoped))

  it.effect("tenants sharing the process's workers decrypt with their own keys only; a stopped tenant's keys leave the workers", () =>
    Effect.gen(function*() {
      const shared = yield* Layer.build(SharedDecryptWorkers.layer(2))
      const { workers } = Context.get(shared, SharedDecryptWorkers)
      const a = yield* tenantKeys()
      const b = yield* tenantKeys()
      const poolA = yield* DecryptPool.layerShared.pipe(Layer.provide(Layer.succeedContext(shared)), Layer.build, Effect.provideService(CertificateStore, a.store))
      const outcome = (results: ReadonlyArray<{ ok: boolean }>) => results.map((r) => (r.ok ? "ok" : "refused"))
      const decryptA = Context.get(poolA, DecryptPool)

      // B's pool lives in a scope of its own, closed below as when the tenant stops.
      const [fromB, bItemsAtB] = yield* Effect.scoped(Effect.gen(function*() {
        const poolB = Context.get(
          yield* DecryptPool.layerShared.pipe(Layer.provide(Layer.succeedContext(shared)), Layer.build, Effect.provideService(CertificateStore, b.store)),
          DecryptPool
        )
        assert.strictEqual(poolB.size, decryptA.size)
        // Each tenant's items opened by its own pool; B's items handed to A's pool (its certificate id and thumbprint
        // named in them) are refused, and A's at B likewise.
        const ownA = yield* decryptA.decrypt(Array.from({ length: 120 }, (_, i) => a.seal(`a${i}`)))
        assert.deepStrictEqual(ownA.map((r) => (r.ok ? r.plaintext : r.reason)), Array.from({ length: 120 }, (_, i) => `a${i}`))
        assert.deepStrictEqual(outcome(yield* decryptA.decrypt([b.seal("b-at-a"), a.seal("a")])), ["refused", "ok"])
        assert.deepStrictEqual(outcome(yield* poolB.decrypt([a.seal("a-at-b"), b.seal("b")])), ["refused", "ok"])
        return [poolB, b.seal("b-later")] as const
      }))
      // B stopped: its keys are out of the workers. Its owner number is 2 (A's pool was made first, numbers count from 1).
      const answer = yield* Deferred.make<ReadonlyArray<DecryptResult>>()
      workers.post(2, [bItemsAtB], into(answer))
      const results = yield* Deferred.await(answer)
      assert.deepStrictEqual(results.map((r) => (r.ok ? "ok" : r.message)), [
        `no key for certificate id "${bItemsAtB.encryptionCertificateId}" (thumbprint ${bItemsAtB.encryptionCertificateThumbprint})`
      ])
      assert.strictEqual(fromB.size, 2)
      assert.deepStrictEqual(outcome(yield* decryptA.decrypt([a.seal("a-after")])), ["ok"])
    }).pipe(Effect.scoped))
  it.effect("the small chunks of many tenants posted in one task reach each worker in one message, each answered with its own keys", () =>
    Effect.gen(function*() {
      const shared = yield* Layer.build(SharedDecryptWorkers.layer(2))
      const { workers } = Context.get(shared, SharedDecryptWorkers)
      const tenant = Effect.fnUntraced(function*() {
        const { seal, store } = yield* tenantKeys()
        yield* DecryptPool.layerShared.pipe(Layer.provide(Layer.succeedContext(shared)), Layer.build, Effect.provideService(CertificateStore, store))
        return seal
      })
      // Owners 1 and 2, as the pools were made.
      const seals = [yield* tenant(), yield* tenant()]
      const sent: Array<string> = []
      const original = Worker.prototype.postMessage
      Worker.prototype.postMessage = function(this: Worker, message: unknown, ...rest: Array<never>) {
        const { type } = message as { type: string }
        sent.push(type)
        return original.call(this, message, ...rest)
      }
      yield* Effect.addFinalizer(() => Effect.sync(() => (Worker.prototype.postMessage = original)))
      // 40 chunks of 2 items, the two tenants interleaved, all posted in one task; then tenant 2's keys leave the
      // workers in the same task: its chunks posted before still decrypt, one posted after does not.
      const answers = Array.from({ length: 40 }, () => Deferred.makeUnsafe<ReadonlyArray<DecryptResult>>())
      answers.forEach((answer, i) => {
        const seal = seals[i % 2]!
        workers.post(1 + (i % 2), [seal(`c${i}-0`), seal(`c${i}-1`)], into(answer))
      })
      assert.deepStrictEqual(sent, [], "nothing sent before the task ends")
      workers.dropKeys(2)
      const late = Deferred.makeUnsafe<ReadonlyArray<DecryptResult>>()
      workers.post(2, [seals[1]!("late")], into(late))
      for (let i = 0; i < answers.length; i++) {
        const results = yield* Deferred.await(answers[i]!)
        assert.deepStrictEqual(results.map((r) => (r.ok ? r.plaintext : r.reason)), [`c${i}-0`, `c${i}-1`])
      }
      assert.deepStrictEqual((yield* Deferred.await(late)).map((r) => r.ok), [false])
      // One message per worker for the 40 chunks (sent when the keys changed), the keys, one for the late chunk.
      assert.deepStrictEqual(sent.filter((type) => type === "decrypt").length, 3)
      assert.deepStrictEqual(sent, ["decrypt", "decrypt", "keys", "keys", "decrypt"])
    }).pipe(Effect.scoped))
  it.effect("small chunks wait for the end of the event loop's turn to leave with the turn's others; 16 items leave with their task", () =>
    Effect.gen(function*() {
      const shared = yield* Layer.build(SharedDecryptWorkers.layer(1))
      const { workers } = Context.get(shared, SharedDecryptWorkers)
      const { seal, store } = yield* tenantKeys()
      yield* DecryptPool.layerShared.pipe(Layer.provide(Layer.succeedContext(shared)), Layer.build, Effect.provideService(CertificateStore, store))
      const sent: Array<number> = []
      const original = Worker.prototype.postMessage
      Worker.prototype.postMessage = function(this: Worker, message: unknown, ...rest: Array<never>) {
        const { type, requests } = message as { type: string; requests?: ReadonlyArray<unknown> }
        if (type === "decrypt") sent.push(requests?.length ?? 0)
        return original.call(this, message, ...rest)
      }
      yield* Effect.addFinalizer(() => Effect.sync(() => (Worker.prototype.postMessage = original)))
      const chunk = (n: number) => {
        const answer = Deferred.makeUnsafe<ReadonlyArray<DecryptResult>>()
        workers.post(1, Array.from({ length: n }, (_, i) => seal(`p${i}`)), into(answer))
        return answer
      }
      // Two chunks of 2 items in two tasks of one turn (a promise between them): one message, at the turn's end.
      const small = yield* Effect.promise(async () => {
        const first = chunk(2)
        await Promise.resolve()
        const second = chunk(2)
        await Promise.resolve()
        const before = [...sent]
        await new Promise((resolve) => setImmediate(resolve))
        return { first, second, before }
      })
      assert.deepStrictEqual(small.before, [])
      assert.deepStrictEqual(sent, [2])
      // A chunk of 16 leaves at the end of its task, before the turn ends.
      const large = yield* Effect.promise(async () => {
        const answer = chunk(16)
        await Promise.resolve()
        return { answer, before: [...sent] }
      })
      assert.deepStrictEqual(large.before, [2, 1])
      for (const answer of [small.first, small.second, large.answer]) {
        assert.isTrue((yield* Deferred.await(answer)).every((r) => r.ok))
      }
    }).pipe(Effect.scoped))
})
