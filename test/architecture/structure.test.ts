/**
 * The shape the project holds itself to (issue 12): no import cycle in src/ (type-only imports included), no src/ file
 * over 300 lines, no function, arrow or service closure over 80 lines. Read through the TypeScript compiler's own API.
 */
import { assert, describe, it } from "@effect/vitest"
import { importCycles } from "./cycles.ts"
import { readSourceTree, type SourceModule } from "./sourceTree.ts"

const tree = readSourceTree()

const maxFileLines = 300
const maxFunctionLines = 80

/**
 * The only functions allowed over the limit, by file and name; an entry that no longer names an offender fails too,
 * so each is removed once its function is split.
 */
const allowedLongFunctions: ReadonlyArray<{ readonly file: string; readonly name: string }> = []

/** Each function (declaration, expression, arrow, method, accessor) longer than `max` lines, nested ones too. */
const longFunctions = (modules: ReadonlyArray<SourceModule>, max: number) =>
  modules.flatMap((module) =>
    module.functions
      .filter((f) => f.to - f.from + 1 > max)
      .map((f) => ({ file: module.file, name: f.name, where: `${module.file}:${f.from}-${f.to} ${f.name} (${f.to - f.from + 1} lines)` }))
  )

/** An allowed function covers the unnamed functions inside it (`startRunnerFront › function`). */
const covers = (allowed: { readonly file: string; readonly name: string }, offender: { readonly file: string; readonly name: string }) =>
  allowed.file === offender.file && (offender.name === allowed.name || offender.name.startsWith(`${allowed.name} › `))

const isAllowed = (offender: { readonly file: string; readonly name: string }) => allowedLongFunctions.some((allowed) => covers(allowed, offender))

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

  it("imports src/simulators/ only from the simulators themselves, src/demo/ and the testing entry point", () => {
    const mayWireSimulators = (file: string) => file.startsWith("src/simulators/") || file.startsWith("src/demo/") || file === "src/testing.ts"
    const offenders = tree.flatMap((module) =>
      mayWireSimulators(module.file) ? [] : module.imports.filter((imported) => imported.startsWith("src/simulators/")).map((imported) => `${module.file} → ${imported}`)
    )
    assert.deepStrictEqual(offenders, [])
    // The check sees dynamic imports: the demo's own `import("../simulators/…")` are among the imports read.
    const simulate = tree.find((module) => module.file === "src/demo/SimulateCommands.ts")!
    assert.include(simulate.imports, "src/simulators/graph/Standalone.ts")
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

describe("src/ sizes", () => {
  it(`has no file over ${maxFileLines} lines`, () => {
    const offenders = tree.filter((module) => module.lines > maxFileLines).map((module) => `${module.file} (${module.lines} lines)`)
    assert.deepStrictEqual(offenders, [])
  })

  it(`has no function, arrow or service closure over ${maxFunctionLines} lines`, () => {
    const offenders = longFunctions(tree, maxFunctionLines)
    assert.deepStrictEqual(offenders.filter((offender) => !isAllowed(offender)).map((offender) => offender.where), [])
    const stale = allowedLongFunctions.filter((allowed) => !offenders.some((offender) => covers(allowed, offender)))
    assert.deepStrictEqual(stale, [], "allowed long functions that are no longer long: remove them from the list")
  })

  it("measures a function from its first line to its last, nested ones on their own", () => {
    const superviseTenants = tree.find((module) => module.file === "src/tenants/TenantSupervisor.ts")?.functions
      .find((f) => f.name === "superviseTenants")
    assert.isDefined(superviseTenants)
    const text = tree.find((module) => module.file === "src/tenants/TenantSupervisor.ts")!.text.split("\n")
    assert.match(text[superviseTenants!.from - 1]!, /export const superviseTenants = Effect\.fnUntraced\(function\*\(/)
    assert.match(text[superviseTenants!.to - 1]!, /^\}\)$/)
    // A lower limit finds this one and names it: the check can fail.
    const tight = longFunctions(tree.filter((module) => module.file === "src/tenants/TenantSupervisor.ts"), 5).map((o) => o.name)
    assert.includeMembers(tight, ["superviseTenants", "work", "attempt", "attempt › arrow", "follow"])
  })
})
