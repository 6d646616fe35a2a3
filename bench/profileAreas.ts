/**
 * `node bench/profileAreas.ts <file.cpuprofile> [fromSeconds] [toSeconds]`: where a runner's or connector's busy time
 * went within a window (seconds from the profile's start), by area rather than by function (bench/profileTop.ts):
 * each sample goes to the innermost frame that names an area — a directory of src/, the PostgreSQL client, Node's HTTP,
 * Node's sockets and streams, effect's cluster or HTTP modules — so that effect's runtime frames above a project
 * function count for that function's area; samples with no such frame are effect's runtime or Node's own. The bench's
 * probe (bench/probe.ts wraps `Socket.emit`) is passed over. With BENCH_PROFILE=<dir> `npm run bench -- cluster-3`.
 */
import { readFileSync } from "node:fs"

interface CallFrame {
  readonly functionName: string
  readonly url: string
}
interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const [file, fromArg, toArg] = process.argv.slice(2)
if (file === undefined) {
  process.stderr.write("usage: node bench/profileAreas.ts <file.cpuprofile> [fromSeconds] [toSeconds]\n")
  process.exit(2)
}
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
const from = Number(fromArg ?? 0)
const to = toArg === undefined ? Infinity : Number(toArg)
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const parentOf = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id)

/** The area a frame names, if any. */
const areaOf = ({ url }: CallFrame): string | undefined => {
  if (url.includes("@effect/sql-pg")) return "PostgreSQL client (@effect/sql-pg)"
  if (url.includes("effect/dist/unstable/sql")) return "effect/sql"
  if (/node:_http_|node:http/.test(url)) return "Node HTTP"
  if (url.includes("/src/")) return "src/" + url.replace(/.*\/src\//, "").replace(/\/[^/]*$/, "")
  if (url.includes("effect/dist/unstable/cluster")) return "effect/cluster"
  if (url.includes("effect/dist/unstable/http")) return "effect/http"
  if (/node:net|node:internal\/stream|node:stream/.test(url)) return "Node sockets and streams"
  return undefined
}

const areas = new Map<number, string>()
const sampleArea = (id: number): string => {
  const known = areas.get(id)
  if (known !== undefined) return known
  const leaf = byId.get(id)!.callFrame
  let area = leaf.functionName === "(garbage collector)" ? "garbage collector" : leaf.functionName === "(idle)" ? "(idle)" : undefined
  for (let at: number | undefined = id; area === undefined && at !== undefined; at = parentOf.get(at)) {
    const frame = byId.get(at)!.callFrame
    if (!frame.url.includes("bench/probe.ts")) area = areaOf(frame)
  }
  const found = area ?? (leaf.url.includes("effect/dist") ? "effect's runtime" : `other: ${leaf.functionName || "(anonymous)"}`)
  areas.set(id, found)
  return found
}

const totals = new Map<string, number>()
let time = profile.startTime
for (let i = 0; i < profile.samples.length; i++) {
  time += profile.timeDeltas[i]!
  const seconds = (time - profile.startTime) / 1e6
  if (seconds < from || seconds > to) continue
  const area = sampleArea(profile.samples[i]!)
  totals.set(area, (totals.get(area) ?? 0) + (profile.timeDeltas[i + 1] ?? 0) / 1000)
}
const busy = [...totals].reduce((sum, [area, ms]) => (area === "(idle)" ? sum : sum + ms), 0)
process.stdout.write(`busy ${busy.toFixed(0)} ms, idle ${(totals.get("(idle)") ?? 0).toFixed(0)} ms\n`)
for (const [area, ms] of [...totals].filter(([area]) => area !== "(idle)").sort((a, b) => b[1] - a[1]).slice(0, 25)) {
  process.stdout.write(`${ms.toFixed(0).padStart(7)} ms ${((100 * ms) / busy).toFixed(1).padStart(5)} %  ${area}\n`)
}
