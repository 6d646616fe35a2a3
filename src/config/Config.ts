/**
 * The whole configuration of the connector as one Schema. Secrets decode to `Redacted` so they never reach a log,
 * an error message or the status page. Defaults make a minimal file short; docs/configuration.md documents each key.
 */
import { Effect, Schema } from "effect"
import { PbxActivities } from "../domain/PbxPresence.ts"

const Secret = Schema.RedactedFromValue(Schema.NonEmptyString)
const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))
const Port = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 }))
const UrlString = Schema.String.check(
  Schema.makeFilter((s: string) => URL.canParse(s) || "Expected a valid absolute URL such as https://connector.example.com")
)
const Path = Schema.String.check(Schema.isStartingWith("/"))
/** Graph ids and tenant ids are GUIDs; a tenant may also be given by its primary domain. */
const TenantId = Schema.NonEmptyString

const optional = <S extends Schema.Top>(schema: S) => Schema.optionalKey(schema)
/** A key that may be left out of the file; the default is given as it would be written in the file. */
const withDefault = <S extends Schema.Top & { readonly DecodingServices: never }>(schema: S, value: S["Encoded"]) =>
  schema.pipe(Schema.withDecodingDefaultKey(Effect.succeed(value)))

export const AppCredentialConfig = Schema.Struct({
  /** Client secret of the app registration (or CONNECTOR_CLIENT_SECRET). */
  clientSecret: optional(Secret),
  /** PEM file with the certificate registered on the app (instead of a secret). */
  certificateFile: optional(Schema.NonEmptyString),
  /** PEM file with its private key. */
  privateKeyFile: optional(Schema.NonEmptyString)
})

export const AccountConfig = Schema.Struct({
  /** A short name used by `login --account`, the logs and the status page. */
  name: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_.-]{1,64}$/)),
  /** The technical user's user principal name. */
  username: Schema.NonEmptyString,
  /** `password` (no MFA; needs "Allow public client flows") or `deviceCode` (works with MFA; run `login` once). */
  flow: Schema.Literals(["password", "deviceCode"]),
  /** For the password flow (or CONNECTOR_ACCOUNT_<NAME>_PASSWORD). */
  password: optional(Secret)
})
export type AccountConfig = typeof AccountConfig.Type

export const GraphEndpointsConfig = Schema.Struct({
  loginBaseUrl: withDefault(UrlString, "https://login.microsoftonline.com"),
  graphBaseUrl: withDefault(UrlString, "https://graph.microsoft.com"),
  jwksUrl: withDefault(UrlString, "https://login.microsoftonline.com/common/discovery/v2.0/keys")
})

export const NotificationsConfig = Schema.Struct({
  /** `push`: Graph change notifications (needs a public HTTPS URL) plus reconciliation; `poll`: polling only. */
  mode: withDefault(Schema.Literals(["push", "poll"]), "push"),
  /** The public HTTPS base URL under which Graph reaches this connector (reverse proxy). Required in push mode. */
  publicBaseUrl: optional(UrlString),
  notificationPath: withDefault(Path, "/graph/notifications"),
  lifecyclePath: withDefault(Path, "/graph/lifecycle"),
  includeResourceData: withDefault(Schema.Boolean, true),
  deleteSubscriptionsOnShutdown: withDefault(Schema.Boolean, false),
  maxBodyBytes: withDefault(PositiveInt, 4 * 1024 * 1024),
  /** Threads that decrypt rich notifications; 0 = one per core. */
  decryptWorkers: withDefault(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 64 })), 0),
  /** How many nice steps below the main thread the decrypt workers run (Linux); 0 = the same priority. */
  decryptWorkerNice: withDefault(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 19 })), 0),
  /**
   * In a flood, the longest a rich notification may expect to wait for decryption; above it the users' presence is
   * read with getPresencesByUserId instead. 0 = always decrypt. The default follows from the flood's target of 300 ms
   * from the POST to the PBX: less ≈ 150 ms after decryption at p99 and a margin (docs/performance.md, "Held chunks").
   */
  floodLatencyBudgetMillis: withDefault(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 60_000 })), 200)
})

