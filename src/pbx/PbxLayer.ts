/**
 * The PBX side assembled: the app service route plus the connection registry, user directory, licences and presence
 * writer. Needs `PbxSettings` and the HTTP server's `HttpRouter`.
 */
import { Layer } from "effect"
import { Licences } from "./Licences.ts"
import { PbxAppService } from "./PbxAppService.ts"
import { PbxConnections } from "./PbxConnections.ts"
import { PresenceWriter } from "./PresenceWriter.ts"
import { PbxDirectory } from "./UserDirectory.ts"

/** The services, without the route. */
export const PbxServices = Layer.mergeAll(PresenceWriter.layer, Licences.layer).pipe(
  Layer.provideMerge(PbxDirectory.layer),
  Layer.provideMerge(PbxConnections.layer)
)

/** The route and the services. */
export const PbxLayer = PbxAppService.routes.pipe(Layer.provideMerge(PbxServices))
