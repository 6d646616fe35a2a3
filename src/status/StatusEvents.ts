/**
 * The status page's live feed (`/api/events`, server-sent events). The first frame is the whole snapshot (`status`);
 * after that a `delta` frame carries everything but the user table, plus only the user rows that changed since what
 * this client last received (rows are rebuilt only when their inputs change, so an unchanged row is the same object)
 * and the ids of rows that went away. Nothing is queued per client: a frame is made when the connection has taken the
 * previous one, from the board as it is then, so a slow reader skips states instead of piling them up. A reader that
 * takes nothing for `stallMillis` is disconnected (its browser reconnects and gets a fresh snapshot), and at most
 * `maxStreams` feeds are open at once.
 */
import { Clock, Context, Effect, Stream } from "effect"
import type { StatusBoard, StatusSnapshot, UserRow } from "./StatusBoard.ts"

export interface StatusPageLimits {
  /** Live feeds open at once; more are answered 503. */
  readonly maxEventStreams: number
  /** A feed whose connection has taken nothing for this long is closed. */
  readonly eventStreamStallMillis: number
  /** How often the board is sampled, and after how long without a change a keep-alive comment is sent. */
  readonly sampleMillis: number
  readonly keepAliveMillis: number
}

export const defaultStatusPageLimits: StatusPageLimits = {
  maxEventStreams: 16,
  eventStreamStallMillis: 60_000,
  sampleMillis: 500,
  keepAliveMillis: 15_000
}

export const StatusPageLimits = Context.Reference<StatusPageLimits>("teams-presence-connector/status/StatusPageLimits", {
  defaultValue: () => defaultStatusPageLimits
})

const sseFrame = (event: string, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`

/** The feed of one client. */
export const statusEvents = (board: StatusBoard["Service"], limits: StatusPageLimits = defaultStatusPageLimits) => {
  let last: StatusSnapshot | undefined
  let rows: Map<string, UserRow> | undefined
  let sentAt = 0

  const frameFor = (snapshot: StatusSnapshot): string => {
    const previous = rows
    rows = new Map(snapshot.users.map((row) => [row.teamsId, row]))
    if (previous === undefined) return sseFrame("status", snapshot)
    const current = rows
    const { users: _, ...rest } = snapshot
    return sseFrame("delta", {
      ...rest,
      changedUsers: snapshot.users.filter((row) => previous.get(row.teamsId) !== row),
      removedUsers: [...previous.keys()].filter((id) => !current.has(id))
    })
  }

  const next = Effect.gen(function*() {
    const snapshot = yield* board.get
    const now = yield* Clock.currentTimeMillis
    if (snapshot !== last) {
      last = snapshot
      sentAt = now
      return frameFor(snapshot)
    }
    if (now - sentAt < limits.keepAliveMillis) return undefined
    sentAt = now
    return ": keep-alive\n\n"
  })

  return Stream.tick(limits.sampleMillis).pipe(
    Stream.mapEffect(() => next),
    Stream.filter((frame): frame is string => frame !== undefined),
    Stream.encodeText
  )
}