export const PbxConfig = Schema.Struct({
  /** The password of the App object on the PBX (or CONNECTOR_PBX_PASSWORD). */
  appPassword: Secret,
  /** The name of the master PBX, as the PBX reports it (`info.pbx`). */
  masterPbx: Schema.NonEmptyString,
  /** The presence contact the connector writes (never `tel:`, which is the user's own). */
  contact: withDefault(
    Schema.NonEmptyString.check(Schema.makeFilter((s: string) => s !== "tel:" || "Expected a contact other than tel: (that one is the user's own)")),
    "teams:"
  ),
  /** Websocket path the App object's URL points to. */
  path: withDefault(Path, "/pbx"),
  /** The name in users' `apps` column that grants the App object (licensing appRight); default: the App object's name. */
  appName: optional(Schema.NonEmptyString),
  /**
   * Which users are served: `appRight` (the App is ticked on the user's Apps tab), `appLicence` (the PBX confirms an
   * App licence per user; needs the App object's Admin checkmark, PbxAdminApi) or `all` (every matched user).
   */
  licensing: withDefault(Schema.Literals(["appRight", "appLicence", "all"]), "appRight"),
  /** `appLicence`: the licence checked is `App(<licenceName>)`; default: the app name. */
  licenceName: optional(Schema.NonEmptyString.check(Schema.isPattern(/^[^()\s]+$/))),
  /** An optional cap: at most this many users, or `serviceLicences` for the App object's Licenses (`info.lics`). */
  maxUsers: optional(Schema.Union([PositiveInt, Schema.Literal("serviceLicences")])),
  /** The largest websocket frame a logged-in PBX may send (a real user table row is under 1 KiB). */
  maxFrameBytes: withDefault(Schema.Int.check(Schema.isBetween({ minimum: 16 * 1024, maximum: 64 * 1024 * 1024 })), 256 * 1024)
})

export const MatchingConfig = Schema.Struct({
  strategy: withDefault(Schema.Literals(["email", "displayName", "file"]), "email"),
  /** For `file`: a JSON or YAML file `{ "<Teams user id or UPN>": "<PBX h323 name or guid>" }`. */
  file: optional(Schema.NonEmptyString)
})

const MappingTargetValue = Schema.String.check(
  Schema.makeFilter((s: string) => {
    const v = s.trim().toLowerCase()
    return v === "clear" || (PbxActivities as ReadonlyArray<string>).includes(v) ||
      `Expected a PBX activity (${PbxActivities.join(", ")}) or clear`
  })
)

export const MappingSection = Schema.Struct({
  /** Per Teams activity (or availability) → PBX activity or `clear`; keys case-insensitive. */
  overrides: withDefault(Schema.Record(Schema.String, MappingTargetValue), ({})),
  note: withDefault(
    Schema.Struct({
      enabled: withDefault(Schema.Boolean, false),
      maxLength: withDefault(PositiveInt, 100)
    }),
    ({})
  )
})

export const TimersConfig = Schema.Struct({
  presenceRenewMinutes: withDefault(PositiveInt, 10),
  /**
   * Expiry requested for presence subscriptions. Graph's maximum is 60 minutes on Graph's clock; the default leaves
   * two minutes for clock skew.
   */
  presenceExpiryMinutes: withDefault(PositiveInt.check(Schema.isLessThanOrEqualTo(60)), 58),
  usersRenewMinutes: withDefault(PositiveInt, 60),
  usersExpiryMinutes: withDefault(PositiveInt.check(Schema.isLessThanOrEqualTo(41760)), 180),
  reconcileMinutes: withDefault(PositiveInt, 5),
  /** Each presence subscription is looked up this often between renewals (a deleted one is recreated). */
  verifySeconds: withDefault(PositiveInt, 30),
  pollSeconds: withDefault(PositiveInt, 5),
  /** Debounce for re-planning subscriptions after directory or user changes. */
  replanDebounceSeconds: withDefault(PositiveInt, 2)
})

export const HttpConfig = Schema.Struct({
  host: withDefault(Schema.NonEmptyString, "0.0.0.0"),
  port: withDefault(Port, 8080)
})

export const LogConfig = Schema.Struct({
  level: withDefault(
    Schema.Literals(["trace", "debug", "info", "warning", "error"]),
    "info" as const
  ),
  format: withDefault(Schema.Literals(["auto", "json", "pretty"]), "auto")
})

/** Limits against guessing and flooding (docs/operations.md, Security). */
export const SecurityConfig = Schema.Struct({
  /** Failed logins (PBX App object, status page) from one address before it is refused for `refuseMinutes`. */
  refuseAfterFailedLogins: withDefault(PositiveInt, 10),
  refuseMinutes: withDefault(PositiveInt, 5),
  /** The answer to a failed login waits 0.5 s, doubling with each further failure up to this. */
  maxLoginDelaySeconds: withDefault(PositiveInt, 8),
  /** Status pages that can follow the live feed at once. */
  maxEventStreams: withDefault(PositiveInt, 16)
})

