/**
 * Values for the state store tests: every kind of record with every secret set, each secret a distinct marker that
 * must never show up in stored bytes, and the non-secret markers beside them that must (so a check of the stored bytes
 * proves it read the right thing).
 */
import { ConfigProvider, Context, Effect, Layer, Redacted, Schema } from "effect"
import { randomBytes, randomUUID } from "node:crypto"
import {
  type CertificateSet,
  type RefreshToken,
  StateStore,
  type SubscriptionState,
  TenantConfig,
  TenantId
} from "../../src/state/StateStore.ts"
import { Sealer } from "../../src/state/Sealer.ts"

export const newKey = () => randomBytes(32).toString("base64")

/** The id a sealed value names for `key`. */
export const keyIdOf = (key: string) =>
  Sealer.make({ current: Redacted.make(key), previous: [] }).pipe(Effect.map((sealer) => sealer.keyId!), Effect.orDie)

/** The environment of a store: the state key and the previous keys. */
export const keyEnv = (current: string | undefined, previous: ReadonlyArray<string> = []): Record<string, string> => ({
  ...(current === undefined ? {} : { CONNECTOR_STATE_KEY: current }),
  ...(previous.length === 0 ? {} : { CONNECTOR_STATE_KEY_PREVIOUS: previous.join(",") })
})

export const withEnv = (env: Record<string, string>) => ConfigProvider.layer(ConfigProvider.fromEnvRecord(env))

/** Builds a store layer in the test's scope (a new "process" on the same storage each time). */
export const openStore = <E>(layer: Layer.Layer<StateStore, E>) =>
  Layer.build(Layer.fresh(layer)).pipe(Effect.map((context) => Context.get(context, StateStore)))

export const tenant = (name: string) => TenantId.make(name)

/** A marker that identifies one secret in stored bytes. */
const marker = (what: string) => `${what}-${randomUUID()}`

export interface Secrets {
  readonly clear: ReadonlyArray<string>
  readonly visible: ReadonlyArray<string>
}

export const tenantConfig = (label: string) => {
  const secrets = {
    clientSecret: marker("client-secret"),
    appPassword: marker("pbx-password"),
    adminPassword: marker("admin-password"),
    accountPassword: marker("account-password")
  }
  const visible = { clientId: marker("client-id"), username: `${label}-tech@contoso.example` }
  const config = Schema.decodeUnknownSync(TenantConfig)({
    tenantId: "contoso.onmicrosoft.com",
    clientId: visible.clientId,
    app: { clientSecret: secrets.clientSecret },
    accounts: [
      { name: "tech1", username: visible.username, flow: "password", password: secrets.accountPassword },
      { name: "tech2", username: `${label}-tech2@contoso.example`, flow: "deviceCode" }
    ],
    notifications: { publicBaseUrl: "https://connector.example.com" },
    pbx: { appPassword: secrets.appPassword, masterPbx: "master" },
    mapping: { overrides: { BeRightBack: "away" } },
    admin: { password: secrets.adminPassword }
  })
  return { config, secrets: { clear: Object.values(secrets), visible: Object.values(visible) } satisfies Secrets }
}

export const encodeConfig = Schema.encodeSync(TenantConfig)

export const refreshToken = (username: string) => {
  const clear = marker("refresh-token")
  const token: RefreshToken = { username, refreshToken: Redacted.make(clear) }
  return { token, secrets: { clear: [clear], visible: [username] } satisfies Secrets }
}

export const subscriptionState = () => {
  const clientStates = [marker("client-state-a"), marker("client-state-b")]
  const subscriptionId = marker("subscription")
  const state: SubscriptionState = {
    version: 1,
    shards: [
      {
        key: "shard-0",
        account: "tech1",
        userIds: ["u1", "u2"],
        subscription: { subscriptionId, clientState: Redacted.make(clientStates[0]!), expiresAt: 1_800_000_000_000, certificateId: "c1" },
        subscribedIds: ["u1"]
      },
      { key: "shard-1", account: "tech2", userIds: ["u3"] }
    ],
    users: { subscriptionId: "users-sub", clientState: Redacted.make(clientStates[1]!), expiresAt: 1_800_000_100_000 }
  }
  return { state, secrets: { clear: clientStates, visible: [subscriptionId] } satisfies Secrets }
}

export const certificateSet = () => {
  const keys = [marker("private-key-new"), marker("private-key-old")]
  const thumbprint = marker("THUMB")
  const set: CertificateSet = {
    currentId: "tpc-2",
    certificates: [
      { id: "tpc-2", certificate: "MIIB-new", privateKey: Redacted.make(keys[0]!), thumbprint, createdAt: 2000, notAfter: 9000 },
      { id: "tpc-1", certificate: "MIIB-old", privateKey: Redacted.make(keys[1]!), thumbprint: "OLD", createdAt: 1000, notAfter: 8000 }
    ]
  }
  return { set, secrets: { clear: keys, visible: [thumbprint] } satisfies Secrets }
}

/** Records compared through their encoded form (Redacted values compare by reference). */
export const encoded = {
  token: Schema.encodeSync(Schema.Struct({ username: Schema.String, refreshToken: Schema.RedactedFromValue(Schema.String) })),
  config: encodeConfig
}

/** Asserts on every secret and visible marker against the stored text. */
export const secretsInText = (text: string, secrets: ReadonlyArray<Secrets>) => ({
  leaked: secrets.flatMap((s) => s.clear).filter((clear) => text.includes(clear)),
  missing: secrets.flatMap((s) => s.visible).filter((visible) => !text.includes(visible))
})
