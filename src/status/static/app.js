// Status page: renders /api/status and follows /api/events (server-sent events). Plain browser JavaScript, no build.
"use strict"
;(function () {
  const lightNames = {
    masterPbx: "Master PBX",
    authentication: "Authentication",
    presenceSubscription: "Presence subscription",
    userSubscription: "Users subscription"
  }
  const $ = (id) => document.getElementById(id)
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
  const dot = (state) => el("span", { class: "dot " + state, title: state })
  const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "—")
  // "… ago" is measured on the connector's clock (the snapshot's `now`), advanced by the time since it arrived, so a
  // browser whose clock is off still shows the right age.
  let serverNow = 0
  let receivedAt = 0
  const connectorNow = () => serverNow + (performance.now() - receivedAt)
  const ago = (ms) => {
    if (!ms) return "—"
    const s = Math.max(0, Math.round((connectorNow() - ms) / 1000))
    return s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago"
  }
  const until = (ms) => (ms ? "expires " + new Date(ms).toLocaleTimeString() : "")
  let current = null
  const previous = new Map()

  const lightBox = (key, name, light) =>
    el(
      "div",
      { class: "light " + light.state, "data-light": key, "data-state": light.state },
      el("h2", {}, dot(light.state), name),
      el("p", { textContent: light.reason }),
      light.fix ? el("p", { class: "fix", textContent: light.fix }) : null
    )

  function renderLights(s) {
    const box = $("lights")
    box.replaceChildren(
      ...Object.entries(lightNames).map(([key, name]) => lightBox(key, name, s.lights[key])),
      // PBX → Teams, when it is on (pbxToTeams in the configuration).
      ...(s.pbxToTeams ? [lightBox("pbxToTeams", "PBX → Teams", s.pbxToTeams.light)] : [])
    )
  }

  function list(id, items, render, empty) {
    const ul = $(id)
    ul.replaceChildren(...(items.length ? items.map(render) : [el("li", { class: "muted", textContent: empty })]))
  }

  function renderDetails(s) {
    list("pbxs", s.pbxs, (p) => el("li", { "data-pbx": p.pbx }, dot(p.state),
      el("span", {}, el("b", { textContent: p.pbx + (p.isMaster ? " (master)" : " (slave)") }), " — " + p.reason,
        p.fix ? el("div", { class: "fix", textContent: p.fix }) : null)), "no PBX connected yet")
    list("credentials", s.credentials, (c) => el("li", {}, dot(c.state),
      el("span", {}, el("b", { textContent: c.label }), " — " + c.reason + (c.expiresAt ? " (token until " + time(c.expiresAt) + ")" : ""),
        c.fix ? el("div", { class: "fix", textContent: c.fix }) : null)), "no credential configured")
    list("shards", s.shards, (sh) => el("li", {}, dot(sh.state),
      el("span", {}, el("b", { textContent: sh.account }), " — " + sh.userCount + " users, " + sh.status + " " + until(sh.expiresAt),
        sh.reason && sh.state === "red" ? el("div", { class: "fix", textContent: sh.reason + (sh.fix ? " — " + sh.fix : "") }) : null)),
      s.mode === "poll" ? "poll-only mode: no subscriptions" : "no presence subscription yet")
    const cert = s.certificate
    if (cert) {
      $("shards").append(el("li", { "data-certificate": cert.id }, dot(cert.error ? "red" : "green"),
        el("span", {}, el("b", { textContent: "notification certificate" }),
          " — valid until " + new Date(cert.notAfter).toLocaleDateString() +
          (cert.lastRotationAt ? ", rotated " + new Date(cert.lastRotationAt).toLocaleString() : "") +
          (cert.previousKeys ? ", " + cert.previousKeys + " older key(s) kept for notifications in flight" : ""),
          cert.error ? el("div", { class: "fix", textContent: cert.error }) : null)))
    }
    const c = s.counts
    const counts = [["Teams users", c.teamsUsers], ["PBX users", c.pbxUsers], ["matched", c.matched], ["licensed", c.licensed],
      ["unlicensed", c.unlicensed], ["unmatched", c.unmatched], ["ambiguous", c.ambiguous]]
    $("counts").replaceChildren(...counts.map(([k, v]) => el("div", { "data-count": k }, el("dt", { textContent: k }), el("dd", { textContent: String(v) }))))
    const lic = s.licensing
    $("licensing").replaceChildren(...(lic ? [
      "Licensing: " + lic.mode + (lic.name ? " (" + lic.name + ")" : "") + " — " + lic.licensed + " served, " + lic.unlicensed +
        " not licensed, " + lic.unknown + " unknown" + (lic.cap !== undefined ? ", at most " + lic.cap : "") +
        " · App object: " + (lic.serviceLicences !== undefined ? lic.serviceLicences + " service licences" : "no service licences") +
        (lic.unlicensedFlag ? ", unlicensed" : ""),
      lic.problem ? el("div", { class: "fix", textContent: lic.problem.message + " — " + lic.problem.fix }) : null
    ].filter(Boolean) : []))
    const excluded = [
      ...s.unlicensed.map((u) => ({ text: u.name + " — " + u.reason })),
      ...s.ambiguous.map((a) => ({ text: a.key + " — " + a.reason })),
      ...s.unmatched.slice(0, 50).map((u) => ({ text: u.name + " — no " + (u.side === "teams" ? "PBX" : "Teams") + " user matches" }))
    ]
    list("excluded", excluded, (x) => el("li", { textContent: x.text }), "every user is synchronised")
    list("errors", s.errors.slice().reverse(), (e) => el("li", {}, el("span", { class: "muted", textContent: time(e.at) }),
      el("span", {}, e.message, e.fix ? el("div", { class: "fix", textContent: e.fix }) : null)), "no errors")
    const demo = $("demo")
    if (s.demo) {
      demo.hidden = false
      demo.textContent = "Demo mode — Graph simulator: " + s.demo.graphSimulator + " · PBX simulator: " + s.demo.pbxSimulator
    }
    $("meta").textContent = "v" + s.version + " · " + s.mode + " mode · up since " + new Date(s.startedAt).toLocaleString()
  }

  function renderUsers(s) {
    const q = $("search").value.trim().toLowerCase()
    const rows = s.users.filter((u) => !q || [u.name, u.upn, u.pbxName, u.pbx, u.activity, u.availability, u.written].join(" ").toLowerCase().includes(q))
    const shown = rows.slice(0, 500)
    const calls = new Map(((s.pbxToTeams && s.pbxToTeams.calls) || []).map((c) => [c.teamsId, c]))
    const tbody = $("users").tBodies[0]
    tbody.replaceChildren(...shown.map((u) => {
      const call = calls.get(u.teamsId)
      const key = u.teamsId
      const signature = u.activity + "|" + u.written
      const changed = previous.has(key) && previous.get(key) !== signature
      previous.set(key, signature)
      return el("tr", { "data-user": key, "data-written": u.written, "data-activity": u.activity, class: changed ? "changed" : "" },
        el("td", { class: "name" }, u.name, el("small", { textContent: u.upn })),
        el("td", { "data-col": "teams" }, u.availability === u.activity ? u.activity : u.availability + " / " + u.activity,
          call ? el("small", { "data-call-since": String(call.since), textContent: "in a PBX call since " + time(call.since) + (call.shown ? "" : " (not shown yet)") }) : null),
        el("td", { "data-col": "written" }, el("span", { class: "badge " + u.written, textContent: u.licensed ? u.written : "not licensed" })),
        el("td", { textContent: u.pbxName + " @ " + u.pbx }),
        el("td", { textContent: ago(u.lastChangeAt) }),
        el("td", { textContent: u.delayMs === undefined ? "—" : u.delayMs + " ms" }))
    }))
    $("more").textContent = rows.length > shown.length ? "showing " + shown.length + " of " + rows.length + " — refine the search" : ""
  }

  function render(s) {
    current = s
    serverNow = s.now
    receivedAt = performance.now()
    renderLights(s)
    renderDetails(s)
    renderUsers(s)
  }

  $("search").addEventListener("input", () => current && renderUsers(current))
  fetch("/api/status", { credentials: "same-origin" }).then((r) => r.json()).then(render).catch(() => {})
  const events = new EventSource("/api/events")
  events.addEventListener("status", (e) => render(JSON.parse(e.data)))
  // A delta carries everything but the user table, plus the rows that changed and the ids of rows that went away.
  events.addEventListener("delta", (e) => {
    if (!current) return
    const delta = JSON.parse(e.data)
    const removed = new Set(delta.removedUsers)
    const changed = new Map(delta.changedUsers.map((row) => [row.teamsId, row]))
    const users = []
    for (const row of current.users) {
      if (removed.has(row.teamsId)) continue
      users.push(changed.get(row.teamsId) || row)
      changed.delete(row.teamsId)
    }
    for (const row of changed.values()) users.push(row)
    const { changedUsers: _c, removedUsers: _r, ...rest } = delta
    render({ ...rest, users })
  })
  events.onerror = () => { $("meta").textContent = "connection lost — retrying…" }
  setInterval(() => current && renderUsers(current), 10000)
})()
