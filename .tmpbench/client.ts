import http from "node:http"
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads"
import { webhookPost } from "/work/wt/t14s/src/simulators/graph/SimWebhookClient.ts"
import { Pool } from "undici"
// server in main thread, client in a worker; measure worker thread CPU per POST
if (isMainThread) {
  const server = http.createServer((req, res) => { req.resume(); req.on("end", () => { res.writeHead(202); res.end() }) })
  server.listen(0, "127.0.0.1", async () => {
    const port = (server.address() as any).port
    for (const kind of ["http", "undici", "http", "undici"]) {
      const w = new Worker(new URL(import.meta.url), { workerData: { port, kind } })
      const r = await new Promise((res) => w.once("message", res))
      console.log(kind, r)
    }
    process.exit(0)
  })
} else {
  const { port, kind } = workerData as { port: number; kind: string }
  const url = `http://127.0.0.1:${port}/t/x/graph/notifications`
  const body = JSON.stringify({ value: [{ x: "y".repeat(2400) }] })
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: null, pipelining: 1 })
  const post = kind === "http"
    ? () => webhookPost(url, { headers: { "content-type": "application/json" }, body, timeoutMillis: 3000 }).then((a) => a.status)
    : () => pool.request({ path: "/t/x/graph/notifications", method: "POST", headers: { "content-type": "application/json" }, body, headersTimeout: 3000, bodyTimeout: 3000 }).then(async (r) => { await r.body.text(); return r.statusCode })
  const run = async (n: number) => { for (let i = 0; i < n; i += 4) await Promise.all([post(), post(), post(), post()]) }
  await run(1000)
  const c0 = process.threadCpuUsage()
  await run(4000)
  const c = process.threadCpuUsage(c0)
  parentPort!.postMessage(((c.user + c.system) / 4000).toFixed(1) + " µs client CPU per POST")
}
