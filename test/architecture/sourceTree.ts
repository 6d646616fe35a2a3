/**
 * The project's src/ as the TypeScript compiler reads it (typescript's own API, the native compiler behind it): each
 * file's imports (type-only ones included) and each function's extent in lines, for the architecture checks.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { API } from "typescript/unstable/sync"
import { type Node, type SourceFile, SyntaxKind } from "typescript/unstable/ast"

export const repoRoot = path.resolve(import.meta.dirname, "..", "..")
const sourceRoot = path.join(repoRoot, "src")

/** A path relative to the repository, with forward slashes, as offenders are listed. */
export const relative = (file: string): string => path.relative(repoRoot, file).split(path.sep).join("/")

export interface SourceModule {
  /** Relative to the repository, e.g. `src/state/StateStore.ts`. */
  readonly file: string
  readonly lines: number
  /** The src/ files this one imports or re-exports from, type-only ones and `import("…")` types included. */
  readonly imports: ReadonlyArray<string>
  /** Every relative specifier the compiler found, as written (`./Records.ts`). */
  readonly specifiers: ReadonlyArray<string>
  /** Relative specifiers that name no file (a check on the reading itself). */
  readonly unresolved: ReadonlyArray<string>
  readonly text: string
  readonly functions: ReadonlyArray<FunctionExtent>
}

export interface FunctionExtent {
  /** The function's name, or where it stands (`superviseTenants`, `StateStore.layer → Effect.gen`). */
  readonly name: string
  /** 1-based, first and last line of the function (signature to closing brace). */
  readonly from: number
  readonly to: number
}

const functionKinds: ReadonlySet<SyntaxKind> = new Set([
  SyntaxKind.FunctionDeclaration,
  SyntaxKind.FunctionExpression,
  SyntaxKind.ArrowFunction,
  SyntaxKind.MethodDeclaration,
  SyntaxKind.Constructor,
  SyntaxKind.GetAccessor,
  SyntaxKind.SetAccessor
])

/** Counted like `wc -l`: a final line without a line break still counts. */
export const lineCount = (text: string): number => text.length === 0 ? 0 : text.split("\n").length - (text.endsWith("\n") ? 1 : 0)

/** Reads every .ts file under src/ through the project's tsconfig.json. */
export const readSourceTree = (): ReadonlyArray<SourceModule> => {
  const api = new API({ cwd: repoRoot })
  try {
    const snapshot = api.updateSnapshot({ openProjects: [path.join(repoRoot, "tsconfig.json")] })
    const program = snapshot.getProjects()[0]!.program
    return program.getSourceFileNames()
      .filter((name) => path.resolve(name).startsWith(sourceRoot + path.sep))
      .map((name) => describe(program.getSourceFile(name)!))
  } finally {
    api.close()
  }
}

const describe = (sourceFile: SourceFile): SourceModule => {
  const resolved = sourceFile.imports.map((specifier) => resolveImport(sourceFile.fileName, moduleName(specifier)))
  return {
    file: relative(sourceFile.fileName),
    lines: lineCount(sourceFile.text),
    imports: [...new Set(resolved.flatMap((r) => r.file === undefined ? [] : [r.file]))],
    specifiers: resolved.flatMap((r) => r.relative ? [r.specifier] : []),
    unresolved: resolved.flatMap((r) => r.relative && !r.exists ? [r.specifier] : []),
    text: sourceFile.text,
    functions: functionsOf(sourceFile)
  }
}

/** The specifier's string literal without its quotes. */
const moduleName = (specifier: Node): string => specifier.getText().slice(1, -1)

const resolveImport = (from: string, specifier: string) => {
  if (!specifier.startsWith(".")) return { specifier, relative: false, exists: true, file: undefined }
  const target = path.resolve(path.dirname(from), specifier)
  const found = [target, target.replace(/\.js$/, ".ts")].find((candidate) => fs.statSync(candidate, { throwIfNoEntry: false })?.isFile())
  // Files outside src/ (package.json) are read, not part of the graph.
  const inSource = found !== undefined && found.startsWith(sourceRoot + path.sep)
  return { specifier, relative: true, exists: found !== undefined, file: inSource ? relative(found) : undefined }
}

const functionsOf = (sourceFile: SourceFile): ReadonlyArray<FunctionExtent> => {
  const found: Array<FunctionExtent> = []
  const visit = (node: Node): void => {
    if (functionKinds.has(node.kind)) {
      found.push({
        name: nameOf(node),
        from: sourceFile.getLineAndCharacterOfPosition(node.getStart(sourceFile)).line + 1,
        to: sourceFile.getLineAndCharacterOfPosition(node.end).line + 1
      })
    }
    node.forEachChild(visit)
  }
  sourceFile.forEachChild(visit)
  return found
}

/**
 * The nearest name: the function's own, or the variable, property or class member it is assigned to (through wrapping
 * calls such as `Effect.fn(…)(function*…)`); an unnamed function inside another is `outer › arrow` (or `› function`).
 */
const nameOf = (node: Node): string => {
  const steps: Array<string> = []
  let inner = false
  for (let current: Node | undefined = node; current !== undefined && current.kind !== SyntaxKind.SourceFile; current = current.parent) {
    if (steps.length === 0 && current !== node && functionKinds.has(current.kind)) inner = true
    const own = declaredName(current)
    if (own === undefined) continue
    steps.unshift(own)
    if (current.kind !== SyntaxKind.MethodDeclaration && current.kind !== SyntaxKind.PropertyAssignment) break
  }
  const name = steps.length === 0 ? "(anonymous)" : steps.join(".")
  return inner ? `${name} › ${node.kind === SyntaxKind.ArrowFunction ? "arrow" : "function"}` : name
}

const declaredName = (node: Node): string | undefined => {
  const name = (node as { readonly name?: Node }).name
  switch (node.kind) {
    case SyntaxKind.FunctionDeclaration:
    case SyntaxKind.FunctionExpression:
    case SyntaxKind.VariableDeclaration:
    case SyntaxKind.PropertyAssignment:
    case SyntaxKind.PropertyDeclaration:
    case SyntaxKind.MethodDeclaration:
    case SyntaxKind.ClassDeclaration:
      return name === undefined ? undefined : name.getText()
    default:
      return undefined
  }
}
