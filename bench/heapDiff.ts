/**
 * `node bench/heapDiff.ts <earlier.heapsnapshot> <later.heapsnapshot>`: what grew between two heap snapshots of the
 * connector (BENCH_SOAK_SNAPSHOTS=1 BENCH_KEEP=1 npm run bench -- soak writes two), by constructor or kind: object
 * count and self size, largest growth first. A leak shows as a kind whose count keeps rising with the run's length.
 */
import { readFileSync } from "node:fs"

interface Snapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: ReadonlyArray<string>; readonly node_types: ReadonlyArray<unknown> } }
  readonly nodes: ReadonlyArray<number>
  readonly strings: ReadonlyArray<string>
}

/** Count and self size per "type:name" (e.g. "object:Map", "closure:acceptNotifications", "string"). */
const tally = (file: string): Map<string, { count: number; size: number }> => {
  const heap = JSON.parse(readFileSync(file, "utf8")) as Snapshot
  const fields = heap.snapshot.meta.node_fields
  const types = heap.snapshot.meta.node_types[0] as ReadonlyArray<string>
  const width = fields.length
  const typeAt = fields.indexOf("type")
  const nameAt = fields.indexOf("name")
  const sizeAt = fields.indexOf("self_size")
  const out = new Map<string, { count: number; size: number }>()
  for (let i = 0; i < heap.nodes.length; i += width) {
    const type = types[heap.nodes[i + typeAt]!] ?? "?"
    const name = type === "string" || type === "concatenated string" || type === "sliced string" || type === "number"
      ? ""
      : heap.strings[heap.nodes[i + nameAt]!] ?? ""
    const key = `${type}:${name.slice(0, 60)}`
    const entry = out.get(key) ?? { count: 0, size: 0 }
    entry.count++
    entry.size += heap.nodes[i + sizeAt]!
    out.set(key, entry)
  }
  return out
}

const [earlierFile, laterFile] = process.argv.slice(2)
if (earlierFile === undefined || laterFile === undefined) {
  process.stderr.write("usage: node bench/heapDiff.ts <earlier.heapsnapshot> <later.heapsnapshot>\n")
  process.exit(2)
}
const earlier = tally(earlierFile)
const later = tally(laterFile)
const rows = [...new Set([...earlier.keys(), ...later.keys()])].map((key) => {
  const a = earlier.get(key) ?? { count: 0, size: 0 }
  const b = later.get(key) ?? { count: 0, size: 0 }
  return { key, count: b.count - a.count, kb: Math.round((b.size - a.size) / 102.4) / 10, countNow: b.count }
})
const total = (m: Map<string, { size: number }>) => [...m.values()].reduce((s, e) => s + e.size, 0) / 1e6
process.stdout.write(`self size: ${total(earlier).toFixed(1)} MB → ${total(later).toFixed(1)} MB\n`)
for (const row of rows.sort((x, y) => y.kb - x.kb).slice(0, 30)) {
  process.stdout.write(`${row.kb.toFixed(1).padStart(9)} KB  ${String(row.count).padStart(7)} objects  (now ${row.countNow})  ${row.key}\n`)
}
