/**
 * The PBX simulator's side of a PbxTableUsers replication, as the SDK describes the publisher: ReplicateStart
 * names the columns the consumer wants and, in `pseudo`, the object types (plain users only when absent); the rows
 * then carry only those columns, and live Add / Update / Del follow for the objects of those types.
 * A fault stands for an older PBX that ignores `pseudo` and sends every object of the table.
 */
import { objectType, type SimUser, type SystemModel } from "./SimulatorModel.ts"

export interface Replication {
  /** The ReplicateStart's src, echoed in the pushes. */
  readonly src: string | undefined
  /** The objects of the initial load, by guid, in the order they are sent … */
  readonly pending: ReadonlyArray<string>
  /** … and how many of them have been sent. */
  sent: number
  /** The requested columns; undefined = all. */
  readonly columns: ReadonlySet<string> | undefined
  /** The requested object types ("" = plain user). */
  readonly types: ReadonlySet<string>
  /** What the consumer asked for, as sent (for tests and the control API). */
  readonly request: { readonly add: unknown; readonly del: unknown; readonly pseudo: unknown; readonly columns: ReadonlyArray<string> }
}

const stringList = (value: unknown): Array<string> | undefined =>
  Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : undefined

/** The replication a ReplicateStart starts. `allObjects`: ignore the requested types (the older-PBX fault). */
export const startReplication = (
  message: Record<string, unknown>,
  src: string | undefined,
  model: SystemModel,
  allObjects: boolean
): Replication => {
  const requested = message["columns"]
  const columns = requested !== null && typeof requested === "object" && !Array.isArray(requested)
    ? new Set(Object.keys(requested))
    : undefined
  const types = new Set(stringList(message["pseudo"]) ?? [""])
  const wanted = (user: SimUser) => allObjects || types.has(objectType(user))
  return {
    src,
    pending: [...model.users.values()].filter(({ user }) => wanted(user)).map(({ user }) => user.guid),
    sent: 0,
    columns,
    types,
    request: { add: message["add"], del: message["del"], pseudo: message["pseudo"], columns: [...(columns ?? [])] }
  }
}

const project = (row: Record<string, unknown>, columns: ReadonlySet<string> | undefined) => {
  if (columns === undefined) return row
  const projected: Record<string, unknown> = {}
  for (const column in row) if (column === "guid" || columns.has(column)) projected[column] = row[column]
  return projected
}

/** The next row of the initial load (one per ReplicateNext); undefined when it is complete. */
export const nextRow = (replication: Replication, model: SystemModel): Record<string, unknown> | undefined => {
  while (replication.sent < replication.pending.length) {
    const row = model.rowOf(replication.pending[replication.sent++]!)
    if (row !== undefined) return project(row, replication.columns)
  }
  return undefined
}

/** The push for a change of `user` (its state before a deletion), or undefined when the replication does not follow it. */
export const pushFor = (
  replication: Replication,
  kind: "ReplicateAdd" | "ReplicateUpdate" | "ReplicateDel",
  user: SimUser,
  model: SystemModel,
  allObjects: boolean
): Record<string, unknown> | undefined => {
  if (!allObjects && !replication.types.has(objectType(user))) return undefined
  const columns = kind === "ReplicateDel" ? { guid: user.guid } : model.rowOf(user.guid)
  if (columns === undefined) return undefined
  return {
    api: "PbxTableUsers",
    mt: kind,
    ...(replication.src !== undefined ? { src: replication.src } : {}),
    columns: kind === "ReplicateDel" ? columns : project(columns, replication.columns)
  }
}
