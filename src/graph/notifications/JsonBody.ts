/**
 * A webhook body parsed as JSON without a string of the whole body. A POST of 100 rich items is ≈ 300 kB: one string
 * of it is larger than V8's regular objects (128 kB), so every POST took a large-object page of the old generation —
 * a full collection's work for a string that lives a few microseconds. Here the top-level object is walked over its
 * bytes (its strings skipped with `indexOf`, as base64 fills most of a rich item), the items of its `value` array are
 * parsed in groups, from strings of at most 64 kB, and the rest from a string without the array; the result is what
 * `JSON.parse` of the whole body gives. Whatever the walk does not expect — malformed JSON, an escaped or repeated
 * `value` key, a piece that does not parse — goes to `JSON.parse` of the whole body, which then parses it or throws
 * as before. Nothing is trusted for it: the result is decoded by the wire schema (Notifications.ts) as before.
 */

/** Bodies below this size are parsed whole: their string is an ordinary young object. */
export const splitFromBytes = 64 * 1024

const quote = 0x22
const backslash = 0x5c

const isSpace = (byte: number | undefined): boolean => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09

/** Not a body this walk takes: parsed whole instead. */
class NotSplit {}
const notSplit = new NotSplit()

class Walk {
  pos = 0
  readonly bytes: Buffer
  constructor(bytes: Buffer) {
    this.bytes = bytes
  }

  skipSpace(): void {
    while (isSpace(this.bytes[this.pos])) this.pos++
  }

  expect(byte: number): void {
    this.skipSpace()
    if (this.bytes[this.pos] !== byte) throw notSplit
    this.pos++
  }

  /** At an opening quote: moves past the closing one; returns where the string's content ends. */
  string(): number {
    let from = this.pos + 1
    for (;;) {
      const end = this.bytes.indexOf(quote, from)
      if (end < 0) throw notSplit
      let escapes = 0
      while (this.bytes[end - 1 - escapes] === backslash) escapes++
      if (escapes % 2 === 0) {
        this.pos = end + 1
        return end
      }
      from = end + 1
    }
  }

  /** Moves past one value (its syntax is checked by JSON.parse of its piece). */
  value(): void {
    this.skipSpace()
    const bytes = this.bytes
    const first = bytes[this.pos]
    if (first === quote) return void this.string()
    if (first !== 0x7b && first !== 0x5b) {
      while (this.pos < bytes.length && !isSpace(bytes[this.pos]) && !isDelimiter(bytes[this.pos]!)) this.pos++
      return
    }
    let depth = 0
    while (this.pos < bytes.length) {
      const byte = bytes[this.pos]!
      if (byte === quote) {
        this.string()
        continue
      }
      this.pos++
      if (byte === 0x7b || byte === 0x5b) depth++
      else if (byte === 0x7d || byte === 0x5d) {
        if (--depth === 0) return
      }
    }
    throw notSplit
  }
}

const isDelimiter = (byte: number): boolean => byte === 0x2c || byte === 0x7d || byte === 0x5d

interface Split {
  /** Where the `value` array starts and ends (its brackets included). */
  readonly arrayStart: number
  readonly arrayEnd: number
  readonly items: ReadonlyArray<readonly [number, number]>
}

/** The top-level object's `value` array and its items' byte ranges. */
const split = (bytes: Buffer): Split => {
  const walk = new Walk(bytes)
  walk.expect(0x7b)
  let found: Split | undefined
  walk.skipSpace()
  if (bytes[walk.pos] === 0x7d) throw notSplit
  for (;;) {
    walk.skipSpace()
    if (bytes[walk.pos] !== quote) throw notSplit
    const keyStart = walk.pos + 1
    const keyEnd = walk.string()
    walk.expect(0x3a)
    const isValue = keyEnd - keyStart === 5 && bytes.toString("latin1", keyStart, keyEnd) === "value"
    if (bytes.subarray(keyStart, keyEnd).includes(backslash) || (isValue && found !== undefined)) throw notSplit
    if (isValue) found = arrayItems(walk)
    else walk.value()
    walk.skipSpace()
    const next = bytes[walk.pos++]
    if (next === 0x7d) break
    if (next !== 0x2c) throw notSplit
  }
  walk.skipSpace()
  if (walk.pos !== bytes.length || found === undefined) throw notSplit
  return found
}

const arrayItems = (walk: Walk): Split => {
  walk.skipSpace()
  const arrayStart = walk.pos
  walk.expect(0x5b)
  const items: Array<readonly [number, number]> = []
  walk.skipSpace()
  if (walk.bytes[walk.pos] === 0x5d) return { arrayStart, arrayEnd: ++walk.pos, items }
  for (;;) {
    walk.skipSpace()
    const start = walk.pos
    walk.value()
    items.push([start, walk.pos])
    walk.skipSpace()
    const next = walk.bytes[walk.pos++]
    if (next === 0x5d) return { arrayStart, arrayEnd: walk.pos, items }
    if (next !== 0x2c) throw notSplit
  }
}

/** `JSON.parse` of the body as UTF-8, without a string of the whole of a large one; throws as JSON.parse does. */
export const parseJsonBody = (body: ArrayBuffer | Uint8Array): unknown => {
  const bytes = body instanceof Uint8Array ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : Buffer.from(body)
  if (bytes.length < splitFromBytes) return JSON.parse(bytes.toString("utf8"))
  try {
    const found = split(bytes)
    const rest = JSON.parse(bytes.toString("utf8", 0, found.arrayStart) + "[]" + bytes.toString("utf8", found.arrayEnd)) as {
      value: Array<unknown>
    }
    const value = rest.value
    // The walk saw one `value` key; JSON.parse of the rest must see the same, as the empty array put there.
    if (!Array.isArray(value) || value.length !== 0) throw notSplit
    // Neighbouring items are parsed together, as an array of at most `splitFromBytes` (the walk checked that only a
    // comma and white space lie between two): fewer, longer parses cost half as much as one per item.
    const items = found.items
    for (let first = 0; first < items.length;) {
      let last = first
      while (last + 1 < items.length && items[last + 1]![1] - items[first]![0] <= splitFromBytes) last++
      const group = JSON.parse(`[${bytes.toString("utf8", items[first]![0], items[last]![1])}]`) as Array<unknown>
      for (const item of group) value.push(item)
      first = last + 1
    }
    return rest
  } catch (error) {
    if (error !== notSplit && !(error instanceof SyntaxError)) throw error
    return JSON.parse(bytes.toString("utf8"))
  }
}
