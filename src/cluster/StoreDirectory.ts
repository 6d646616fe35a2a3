/**
 * The master PBX's user directory through the state store (docs/scaling.md, "PBX sockets on any runner"). The runner
 * holding the master's socket replicates the user table as one process does (PbxDirectory.ts) and publishes it with
 * the master's login facts (`publishDirectory`); the tenant's owner reads it from the store (`storeDirectory`), so its
 * planner does not depend on where the master's socket is. Each publish notifies the tenant; the reader also looks
 * again every 30 s.
 */
import { Clock, Context, Deferred, Effect, Layer, Option, PubSub, Queue, Schedule, Stream, SubscriptionRef } from "effect"
import { clip } from "../domain/LogText.ts"
import { type DirectoryChange, PbxDirectory, type PbxUser } from "../pbx/directory/PbxDirectory.ts"
import { RemoteMaster } from "../pbx/directory/Licences.ts"
import { PbxSettings } from "../pbx/PbxSettings.ts"
import { PbxConnections } from "../pbx/socket/PbxConnections.ts"
import { type PbxDirectoryRecord, StateStore, type StoredMasterInfo, type StoredPbxUser, type TenantId } from "../state/StateStore.ts"
import { describeCause } from "../state/StateStoreError.ts"

/** Changes within this time are published together (a burst of live rows is one write). */
const publishDebounce = "300 millis"
const readAgain = "30 seconds"

const toStored = (user: PbxUser): StoredPbxUser => ({
  guid: user.guid,
  h323: user.h323,
  cn: user.cn,
  dn: user.dn,
  e164: user.e164,
  emails: user.emails,
  ...(user.h323Email !== undefined ? { h323Email: user.h323Email } : {}),
  loc: user.loc,
  node: user.node,
  apps: user.apps,
  hide: user.hide,
  ...(user.groups !== undefined ? { groups: user.groups } : {})
})

const sameUser = (a: PbxUser, b: PbxUser): boolean => JSON.stringify(toStored(a)) === JSON.stringify(toStored(b))

/**
 * The socket holder's side: while the master is logged in on this process's `PbxConnections`, every change of the
 * replicated directory or of the master's state is published (debounced). Nothing is published while the master is
 * not here, so a runner whose master socket just closed never overwrites what the master's new runner published.
 */
export const publishDirectory = (tenant: TenantId, runner: string) =>
  Effect.gen(function*() {
    const store = yield* StateStore
    const directory = yield* PbxDirectory
    const connections = yield* PbxConnections
    const settings = yield* PbxSettings
    const wake = yield* Queue.sliding<void>(1)
    let loaded = false
    yield* directory.ready.pipe(Effect.andThen(Effect.sync(() => { loaded = true })), Effect.andThen(Queue.offer(wake, undefined)), Effect.forkScoped)
    yield* directory.changes.pipe(Stream.runForEach(() => Queue.offer(wake, undefined)), Effect.forkScoped)
    yield* connections.changes.pipe(Stream.runForEach(() => Queue.offer(wake, undefined)), Effect.forkScoped)
    const publishOnce = Effect.gen(function*() {
      // The master's own connection here, not a state shown for it (a runner's tenant shows sockets held elsewhere);
      // and a table loaded here, so that a new socket's side never replaces the users another side published with none.
      if (!loaded || Option.isNone(yield* connections.master)) return
      const state = (yield* SubscriptionRef.get(connections.states)).get(settings.masterPbx)
      if (state?.loggedIn !== true) return
      const login = Option.getOrUndefined(yield* connections.masterLogin)
      const appName = login?.info?.appobj ?? login?.sip
      const master: StoredMasterInfo = {
        loggedIn: true,
        ...(appName !== undefined ? { appName } : {}),
        ...(state.lics !== undefined ? { lics: state.lics } : {}),
        ...(state.unlicensed !== undefined ? { unlicensed: state.unlicensed } : {})
      }
      const users = [...(yield* directory.snapshot).values()].map(toStored)
      const record: PbxDirectoryRecord = {
        pbx: settings.masterPbx,
        users,
        master,
        runner,
        publishedAt: yield* Clock.currentTimeMillis
      }
      yield* store.directory.publish(tenant, record).pipe(
        Effect.retry({ schedule: Schedule.exponential("200 millis"), times: 5 }),
        Effect.catch((error) => Effect.logWarning(`cluster: the user table of ${tenant} was not published: ${clip(error.message, 300)}`))
      )
    })
    yield* Effect.gen(function*() {
      while (true) {
        yield* Queue.take(wake)
        yield* Effect.sleep(publishDebounce)
        yield* Queue.clear(wake)
        yield* publishOnce
      }
    }).pipe(Effect.forkScoped)
  })

/** The layer of `publishDirectory`, over the directory replicated on this process's PBX connections. */
export const directoryPublisher = (tenant: TenantId, runner: string) => Layer.effectDiscard(publishDirectory(tenant, runner))

