/**
 * `node bench/profileTop.ts <file.cpuprofile> [fromSeconds] [toSeconds] [rows]`: where a V8 CPU profile of the connector
 * (BENCH_PROFILE=1 BENCH_KEEP=1) spent its time within a window (seconds from the profile's start; the last N seconds
 * with negative figures): self time per function and file, largest first, and the share of idle time.
 */
import { readFileSync } from "node:fs"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly endTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const [file, fromArg, toArg, rowsArg] = process.argv.slice(2)
if (file === undefined) {
  process.stderr.write("usage: node bench/profileTop.ts <file.cpuprofile> [fromSeconds] [toSeconds] [rows]\n")
  process.exit(2)
}
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
const totalSeconds = (profile.endTime - profile.startTime) / 1e6
const from = fromArg === undefined ? 0 : Number(fromArg) < 0 ? totalSeconds + Number(fromArg) : Number(fromArg)
const to = toArg === undefined || toArg === "" ? totalSeconds : Number(toArg) < 0 ? totalSeconds + Number(toArg) : Number(toArg)
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const self = new Map<string, number>()
let at = 0
let windowMicros = 0
for (let i = 0; i < profile.samples.length; i++) {
  at += profile.timeDeltas[i]!
  const seconds = at / 1e6
  if (seconds < from || seconds > to) continue
  const delta = profile.timeDeltas[i + 1] ?? 0
  const frame = byId.get(profile.samples[i]!)!.callFrame
  const where = frame.url === "" ? "" : ` ${frame.url.replace(/^.*\/(src|node_modules)\//, "$1/")}:${frame.lineNumber + 1}`
  const key = `${frame.functionName || "(anonymous)"}${where}`
  self.set(key, (self.get(key) ?? 0) + delta)
  windowMicros += delta
}
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(rowsArg ?? 25))
process.stdout.write(`window ${from.toFixed(1)}–${to.toFixed(1)} s of ${totalSeconds.toFixed(1)} s: ${(windowMicros / 1000).toFixed(0)} ms sampled\n`)
for (const [key, micros] of rows) {
  process.stdout.write(`${(micros / 1000).toFixed(1).padStart(9)} ms ${((micros / windowMicros) * 100).toFixed(1).padStart(5)} %  ${key}\n`)
}
