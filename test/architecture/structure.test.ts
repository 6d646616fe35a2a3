/**
 * The shape the project holds itself to (issue 12): no import cycle in src/ (type-only imports included), no src/ file
 * over 300 lines, no function, arrow or service closure over 80 lines. Read through the TypeScript compiler's own API.
 */
import { assert, describe, it } from "@effect/vitest"
import { importCycles } from "./cycles.ts"
import { readSourceTree } from "./sourceTree.ts"

const tree = readSourceTree()

describe("src/ imports", () => {
  it("the reading sees the whole tree and every relative import, type-only ones included", () => {
    assert.isAbove(tree.length, 150, "src/ files read by the compiler")
    for (const module of tree) {
      assert.deepStrictEqual(module.unresolved, [], `${module.file}: imports that name no file`)
      // A plain scan of `from "…"` and `import("…")` as a cross-check of what the compiler reported.
      const scanned = [...module.text.matchAll(/(?:\bfrom|\bimport\s*\()\s*"(\.[^"]+)"/g)].map((match) => match[1]!)
      for (const specifier of scanned) assert.include(module.specifiers, specifier, `${module.file} imports ${specifier}`)
    }
    const typeOnly = tree.filter((module) => /^import type .* from "\.[^"]*"/m.test(module.text))
    assert.isNotEmpty(typeOnly, "some src/ file has a type-only import")
  })

  it("has no import cycle", () => {
    const cycles = importCycles(new Map(tree.map((module) => [module.file, module.imports])))
    assert.deepStrictEqual(cycles.map((cycle) => cycle.join(" → ")), [])
  })

  it("a cycle, of any length or a self-import, is found", () => {
    const graph = new Map([
      ["a", ["b"]],
      ["b", ["c", "d"]],
      ["c", ["a"]],
      ["d", []],
      ["e", ["e"]],
      ["f", ["a"]]
    ])
    assert.deepStrictEqual(importCycles(graph), [["a", "b", "c", "a"], ["e", "e"]])
  })
})
