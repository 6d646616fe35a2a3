/**
 * Unpacks a tar archive held in memory: regular files, directories and symbolic links, with ustar prefixes, pax and
 * GNU long names. Enough for the archives the npm browser ships (test/support/browser.ts); anything else is refused.
 */
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { dirname, join, normalize, sep } from "node:path"

const block = 512

const text = (bytes: Buffer): string => {
  const end = bytes.indexOf(0)
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString("utf8")
}

const octal = (bytes: Buffer): number => Number.parseInt(text(bytes).trim() || "0", 8)

/** The `path` of a pax extended header ("<length> path=<value>\n" records), if it has one. */
const paxPath = (body: Buffer): string | undefined => {
  for (const record of body.toString("utf8").split("\n")) {
    const match = /^\d+ path=(.*)$/.exec(record)
    if (match !== null) return match[1]
  }
  return undefined
}

/** Writes the archive's entries under `target`; returns the paths written, relative to it. */
export const extractTar = (archive: Buffer, target: string): ReadonlyArray<string> => {
  const written: Array<string> = []
  let offset = 0
  let longName: string | undefined
  while (offset + block <= archive.length) {
    const header = archive.subarray(offset, offset + block)
    if (header.every((byte) => byte === 0)) break
    const size = octal(header.subarray(124, 136))
    const type = String.fromCharCode(header[156] ?? 0)
    const body = archive.subarray(offset + block, offset + block + size)
    offset += block + Math.ceil(size / block) * block
    if (type === "x" || type === "L") {
      longName = type === "x" ? paxPath(body) : text(body)
      continue
    }
    if (type === "g") continue
    const prefix = text(header.subarray(345, 500))
    const name = longName ?? (prefix === "" ? text(header.subarray(0, 100)) : `${prefix}/${text(header.subarray(0, 100))}`)
    longName = undefined
    const relative = normalize(name).replace(/\/+$/, "")
    if (relative === "." || relative === "") continue
    if (relative.startsWith(`..${sep}`) || relative === ".." || relative.startsWith(sep)) {
      throw new Error(`tar: refusing the entry ${name}, which points outside the target directory`)
    }
    const path = join(target, relative)
    if (type === "5") {
      mkdirSync(path, { recursive: true })
    } else if (type === "0" || type === "\0") {
      mkdirSync(dirname(path), { recursive: true })
      writeFileSync(path, body, { mode: octal(header.subarray(100, 108)) & 0o777 })
    } else if (type === "2") {
      mkdirSync(dirname(path), { recursive: true })
      symlinkSync(text(header.subarray(157, 257)), path)
    } else {
      throw new Error(`tar: the entry ${name} has type "${type}", which this reader does not unpack`)
    }
    written.push(relative)
  }
  return written
}
