/**
 * Where a tenant's PBX sockets are in the cluster, from the runners' rows (RunnerRegistry.ts) and this runner's own PBX
 * sides: the PBXs the owner may key a user's command to (DesiredPresence.ts `pbxOf`), and the PBX states shown on
 * the tenant's status page (its master light) when the sockets are on other runners.
 */
import type { PbxState } from "../pbx/socket/PbxConnections.ts"
import type { TenantId } from "../state/StateStore.ts"
import type { ClusterRunnerView, ClusterView } from "../status/StatusBoard.ts"

type SocketRow = ClusterRunnerView["pbxSockets"][number]

/** This runner's sockets, as its row lists them. */
export const socketRows = (states: ReadonlyMap<TenantId, ReadonlyMap<string, PbxState>>): Array<SocketRow> => {
  const rows: Array<SocketRow> = []
  for (const [tenant, pbxs] of states) {
    for (const state of pbxs.values()) {
      if (state.connected) rows.push({ tenant, pbx: state.pbx, master: state.isMaster, loggedIn: state.loggedIn, since: state.connectedAt })
    }
  }
  return rows
}

/** The PBXs of `tenant` logged in on a live runner of `view` or here (`own`). */
export const connectedPbxs = (tenant: TenantId, view: ClusterView | undefined, own: ReadonlyMap<string, PbxState> | undefined): ReadonlySet<string> => {
  const pbxs = new Set<string>()
  for (const state of own?.values() ?? []) if (state.loggedIn) pbxs.add(state.pbx)
  for (const runner of view?.runners ?? []) {
    if (!runner.alive) continue
    for (const socket of runner.pbxSockets) if (socket.tenant === tenant && socket.loggedIn) pbxs.add(socket.pbx)
  }
  return pbxs
}

/**
 * The tenant's PBXs as its status page shows them: the full state of those connected here, a reduced one (connected,
 * logged in, since) of those on other live runners.
 */
export const clusterPbxStates = (
  tenant: TenantId,
  view: ClusterView | undefined,
  own: ReadonlyMap<string, PbxState> | undefined
): ReadonlyMap<string, PbxState> => {
  const states = new Map<string, PbxState>()
  for (const runner of view?.runners ?? []) {
    if (!runner.alive || runner.id === view?.runner) continue
    for (const socket of runner.pbxSockets) {
      if (socket.tenant !== tenant || states.get(socket.pbx)?.loggedIn === true) continue
      states.set(socket.pbx, {
        pbx: socket.pbx,
        isMaster: socket.master,
        connected: true,
        loggedIn: socket.loggedIn,
        apis: [],
        missingApis: [],
        ...(socket.since !== undefined ? { connectedAt: socket.since } : {})
      })
    }
  }
  for (const [pbx, state] of own ?? []) if (state.connected || !states.has(pbx)) states.set(pbx, state)
  return states
}