interface Held {
  users: ReadonlyMap<string, PbxUser>
  master: StoredMasterInfo | undefined
  loaded: boolean
  /** The stamp of the record last read (the store's, read just before it). */
  stamp: string | undefined
}

/** The edits from `before` to `after`: added, updated and removed users. */
const diff = (before: ReadonlyMap<string, PbxUser>, after: ReadonlyMap<string, PbxUser>): Array<DirectoryChange> => {
  const changes: Array<DirectoryChange> = []
  for (const [guid, user] of after) {
    const previous = before.get(guid)
    if (previous === undefined) changes.push({ _tag: "Added", user })
    else if (!sameUser(previous, user)) changes.push({ _tag: "Updated", user, previous })
  }
  for (const [guid, user] of before) if (!after.has(guid)) changes.push({ _tag: "Removed", user })
  return changes
}

/**
 * The owner's PbxDirectory: the published directory of the tenant's master, read at start, on every wake-up for the
 * tenant and every 30 s — that look first compares the record's stamp and reads the record only if it changed, since
 * reading and comparing a table of hundreds of users every 30 s per tenant cost the runners and the database more than
 * anything else a tenant does while nothing happens. The first record with users is announced as a reset and makes the
 * directory ready; later ones as the edits between the two. It also provides the master's published login facts to
 * the licences.
 */
export const storeDirectory = (tenant: TenantId) =>
  Layer.effectContext(Effect.gen(function*() {
    const store = yield* StateStore
    const settings = yield* PbxSettings
    const changes = yield* PubSub.unbounded<DirectoryChange>()
    const ready = yield* Deferred.make<void>()
    const held: Held = { users: new Map(), master: undefined, loaded: false, stamp: undefined }
    // `true`: read the record (a wake-up for the tenant); `false`: only if its stamp changed (the 30 s look).
    const wake = yield* Queue.sliding<boolean>(1)
    let notified = true

    const read = Effect.gen(function*() {
      const wanted = notified
      notified = false
      const stamp = Option.getOrUndefined(yield* store.directory.stamp(tenant, settings.masterPbx))
      if (!wanted && stamp !== undefined && stamp === held.stamp) return
      const found = yield* store.directory.load(tenant, settings.masterPbx)
      held.stamp = stamp
      if (Option.isNone(found)) return
      const record = found.value
      held.master = record.master
      if (record.users === undefined) return
      const users = new Map(record.users.map((user) => [user.guid, user as PbxUser] as const))
      if (!held.loaded) {
        held.users = users
        held.loaded = true
        yield* PubSub.publish(changes, { _tag: "Reset", users })
        yield* Deferred.succeed(ready, undefined)
        return yield* Effect.logInfo(`cluster: user table of ${tenant} read from the store, ${users.size} users (published by ${record.runner})`)
      }
      const edits = diff(held.users, users)
      held.users = users
      if (edits.length > 0) yield* PubSub.publishAll(changes, edits)
    })
    yield* Effect.gen(function*() {
      while (true) {
        yield* Queue.take(wake)
        yield* read.pipe(Effect.catch((error) => Effect.logWarning(`cluster: reading the user table of ${tenant} failed: ${describeCause(error)}`)))
      }
    }).pipe(Effect.forkScoped)
    // Subscribed before the layer is built (a publish from then on wakes it); each (re)subscription begins with a resync.
    yield* store.directory.wakeups.pipe(
      Stream.runForEach((wakeup) =>
        wakeup.kind === "resync" || wakeup.tenant === tenant
          ? Effect.andThen(Effect.sync(() => { notified = true }), Queue.offer(wake, true))
          : Effect.void
      ),
      Effect.retry(Schedule.spaced("2 seconds")),
      Effect.forkScoped({ startImmediately: true })
    )
    yield* Queue.offer(wake, false).pipe(Effect.delay(readAgain), Effect.forever, Effect.forkScoped)
    yield* Queue.offer(wake, true)

    const directory = PbxDirectory.of({
      snapshot: Effect.sync(() => held.users),
      changes: Stream.fromPubSub(changes),
      ready: Deferred.await(ready),
      get: (guid) => Effect.sync(() => Option.fromNullishOr(held.users.get(guid)))
    })
    const remote = RemoteMaster.of({ info: Effect.sync(() => Option.fromNullishOr(held.master)) })
    return Context.make(PbxDirectory, directory).pipe(Context.add(RemoteMaster, remote))
  }))

/**
 * A cluster tenant's directory: read from the store, and published to it from this process's own PBX connections
 * whenever the master is logged in here (replicated by the one-process PbxDirectory, kept private to the publisher).
 */
export const directoryViaStore = (tenant: TenantId, runner: string) =>
  Layer.merge(storeDirectory(tenant), directoryPublisher(tenant, runner).pipe(Layer.provide(PbxDirectory.layer)))
