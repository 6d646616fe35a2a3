/**
 * A throw-away certificate authority and a server certificate it issued for the loopback address, so the Graph
 * simulator can serve HTTPS (MSAL refuses authorities that are not HTTPS). Clients trust `caCertificatePem`
 * (NODE_EXTRA_CA_CERTS, or a CA option of their HTTP client); nothing else ever trusts it. ECDSA P-256: fast to make.
 */
import "reflect-metadata"
import * as x509 from "@peculiar/x509"
import { Effect } from "effect"
import { webcrypto } from "node:crypto"

export interface TestCa {
  /** The CA certificate clients are told to trust. */
  readonly caCertificatePem: string
  /** The server certificate (SAN: 127.0.0.1, ::1, localhost) and its key, for `https.createServer`. */
  readonly serverCertificatePem: string
  readonly serverPrivateKeyPem: string
}

const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" }

type Key = webcrypto.CryptoKey

const pkcs8Pem = async (key: Key): Promise<string> => {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key))
  return `-----BEGIN PRIVATE KEY-----\n${der.toString("base64").match(/.{1,64}/g)!.join("\n")}\n-----END PRIVATE KEY-----\n`
}

/** A new CA and server certificate, valid from a minute ago for `days` days. */
export const makeTestCa = (options: { readonly days?: number } = {}) =>
  Effect.promise(async (): Promise<TestCa> => {
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])
    const generate = () => webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"]) as Promise<webcrypto.CryptoKeyPair>
    const caKeys = await generate()
    const serverKeys = await generate()
    const now = Date.now()
    const notBefore = new Date(now - 60_000)
    const notAfter = new Date(now + (options.days ?? 30) * 24 * 3600_000)
    const ca = await x509.X509CertificateGenerator.createSelfSigned({
      name: "CN=teams-presence-connector simulator test CA",
      notBefore,
      notAfter,
      signingAlgorithm: algorithm,
      keys: caKeys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey)
      ]
    })
    const server = await x509.X509CertificateGenerator.create({
      subject: "CN=127.0.0.1",
      issuer: ca.subject,
      notBefore,
      notAfter,
      signingAlgorithm: algorithm,
      publicKey: serverKeys.publicKey,
      signingKey: caKeys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          { type: "ip", value: "127.0.0.1" },
          { type: "ip", value: "::1" },
          { type: "dns", value: "localhost" }
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey)
      ]
    })
    return {
      caCertificatePem: ca.toString("pem"),
      serverCertificatePem: server.toString("pem"),
      serverPrivateKeyPem: await pkcs8Pem(serverKeys.privateKey)
    }
  })
