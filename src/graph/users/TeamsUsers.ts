/**
 * The Teams users of the tenant (protocols.md §1.3): every enabled account whose `assignedPlans` hold the TEAMS1
 * service plan with `capabilityStatus` Enabled, read with the advanced-query headers and followed to the last page.
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import type { AuthError } from "../auth/AuthError.ts"
import { GraphClient } from "../client/GraphClient.ts"
import type { GraphError } from "../client/GraphError.ts"
import type { CredentialRef } from "../client/GraphSettings.ts"

/** Microsoft Teams service plan TEAMS1. */
export const teamsServicePlanId = "57ff2da0-773e-42df-b2af-ffb7a2317929"

export const AssignedPlan = Schema.Struct({
  assignedDateTime: Schema.optionalKey(Schema.NullOr(Schema.String)),
  capabilityStatus: Schema.optionalKey(Schema.NullOr(Schema.String)),
  service: Schema.optionalKey(Schema.NullOr(Schema.String)),
  servicePlanId: Schema.optionalKey(Schema.NullOr(Schema.String))
})
export type AssignedPlan = typeof AssignedPlan.Type

/** A user as Graph lists it; every property is optional because `$select` decides what is present. */
export const GraphUser = Schema.Struct({
  id: Schema.optionalKey(Schema.String),
  displayName: Schema.optionalKey(Schema.NullOr(Schema.String)),
  userPrincipalName: Schema.optionalKey(Schema.NullOr(Schema.String)),
  mail: Schema.optionalKey(Schema.NullOr(Schema.String)),
  otherMails: Schema.optionalKey(Schema.NullOr(Schema.Array(Schema.String))),
  accountEnabled: Schema.optionalKey(Schema.NullOr(Schema.Boolean)),
  assignedPlans: Schema.optionalKey(Schema.NullOr(Schema.Array(AssignedPlan)))
})
export type GraphUser = typeof GraphUser.Type

export const UsersPage = Schema.Struct({
  "@odata.context": Schema.optionalKey(Schema.String),
  "@odata.count": Schema.optionalKey(Schema.Number),
  "@odata.nextLink": Schema.optionalKey(Schema.String),
  value: Schema.Array(GraphUser)
})
export type UsersPage = typeof UsersPage.Type

/** What the connector keeps of a Teams user. */
export const TeamsUser = Schema.Struct({
  id: Schema.String,
  displayName: Schema.String,
  userPrincipalName: Schema.String,
  mail: Schema.NullOr(Schema.String),
  otherMails: Schema.Array(Schema.String)
})
export type TeamsUser = typeof TeamsUser.Type

export const hasTeams = (user: GraphUser): boolean =>
  (user.assignedPlans ?? []).some((plan) =>
    plan.servicePlanId?.toLowerCase() === teamsServicePlanId && plan.capabilityStatus?.toLowerCase() === "enabled"
  )

/** A Teams user, or none when the account is disabled, unlicensed, or lacks the fields the connector needs. */
export const toTeamsUser = (user: GraphUser): Option.Option<TeamsUser> =>
  user.id === undefined || user.accountEnabled === false || !hasTeams(user)
    ? Option.none()
    : Option.some({
      id: user.id,
      displayName: user.displayName ?? "",
      userPrincipalName: user.userPrincipalName ?? "",
      mail: user.mail ?? null,
      otherMails: user.otherMails ?? []
    })

const select = "id,displayName,userPrincipalName,mail,otherMails,assignedPlans,accountEnabled"
export const teamsFilter =
  `assignedPlans/any(a:a/servicePlanId eq ${teamsServicePlanId} and a/capabilityStatus eq 'Enabled')`
/** The assignedPlans filter is an advanced query: this header (on every page) plus `$count=true`. */
const advancedQueryHeaders = { ConsistencyLevel: "eventual" }

export const teamsUsersPath = `/v1.0/users?$select=${encodeURIComponent(select)}&$top=999&$count=true&$filter=${
  encodeURIComponent(teamsFilter)
}`

export class TeamsUsers extends Context.Service<TeamsUsers, {
  listTeamsUsers(credential: CredentialRef): Effect.Effect<ReadonlyArray<TeamsUser>, GraphError | AuthError>
  /** One user by id (after a user change notification); none when deleted, disabled or without Teams. */
  getUser(id: string, credential: CredentialRef): Effect.Effect<Option.Option<TeamsUser>, GraphError | AuthError>
}>()("teams-presence-connector/graph/users/TeamsUsers") {
  static readonly layer = Layer.effect(
    TeamsUsers,
    Effect.gen(function*() {
      const graph = yield* GraphClient

      const listTeamsUsers = Effect.fn("TeamsUsers.listTeamsUsers")(function*(credential: CredentialRef) {
        const users: Array<TeamsUser> = []
        let next: string | undefined = teamsUsersPath
        let pages = 0
        while (next !== undefined) {
          const page: UsersPage = yield* graph.execute({
            method: "GET",
            url: next,
            credential,
            headers: advancedQueryHeaders,
            response: UsersPage
          })
          pages++
          for (const user of page.value) {
            const teamsUser = toTeamsUser(user)
            if (Option.isSome(teamsUser)) users.push(teamsUser.value)
          }
          next = page["@odata.nextLink"]
        }
        yield* Effect.logInfo("Teams users listed", { users: users.length, pages })
        return users as ReadonlyArray<TeamsUser>
      })

      const getUser = Effect.fn("TeamsUsers.getUser")(function*(id: string, credential: CredentialRef) {
        const user = yield* graph.execute({
          method: "GET",
          url: `/v1.0/users/${encodeURIComponent(id)}?$select=${encodeURIComponent(select)}`,
          credential,
          response: GraphUser
        }).pipe(
          Effect.map(Option.some),
          Effect.catchIf(
            (error): error is GraphError => error._tag === "GraphError" && error.status === 404,
            () => Effect.succeed(Option.none<GraphUser>())
          )
        )
        return Option.flatMap(user, toTeamsUser)
      })

      return TeamsUsers.of({ listTeamsUsers, getUser })
    })
  )
}
