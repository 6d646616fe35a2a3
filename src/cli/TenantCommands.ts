/**
 * `tenants add|update|remove|list`: the tenants kept in the state store (docs/tenants.md), opened as `run` opens it.
 * A tenant file is checked as `check-config` checks a configuration: every problem at once, nothing stored unless all
 * is valid. Tenant `default` is the configuration file itself and is not managed here. The work itself is
 * src/tenants/TenantManagement.ts, shared with the admin HTTP API.
 */
import { Console, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import type { ConfigError } from "../config/ConfigFile.ts"
import { describeTenant, loadTenantFile } from "../config/TenantFile.ts"
import type { StateStoreError } from "../state/StateStoreError.ts"
import { addTenant, managedId, removeTenant, type TenantPresence, updateTenant } from "../tenants/TenantManagement.ts"
import { configFlag, reportAndExit } from "./ConfigPath.ts"
import { withConfiguredStore } from "./StateCommands.ts"

const idArgument = Argument.String("id").pipe(Argument.withDescription("The tenant's id: lower-case letters, digits, inner hyphens (contoso-1)"))
const fileFlag = Flag.String("file").pipe(
  Flag.withAlias("f"),
  Flag.withDescription("The tenant's configuration (YAML or JSON): the tenant keys of a configuration file (docs/tenants.md)")
)

const handled = <A, R>(effect: Effect.Effect<A, ConfigError | StateStoreError | TenantPresence, R>) =>
  effect.pipe(Effect.catchTags({ ConfigError: reportAndExit, StateStoreError: reportAndExit, TenantPresence: reportAndExit }))

const put = (mode: "add" | "update") =>
  Command.make(mode, { config: configFlag, id: idArgument, file: fileFlag }, ({ config, file, id }) =>
    handled(Effect.gen(function*() {
      const command = `tenants ${mode}`
      const tenant = yield* managedId(id, command)
      const tenantConfig = yield* loadTenantFile(file)
      yield* withConfiguredStore(config, command, (store, where) =>
        Effect.gen(function*() {
          const stored = yield* (mode === "add" ? addTenant : updateTenant)(store, tenant, tenantConfig)
          yield* Console.log(`tenant ${tenant} ${mode === "add" ? "added" : "updated"} (${where}): ${describeTenant(tenant, stored.version, stored.config)}`)
        }))
    }))).pipe(Command.withDescription(
      mode === "add"
        ? "Add a tenant from its configuration file, checked first (every problem at once; nothing stored unless all is valid)"
        : "Replace a tenant's configuration from its file, checked first (every problem at once); its version grows by one"
    ))

const remove = Command.make("remove", { config: configFlag, id: idArgument }, ({ config, id }) =>
  handled(Effect.gen(function*() {
    const tenant = yield* managedId(id, "tenants remove")
    yield* withConfiguredStore(config, "tenants remove", (store, where) =>
      Effect.gen(function*() {
        yield* removeTenant(store, tenant)
        yield* Console.log(`tenant ${tenant} removed (${where}), with its tokens, subscription state and keys`)
      }))
  }))).pipe(Command.withDescription("Remove a tenant with everything stored for it (tokens, subscription state, keys)"))

const list = Command.make("list", { config: configFlag }, ({ config }) =>
  handled(withConfiguredStore(config, "tenants list", (store, where) =>
    Effect.gen(function*() {
      const tenants = yield* store.tenants.list
      yield* Console.log(
        tenants.length === 0
          ? `no tenants stored (${where}); the configuration file is tenant default`
          : [`${tenants.length} tenant(s) (${where}), besides default (the configuration file):`, ...tenants.map((t) => `  ${describeTenant(t.id, t.version, t.config)}`)].join("\n")
      )
    })))).pipe(Command.withDescription("List the stored tenants (secrets only as set / not set)"))

export const tenantsCommand = Command.make("tenants").pipe(
  Command.withDescription("Manage the tenants kept in the state store (docs/tenants.md)"),
  Command.withSubcommands([put("add"), put("update"), remove, list])
)
