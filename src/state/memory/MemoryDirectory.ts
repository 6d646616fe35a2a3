/**
 * The published PBX directories of the file store, in memory: with files there is one process, which holds every PBX
 * socket and owns every tenant, so a directory never needs to outlive it.
 */
import { Effect, Option, PubSub, Stream } from "effect"
import type { PbxDirectoryRecord, TenantId } from "../Records.ts"
import type { DirectoryWakeup, StateStoreShape } from "../StateStoreShape.ts"

export const makeMemoryDirectory = Effect.fnUntraced(function*() {
  const records = new Map<string, PbxDirectoryRecord>()
  // Every publish gets the next number: the record's stamp.
  const stamps = new Map<string, number>()
  let published = 0
  const wakeups = yield* PubSub.unbounded<DirectoryWakeup>()
  const key = (tenant: TenantId, pbx: string) => `${tenant}\u0000${pbx}`
  const directory: StateStoreShape["directory"] = {
    publish: Effect.fn("StateStore.directory.publish")(function*(tenant: TenantId, record: PbxDirectoryRecord) {
      records.set(key(tenant, record.pbx), record)
      stamps.set(key(tenant, record.pbx), ++published)
      yield* PubSub.publish(wakeups, { kind: "changed", tenant })
    }),
    load: Effect.fn("StateStore.directory.load")(function*(tenant: TenantId, pbx: string) {
      return Option.fromNullishOr(records.get(key(tenant, pbx)))
    }),
    stamp: Effect.fn("StateStore.directory.stamp")(function*(tenant: TenantId, pbx: string) {
      return Option.map(Option.fromNullishOr(stamps.get(key(tenant, pbx))), String)
    }),
    // A `resync` first, as the database store sends after each (re)LISTEN.
    wakeups: Stream.unwrap(
      PubSub.subscribe(wakeups).pipe(
        Effect.map((subscription) => Stream.concat(Stream.succeed<DirectoryWakeup>({ kind: "resync" }), Stream.fromSubscription(subscription)))
      )
    )
  }
  const forget = (tenant: TenantId) =>
    Effect.sync(() => {
      for (const k of [...records.keys()]) {
        if (k.startsWith(`${tenant}\u0000`)) {
          records.delete(k)
          stamps.delete(k)
        }
      }
    })
  return { directory, forget }
})
