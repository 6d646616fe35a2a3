import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { CertificateStore } from "../../src/graph/crypto/CertificateStore.ts"
import { DecryptPool } from "../../src/graph/crypto/DecryptPool.ts"
import { decryptPayload, encryptPayload, inspectCertificate } from "../../src/graph/crypto/RichCrypto.ts"

const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "tpc-rich-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

const presenceJson = JSON.stringify({ id: "u1", availability: "Busy", activity: "InACall" })

describe("rich notification crypto", () => {
  it.effect("round-trips through the persisted certificate and rejects tampering", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const store = yield* CertificateStore.make(dir)
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
      const again = yield* CertificateStore.make(dir)
      assert.strictEqual((yield* again.current).id, current.id)
      assert.notInclude(String(key!.privateKeyPem), "PRIVATE KEY")
    }).pipe(Effect.scoped))

  it.effect("decrypts a batch in worker threads, with old keys kept after rotation until retired", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const store = yield* CertificateStore.make(dir)
      const first = yield* store.current
      const pool = yield* DecryptPool.make(2).pipe(Effect.provideService(CertificateStore, store))
      const seal = (certificate: { certificate: string; id: string; thumbprint: string }, text: string) => ({
        ...encryptPayload(inspectCertificate(certificate.certificate).publicKey, text),
        encryptionCertificateId: certificate.id,
        encryptionCertificateThumbprint: certificate.thumbprint
      })
      const items = Array.from({ length: 200 }, (_, i) => seal(first, JSON.stringify({ id: `u${i}` })))
      const results = yield* pool.decrypt(items)
      assert.strictEqual(results.length, 200)
      results.forEach((result, i) => assert.deepStrictEqual(result, { ok: true, plaintext: JSON.stringify({ id: `u${i}` }) }))

      const second = yield* store.rotate
      yield* pool.reloadKeys
      const mixed = yield* pool.decrypt([seal(first, "old"), seal(second, "new")])
      assert.deepStrictEqual(mixed.map((r) => r.ok), [true, true])

      yield* store.retire([])
      yield* pool.reloadKeys
      const afterRetire = yield* pool.decrypt([seal(first, "old"), seal(second, "new")])
      assert.deepStrictEqual(afterRetire.map((r) => (r.ok ? "ok" : r.reason)), ["decrypt", "ok"])
    }).pipe(Effect.scoped))
})
