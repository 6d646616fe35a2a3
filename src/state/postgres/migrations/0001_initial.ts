/**
 * The first schema. Secret columns and secret fields inside jsonb hold sealed text only (docs/state.md). There are no
 * foreign keys to `tenants`: the `default` tenant of a configuration file has state without a row there.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE tenants (
    id text PRIMARY KEY,
    config jsonb NOT NULL,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
  )`
  yield* sql`CREATE TABLE refresh_tokens (
    tenant_id text NOT NULL,
    account text NOT NULL,
    username text NOT NULL,
    refresh_token_sealed text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account)
  )`
  yield* sql`CREATE TABLE subscription_state (
    tenant_id text PRIMARY KEY,
    state jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
  )`
  yield* sql`CREATE TABLE certificates (
    tenant_id text NOT NULL,
    id text NOT NULL,
    position integer NOT NULL,
    is_current boolean NOT NULL,
    certificate text NOT NULL,
    private_key_sealed text NOT NULL,
    thumbprint text NOT NULL,
    created_at bigint NOT NULL,
    not_after bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
  )`
  yield* sql`CREATE TABLE tenant_owner (
    tenant_id text PRIMARY KEY,
    runner text NOT NULL,
    epoch bigint NOT NULL,
    since timestamptz NOT NULL DEFAULT now()
  )`
  yield* sql`CREATE SEQUENCE pbx_desired_version`
  yield* sql`CREATE TABLE pbx_desired (
    tenant_id text NOT NULL,
    guid text NOT NULL,
    pbx text NOT NULL,
    command jsonb NOT NULL,
    version bigint NOT NULL,
    confirmed_version bigint NOT NULL DEFAULT 0,
    owner_epoch bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, guid)
  )`
  yield* sql`CREATE INDEX pbx_desired_pending ON pbx_desired (tenant_id, pbx, version) WHERE version > confirmed_version`
})
