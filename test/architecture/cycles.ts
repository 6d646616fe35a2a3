/** Import cycles in a graph of modules: each strongly connected part (Tarjan) shown as one cycle through it. */

export type ImportGraph = ReadonlyMap<string, ReadonlyArray<string>>

/** Every cycle, as the files along it with the first repeated at the end (`a → b → a`); a self-import counts. */
export const importCycles = (graph: ImportGraph): ReadonlyArray<ReadonlyArray<string>> =>
  stronglyConnected(graph)
    .filter((part) => part.length > 1 || (graph.get(part[0]!) ?? []).includes(part[0]!))
    .map((part) => cycleThrough(graph, new Set(part), [...part].sort()[0]!))

const stronglyConnected = (graph: ImportGraph): Array<Array<string>> => {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const parts: Array<Array<string>> = []
  const visit = (node: string): void => {
    index.set(node, index.size)
    low.set(node, index.get(node)!)
    stack.push(node)
    onStack.add(node)
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue
      if (!index.has(next)) {
        visit(next)
        low.set(node, Math.min(low.get(node)!, low.get(next)!))
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!))
      }
    }
    if (low.get(node) !== index.get(node)) return
    const part: Array<string> = []
    for (let member = stack.pop()!; ; member = stack.pop()!) {
      onStack.delete(member)
      part.push(member)
      if (member === node) break
    }
    parts.push(part)
  }
  for (const node of graph.keys()) if (!index.has(node)) visit(node)
  return parts
}

/** A shortest way from `start` back to itself inside one strongly connected part (breadth first). */
const cycleThrough = (graph: ImportGraph, part: ReadonlySet<string>, start: string): ReadonlyArray<string> => {
  const cameFrom = new Map<string, string>()
  const queue = [start]
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i]!
    for (const next of graph.get(node) ?? []) {
      if (!part.has(next)) continue
      if (next === start) return [...pathTo(cameFrom, node, start), start]
      if (cameFrom.has(next)) continue
      cameFrom.set(next, node)
      queue.push(next)
    }
  }
  return [start]
}

const pathTo = (cameFrom: ReadonlyMap<string, string>, node: string, start: string): Array<string> =>
  node === start ? [start] : [...pathTo(cameFrom, cameFrom.get(node)!, start), node]
