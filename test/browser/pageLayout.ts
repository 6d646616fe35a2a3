/**
 * What the layout tests measure inside the status page, as page scripts (text: the tests are compiled without the
 * DOM's types) that return plain data: boxes of the lights and of the user rows' cells, overflow, and every time the
 * page writes.
 */
import { Effect } from "effect"
import type { Page } from "playwright-core"

export interface Box {
  readonly left: number
  readonly top: number
  readonly right: number
  readonly bottom: number
  readonly width: number
  readonly height: number
  readonly shown: boolean
}

export interface Layout {
  readonly viewport: { readonly width: number; readonly height: number }
  readonly scroll: { readonly x: number; readonly y: number }
  /** The page's width as laid out: wider than the viewport means something scrolls sideways. */
  readonly scrollWidth: number
  readonly title: Box & { readonly lineHeight: number }
  readonly lights: ReadonlyArray<Box & { readonly name: string; readonly text: string }>
  readonly rows: ReadonlyArray<{ readonly user: string; readonly name: Box; readonly teams: Box; readonly written: Box; readonly pbx: Box }>
}

const measure = `(() => {
  const box = (node) => {
    if (!node) return { left: 0, top: 0, right: 0, bottom: 0, width: 0, height: 0, shown: false }
    const r = node.getBoundingClientRect()
    const style = getComputedStyle(node)
    return { left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height,
      shown: style.display !== "none" && style.visibility !== "hidden" && r.width > 0 && r.height > 0 }
  }
  const h1 = document.querySelector("header h1")
  return {
    viewport: { width: innerWidth, height: innerHeight },
    scroll: { x: scrollX, y: scrollY },
    scrollWidth: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),
    title: { ...box(h1), lineHeight: parseFloat(getComputedStyle(h1).lineHeight) || parseFloat(getComputedStyle(h1).fontSize) * 1.45 },
    lights: [...document.querySelectorAll("[data-light]")].map((n) => ({ ...box(n), name: n.dataset.light, text: n.innerText })),
    rows: [...document.querySelectorAll("tr[data-user]")].map((tr) => ({
      user: tr.dataset.user,
      name: box(tr.querySelector("td.name")),
      teams: box(tr.querySelector('td[data-col="teams"]')),
      written: box(tr.querySelector('td[data-col="written"]')),
      pbx: box(tr.querySelector('td[data-col="pbx"]'))
    }))
  }
})()`

export const layoutOf = (page: Page) => Effect.promise(() => page.evaluate(measure) as Promise<Layout>)

export interface Times {
  /** Each <time> element's text, and the text the page's one format gives for its datetime. */
  readonly elements: ReadonlyArray<{ readonly text: string; readonly expected: string }>
  /** Clock times written anywhere else on the page (there should be none). */
  readonly elsewhere: ReadonlyArray<string>
  /** How often the page names its time zone, and the zone the browser runs in. */
  readonly zoneMentions: number
  readonly zone: string
}

const times = `(() => {
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" })
  const elements = [...document.querySelectorAll("time")].map((t) => ({ text: t.textContent, expected: format.format(new Date(t.dateTime)) }))
  const copy = document.body.cloneNode(true)
  copy.querySelectorAll("time, script").forEach((n) => n.remove())
  const text = copy.textContent
  const elsewhere = [...text.matchAll(/(?<![\\d.:])\\d{1,2}:\\d{2}(?::\\d{2})?(?![\\d:])(\\s?[AP]M|\\s?UTC)?/g)].map((m) => m[0])
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone
  return { elements, elsewhere, zoneMentions: text.split("times in ").length - 1, zone }
})()`

export const timesOf = (page: Page) => Effect.promise(() => page.evaluate(times) as Promise<Times>)
