/**
 * One pass of per-user App licence checks (licensing `appLicence`): PbxAdminApi `CheckAppLic {h323, lic}` →
 * `CheckAppLicResult {ok}` for each user, sent on the master's connection (docs/protocol-notes.md, "licences").
 * At most `concurrency` requests are in flight; each is correlated by its own `src` and fails after the connection's
 * request timeout. An answer is a verdict for this pass only; a user the PBX did not answer is `Unknown`, never
 * `Unlicensed`.
 */
import { Effect, Schema } from "effect"
import type { PbxConnection } from "../socket/PbxConnection.ts"
import { CheckAppLicResult } from "../socket/PbxMessages.ts"
import type { PbxUser } from "./PbxDirectory.ts"

export type Verdict =
  | { readonly _tag: "Licensed" }
  | { readonly _tag: "Unlicensed"; readonly reason: string }
  /** Not known: nothing may be concluded from it (the user keeps what was decided before). */
  | { readonly _tag: "Unknown"; readonly reason: string }

export const licensed: Verdict = { _tag: "Licensed" }
export const unlicensed = (reason: string): Verdict => ({ _tag: "Unlicensed", reason })
export const unknown = (reason: string): Verdict => ({ _tag: "Unknown", reason })

const decodeResult = Schema.decodeUnknownResult(CheckAppLicResult)

/** The CheckAppLic request for a user: by user name, else by guid (the PBX accepts guid, cn or h323). */
export const checkAppLicRequest = (user: PbxUser, licence: string) => ({
  api: "PbxAdminApi",
  mt: "CheckAppLic",
  ...(user.h323 !== "" ? { h323: user.h323 } : { guid: user.guid }),
  lic: licence
})

export const checkAppLicences = (
  connection: PbxConnection,
  users: ReadonlyArray<PbxUser>,
  licence: string,
  concurrency: number
): Effect.Effect<ReadonlyMap<string, Verdict>> =>
  Effect.forEach(users, (user) =>
    connection.request(checkAppLicRequest(user, licence)).pipe(
      Effect.map((answer): Verdict => {
        const result = decodeResult(answer)
        if (result._tag === "Failure") return unknown(`PBX ${connection.pbx} sent a malformed CheckAppLicResult`)
        return result.success.ok === true
          ? licensed
          : unlicensed(`PBX ${connection.pbx} reports no ${licence} licence for this user (assign it on the user object or its template)`)
      }),
      Effect.catchTag("PbxRequestError", (error) => Effect.succeed(unknown(`licence not confirmed: ${error.message}`))),
      Effect.map((verdict) => [user.guid, verdict] as const)
    ), { concurrency: Math.max(1, concurrency) }).pipe(Effect.map((entries) => new Map(entries)))
