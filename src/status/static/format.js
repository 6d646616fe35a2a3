// Status page: the one way it writes a time, in the browser's locale and time zone (the zone is named once, in the
// header), and ages measured on the connector's clock. Plain browser JavaScript, no build; used by app.js.
"use strict"
;(function () {
  const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" })
  const zone = absolute.resolvedOptions().timeZone
  const zoneName = (() => {
    const part = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(new Date())
      .find((p) => p.type === "timeZoneName")
    return part && part.value !== zone ? zone + " (" + part.value + ")" : zone
  })()

  // "… ago" is measured on the connector's clock (the snapshot's `now`), advanced by the time since it arrived, so a
  // browser whose clock is off still shows the right age.
  let serverNow = 0
  let receivedAt = 0
  const connectorNow = () => serverNow + (performance.now() - receivedAt)

  const span = (seconds) =>
    seconds < 60 ? seconds + " s" : seconds < 3600 ? Math.round(seconds / 60) + " min" : seconds < 172800
      ? Math.round(seconds / 3600) + " h" : Math.round(seconds / 86400) + " days"

  /** "3 min ago" / "in 52 min" from an epoch-milliseconds time. */
  const relative = (ms) => {
    const s = Math.round((connectorNow() - ms) / 1000)
    return s >= 0 ? span(s) + " ago" : "in " + span(-s)
  }

  /** A <time> element: the absolute time in the one format; `withAge` adds the relative age after it. */
  const time = (ms, withAge) => {
    const node = document.createElement("time")
    node.dateTime = new Date(ms).toISOString()
    node.textContent = absolute.format(ms)
    if (!withAge) return node
    const wrap = document.createElement("span")
    wrap.className = "when"
    wrap.append(node, " (" + relative(ms) + ")")
    return wrap
  }

  /** An element with attributes (`class`, `data-*`, properties) and children; texts go in as text, never as markup. */
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag)
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue
      if (k === "class") node.className = v
      else if (k.startsWith("data-")) node.setAttribute(k, v)
      else node[k] = v
    }
    for (const child of children) if (child !== undefined && child !== null) node.append(child)
    return node
  }

  window.StatusFormat = {
    el,
    /** A light's coloured dot. */
    dot: (state) => el("span", { class: "dot " + state, title: state }),
    zone: zoneName,
    time,
    relative,
    /** Ages for the user table: relative only, the absolute time on hover. */
    age: (ms) => (ms ? relative(ms) : "—"),
    title: (ms) => (ms ? absolute.format(ms) : ""),
    setServerNow: (now) => {
      serverNow = now
      receivedAt = performance.now()
    }
  }
})()
