/**
 * The Graph simulator over HTTPS for Microsoft's client libraries (MSAL refuses plain-HTTP authorities; the Graph
 * client only sends its token to https:// hosts). The test CA is trusted process-wide — the runtime equivalent of
 * NODE_EXTRA_CA_CERTS — because neither library takes a CA or agent option while keeping its default network code:
 * MSAL Node 7 and the Graph client both call Node's global fetch. Each vitest file runs in a process of its own
 * (pool "forks"), so nothing else is affected.
 */
import { Effect } from "effect"
import tls from "node:tls"
import { generateUsers, GraphSimulator, type GraphSimulatorOptions } from "../../src/simulators/graph/GraphSimulator.ts"
import { makeSelfSignedCertificate } from "../../src/simulators/graph/SelfSignedCert.ts"
import { SubscriptionsExtension } from "../../src/simulators/graph/SubscriptionsRoutes.ts"
import { makeTestCa } from "../../src/simulators/graph/TestCa.ts"
import { clientId, clientSecret, tenantId } from "./harness.ts"

export const technicalAccount = { upn: "tech@contoso.com", password: "tech-password" }

let trusted: Promise<{ readonly certificatePem: string; readonly privateKeyPem: string }> | undefined

/** One test CA per process, trusted by every TLS client in it; its server certificate for the simulators. */
const serverCertificate = () =>
  Effect.promise(() => {
    trusted ??= Effect.runPromise(makeTestCa()).then((ca) => {
      tls.setDefaultCACertificates([...tls.getCACertificates("default"), ca.caCertificatePem])
      return { certificatePem: ca.serverCertificatePem, privateKeyPem: ca.serverPrivateKeyPem }
    })
    return trusted
  })

/** A simulator over HTTPS with a secret, a registered certificate, one technical account and `users` Teams users. */
export const startTlsSimulator = (options: Omit<Partial<GraphSimulatorOptions>, "users"> & { readonly users?: number } = {}) =>
  Effect.gen(function*() {
    const tlsCertificate = yield* serverCertificate()
    const appCertificate = yield* makeSelfSignedCertificate("msal-conformance")
    const { users = 5, ...rest } = options
    const sim = yield* GraphSimulator.make({
      tenantId,
      clientId,
      clientSecrets: [{ value: clientSecret }],
      certificatePem: appCertificate.certificatePem,
      accounts: [technicalAccount],
      users: generateUsers(users),
      deviceCodeIntervalSeconds: 1,
      extensions: [SubscriptionsExtension({ batchWindowMillis: 10, retries: 0 })],
      tls: tlsCertificate,
      ...rest
    })
    return { sim, appCertificate }
  })

/** What MSAL is given, and nothing more: the authority and that the simulator's host is a known authority. */
export const msalAuthority = (url: string, tenant: string = tenantId) => ({
  authority: `${url}/${tenant}`,
  knownAuthorities: [new URL(url).host]
})
