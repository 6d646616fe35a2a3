/**
 * A small TCP front for a cluster on one machine (the cluster demo, the cluster tests): it stands where a load balancer
 * would, in front of the runners' public ports. Each new connection goes to the next ready runner in turn — HTTP
 * requests and PBX websockets alike, since it forwards bytes, not requests — with readiness taken from each runner's
 * `/readyz` every `probeMillis` (a runner counts as ready only after a 200); a runner that refuses the connection is
 * skipped. It is not meant for production (use
 * the platform's load balancer with `/readyz` as its health check, docs/scaling.md).
 */
import { connect, createServer, type Socket } from "node:net"
import { Effect, type Scope } from "effect"

export interface FrontOptions {
  /** Where the front listens (default 127.0.0.1, any free port). */
  readonly host?: string | undefined
  readonly port?: number | undefined
  /** The runners' public ports on `targetHost`, read at every connection (runners come and go). */
  readonly targets: () => ReadonlyArray<number>
  readonly targetHost?: string | undefined
  readonly probeMillis?: number | undefined
}

export interface Front {
  readonly port: number
  /** The targets `/readyz` last answered 200 for. */
  readonly ready: () => ReadonlyArray<number>
}

export const startFront = (options: FrontOptions): Effect.Effect<Front, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<Front & { readonly close: () => void }>((resume) => {
      const targetHost = options.targetHost ?? "127.0.0.1"
      let next = 0
      // A runner takes new connections only once its /readyz has answered 200 (a runner just started has not read
      // its tenants yet); while none is ready, every runner is tried.
      const ready = new Set<number>()
      const probeAll = () => {
        for (const port of options.targets()) {
          fetch(`http://${targetHost}:${port}/readyz`, { signal: AbortSignal.timeout(1000) }).then(
            (r) => (r.status === 200 ? ready.add(port) : ready.delete(port)),
            () => ready.delete(port)
          )
        }
      }
      probeAll()
      const probe = setInterval(probeAll, options.probeMillis ?? 500)
      const sockets = new Set<Socket>()
      const server = createServer((inbound) => {
        sockets.add(inbound)
        inbound.on("close", () => sockets.delete(inbound))
        inbound.on("error", () => inbound.destroy())
        inbound.pause()
        const readyNow = options.targets().filter((port) => ready.has(port))
        const ports = readyNow.length > 0 ? readyNow : options.targets()
        const attempt = (tries: number) => {
          if (tries >= ports.length) return inbound.destroy()
          const port = ports[next++ % ports.length]!
          const outbound = connect(port, targetHost)
          outbound.once("error", () => attempt(tries + 1))
          outbound.once("connect", () => {
            sockets.add(outbound)
            outbound.removeAllListeners("error")
            outbound.on("error", () => inbound.destroy())
            outbound.on("close", () => {
              sockets.delete(outbound)
              inbound.destroy()
            })
            inbound.on("close", () => outbound.destroy())
            inbound.pipe(outbound).pipe(inbound)
            inbound.resume()
          })
        }
        attempt(0)
      })
      server.once("error", (error) => {
        clearInterval(probe)
        resume(Effect.die(error))
      })
      server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
        const address = server.address()
        resume(Effect.succeed({
          port: typeof address === "object" && address !== null ? address.port : 0,
          ready: () => options.targets().filter((port) => ready.has(port)),
          close: () => {
            clearInterval(probe)
            for (const s of sockets) s.destroy()
            server.close()
          }
        }))
      })
    }),
    (front) => Effect.sync(front.close)
  ).pipe(Effect.map(({ port, ready }): Front => ({ port, ready })))
