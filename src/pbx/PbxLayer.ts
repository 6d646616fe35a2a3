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

/** The services, without the route. */
export const PbxServices = Layer.mergeAll(PresenceWriter.layer, Licences.layer).pipe(
  Layer.provideMerge(PbxDirectory.layer),
  Layer.provideMerge(PbxConnections.layer)
)

/** The route and the services. */
export const PbxLayer = PbxAppService.routes.pipe(Layer.provideMerge(PbxServices))
