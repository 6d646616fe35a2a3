/** A self-signed RSA certificate and its key in PEM, for the certificate credential in tests and the demo. */
import "reflect-metadata"
import * as x509 from "@peculiar/x509"
import { Effect } from "effect"
import { webcrypto } from "node:crypto"

export interface CertificateAndKey {
  readonly certificatePem: string
  readonly privateKeyPem: string
}

export const makeSelfSignedCertificate = (commonName = "teams-presence-connector") =>
  Effect.promise(async (): Promise<CertificateAndKey> => {
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])
    const algorithm = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256", publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 }
    const keys = await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"])
    const now = Date.now()
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: "01",
      name: `CN=${commonName}`,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 365 * 24 * 3600_000),
      signingAlgorithm: algorithm,
      keys: keys as unknown as x509.X509CertificateCreateSelfSignedParams["keys"]
    })
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey))
    const body = pkcs8.toString("base64").match(/.{1,64}/g)!.join("\n")
    return {
      certificatePem: certificate.toString("pem"),
      privateKeyPem: `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`
    }
  })
