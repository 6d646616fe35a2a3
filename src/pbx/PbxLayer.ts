/**
 * The PBX side assembled: the app service route plus the connection registry, user directory, licences and presence
 * writer. Needs `PbxSettings` and the HTTP server's `HttpRouter`.
 */
import { Layer } from "effect"
import { Licences } from "./directory/Licences.ts"
import { PbxAppService } from "./socket/PbxAppService.ts"
import { PbxConnections } from "./socket/PbxConnections.ts"
import { PresenceWriter } from "./writer/PresenceWriter.ts"
import { PbxDirectory } from "./directory/PbxDirectory.ts"

/**
 * The services, without the route, with the directory `directory` builds (default: replicated on these connections;
 * a cluster's tenant reads it from the state store instead, src/cluster/StoreDirectory.ts).
 */
export const pbxServices = <E, R>(directory: Layer.Layer<PbxDirectory, E, R>) =>
  Layer.mergeAll(PresenceWriter.layer, Licences.layer).pipe(
    Layer.provideMerge(directory),
    Layer.provideMerge(PbxConnections.layer)
  )

/** The services, without the route. */
export const PbxServices = pbxServices(PbxDirectory.layer)

/** The route and the services. */
export const PbxLayer = PbxAppService.routes.pipe(Layer.provideMerge(PbxServices))