/** Where the state is kept: PostgreSQL when `url` is set, else files in `dataDir` (docs/state.md). */
export const DatabaseConfig = Schema.Struct({
  /** postgres://user:password@host:5432/database (or CONNECTOR_DATABASE_URL); needs CONNECTOR_STATE_KEY. */
  url: optional(Schema.RedactedFromValue(Schema.NonEmptyString.check(Schema.makeFilter((s: string) => {
    const scheme = URL.canParse(s) ? new URL(s).protocol : undefined
    return scheme === "postgres:" || scheme === "postgresql:" ||
      "Expected a PostgreSQL URL such as postgres://user:password@host:5432/database"
  })))),
  /** Connections in the pool; the store's change listeners hold one more each. */
  maxConnections: withDefault(Schema.Int.check(Schema.isBetween({ minimum: 2, maximum: 100 })), 10)
})

export const ShutdownConfig = Schema.Struct({
  /** Clear the Teams presences the connector set when it stops. */
  clearPresences: withDefault(Schema.Boolean, false)
})

/** A separate app registration for the PBX → Teams writes (application permission Presence.ReadWrite.All). */
export const PresenceWriterAppConfig = Schema.Struct({
  clientId: Schema.NonEmptyString,
  /** Its client secret (or CONNECTOR_PBXTOTEAMS_CLIENT_SECRET). */
  clientSecret: optional(Secret),
  certificateFile: optional(Schema.NonEmptyString),
  privateKeyFile: optional(Schema.NonEmptyString)
})

/** PBX → Teams: a user on the phone at the PBX shows "In a call" in Teams (docs/pbx-to-teams.md). Off by default. */
export const PbxToTeamsConfig = Schema.Struct({
  enabled: withDefault(Schema.Boolean, false),
  /** `presence`: the PBX's on-the-phone activity (PbxApi); `rcc`: RCC's call states (the App object's RCC checkmark). */
  source: withDefault(Schema.Literals(["presence", "rcc"]), "presence"),
  /** rcc: `connected` calls only, or `ringing` calls too. */
  callStates: withDefault(Schema.Literals(["connected", "ringing"]), "connected"),
  /** rcc: a call on hold still counts. */
  holdCounts: withDefault(Schema.Boolean, true),
  /** The Teams presence a call shows (a setPresence pair). */
  presence: withDefault(Schema.Literals(["Busy/InACall", "Busy/InAConferenceCall", "DoNotDisturb/Presenting"]), "Busy/InACall"),
  /** The session's lifetime in Teams: it ends by itself this long after the last refresh (Graph: 5–240). */
  expirationMinutes: withDefault(Schema.Int.check(Schema.isBetween({ minimum: 5, maximum: 240 })), 5),
  /** The session is refreshed this often while the call lasts; shorter than expirationMinutes. */
  refreshSeconds: withDefault(Schema.Int.check(Schema.isBetween({ minimum: 30, maximum: 14_340 })), 240),
  /** A call must last this long before Teams shows it (0: at once). */
  debounceSeconds: withDefault(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 600 })), 0),
  /** After a call, Teams notifications that only show the connector's own session are not written to the PBX for this long. */
  graceSeconds: withDefault(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 3600 })), 60),
  /** Only members of this PBX group; all served users when left out. */
  group: optional(Schema.NonEmptyString),
  /** Clear every session the connector holds when it stops. */
  clearOnShutdown: withDefault(Schema.Boolean, true),
  /** Write with a separate app registration instead of `app`. */
  app: optional(PresenceWriterAppConfig)
})

export const ConnectorConfig = Schema.Struct({
  /** Directory (Entra) tenant id or primary domain. */
  tenantId: TenantId,
  /** Application (client) id of the app registration. */
  clientId: Schema.NonEmptyString,
  app: optional(AppCredentialConfig),
  accounts: withDefault(Schema.Array(AccountConfig), []),
  graph: withDefault(GraphEndpointsConfig, ({})),
  notifications: withDefault(NotificationsConfig, ({})),
  pbx: PbxConfig,
  matching: withDefault(MatchingConfig, ({})),
  mapping: withDefault(MappingSection, ({})),
  timers: withDefault(TimersConfig, ({})),
  http: withDefault(HttpConfig, ({})),
  dataDir: withDefault(Schema.NonEmptyString, "./data"),
  database: withDefault(DatabaseConfig, ({})),
  admin: withDefault(Schema.Struct({ password: optional(Secret) }), ({})),
  log: withDefault(LogConfig, ({})),
  security: withDefault(SecurityConfig, ({})),
  shutdown: withDefault(ShutdownConfig, ({})),
  pbxToTeams: withDefault(PbxToTeamsConfig, ({}))
})
export type ConnectorConfig = typeof ConnectorConfig.Type
export type ConnectorConfigInput = typeof ConnectorConfig.Encoded
