/** Compares the shape of a recorded or published body with the simulator's: property names, nesting and value types. */
import { assert } from "@effect/vitest"

type Shape = string | { readonly [key: string]: Shape } | ReadonlyArray<Shape>

const shapeOf = (value: unknown): Shape =>
  value === null
    ? "null"
    : Array.isArray(value)
    ? value.length > 0 ? [shapeOf(value[0])] : []
    : typeof value === "object"
    ? Object.fromEntries(Object.entries(value as object).map(([key, inner]) => [key, shapeOf(inner)]))
    : typeof value

/**
 * Every property of the sample exists in the simulator's body with the same type and nesting (null matches any);
 * `except` names top-level properties the simulator rightly leaves out.
 */
export const assertSameShape = (sample: unknown, actual: unknown, path = "$", except: ReadonlyArray<string> = []): void => {
  const expected = shapeOf(sample)
  const got = shapeOf(actual)
  if (expected === "null" || got === "null") return
  if (typeof expected === "string" || typeof got === "string") {
    assert.strictEqual(got, expected, `type at ${path}`)
    return
  }
  if (Array.isArray(expected)) {
    assert.isTrue(Array.isArray(got), `array at ${path}`)
    if (expected.length > 0 && (got as ReadonlyArray<Shape>).length > 0) {
      assertSameShape((sample as Array<unknown>)[0], (actual as Array<unknown>)[0], `${path}[0]`)
    }
    return
  }
  assert.isFalse(Array.isArray(got), `object at ${path}`)
  for (const key of Object.keys(expected)) {
    if (except.includes(key)) continue
    assert.isTrue(key in (actual as object), `${path}.${key} is present`)
    assertSameShape((sample as Record<string, unknown>)[key], (actual as Record<string, unknown>)[key], `${path}.${key}`)
  }
}
