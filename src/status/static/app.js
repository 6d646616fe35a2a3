// Status page: renders /api/status and follows /api/events (server-sent events). Plain browser JavaScript, no build;
// times are written by format.js (one format, the browser's locale and time zone).
"use strict"
;(function () {
  const F = window.StatusFormat
  const lightNames = {
    masterPbx: "Master PBX",
    authentication: "Authentication",
    presenceSubscription: "Presence subscription",
    userSubscription: "Users subscription"
  }
  const $ = (id) => document.getElementById(id)
  const { el, dot } = window.StatusFormat
  /** The technical cause behind words, one click away; one that was opened stays open across updates. */
  const opened = new Set()
  const detail = (text) => {
    if (!text) return null
    const node = el("details", { class: "detail", open: opened.has(text) }, el("summary", { textContent: "technical detail" }), el("code", { textContent: text }))
    node.addEventListener("toggle", () => (node.open ? opened.add(text) : opened.delete(text)))
    return node
  }
  const fix = (text) => (text ? el("div", { class: "fix", textContent: text }) : null)
  /** " · since <time> (3 min ago)" and " · until <time> (in 52 min)" for a light's times. */
  const times = (item) => [
    item.since ? [" · since ", F.time(item.since, true)] : [],
    item.until ? [" · until ", F.time(item.until, true)] : []
  ].flat()
  let current = null
  const previous = new Map()

  const lightBox = (key, name, light) =>
    el("div", { class: "light " + light.state, "data-light": key, "data-state": light.state },
      el("h2", {}, dot(light.state), name),
      el("p", {}, light.reason, ...times(light)),
      fix(light.fix),
      detail(light.detail))

  function renderLights(s) {
    $("lights").replaceChildren(
      ...Object.entries(lightNames).map(([key, name]) => lightBox(key, name, s.lights[key])),
      // PBX → Teams, when it is on (pbxToTeams in the configuration).
      ...(s.pbxToTeams ? [lightBox("pbxToTeams", "PBX → Teams", s.pbxToTeams.light)] : [])
    )
  }

  function list(id, items, render, empty) {
    $(id).replaceChildren(...(items.length ? items.map(render) : [el("li", { class: "muted", textContent: empty })]))
  }

  /** One line of a card: a dot, a name in bold, the text, then fix and detail below. */
  const line = (state, name, parts, item, attrs) =>
    el("li", attrs || {}, dot(state), el("span", { class: "grow" }, el("b", { textContent: name }), " — ", ...parts, fix(item.fix), detail(item.detail)))

  function renderCards(s) {
    list("pbxs", s.pbxs, (p) => line(p.state, p.pbx + (p.isMaster ? " (master)" : " (slave)"), [p.reason, ...times(p)], p, { "data-pbx": p.pbx }),
      "no PBX connected yet")
    list("credentials", s.credentials, (c) =>
      line(c.state, c.label, [c.reason, ...(c.expiresAt ? [" · token until ", F.time(c.expiresAt, true)] : [])], c), "no credential configured")
    list("shards", s.shards, (sh) =>
      line(sh.state, sh.account, [sh.userCount + " users, " + sh.reason, ...(sh.expiresAt ? [" · until ", F.time(sh.expiresAt, true)] : [])], sh),
      s.mode === "poll" ? "poll-only mode: no subscriptions" : "no presence subscription yet")
    const cert = s.certificate
    if (cert) {
      $("shards").append(line(cert.error ? "red" : "green", "notification certificate", [
        "valid until ", F.time(cert.notAfter, false),
        ...(cert.lastRotationAt ? [", rotated ", F.time(cert.lastRotationAt, true)] : []),
        cert.previousKeys ? ", " + cert.previousKeys + " older key(s) kept for notifications in flight" : ""
      ], { fix: cert.error }, { "data-certificate": cert.id }))
    }
    renderLicensing(s.licensing)
    renderCluster(s)
  }

  /** Cluster mode (run --cluster): each runner, the tenants it owns and the PBX sockets it holds. */
  function renderCluster(s) {
    const card = $("cluster-card")
    card.hidden = !s.cluster
    if (!s.cluster) return
    const here = s.cluster.runner
    list("cluster", s.cluster.runners, (r) => {
      const tenants = r.tenants.map((t) => t.tenant + " (epoch " + t.epoch + (t.sockets === "owner" ? ", PBX sockets in its connector" : "") + ")").join(", ") || "none"
      const sockets = r.pbxSockets.map((p) => p.tenant + ": " + p.pbx + (p.master ? " (master)" : "") + (p.loggedIn ? "" : " (logging in)")).join(", ") || "none"
      return line(r.alive ? "green" : "red", r.id + (r.id === here ? " (serves this page)" : ""), [
        r.alive ? "up since " : "not seen since ", F.time(r.alive ? r.startedAt : r.seenAt, true),
        el("div", { "data-runner-tenants": "", textContent: "tenants: " + tenants }),
        el("div", { "data-runner-pbx": "", textContent: "PBX sockets: " + sockets })
      ], r, { "data-runner": r.id, "data-alive": String(r.alive) })
    }, "no runner has reported yet")
  }

  const modeWords = (lic) =>
    lic.mode === "appRight" ? "App right: users whose Apps tab ticks " + (lic.name || "the connector's App")
      : lic.mode === "appLicence" ? "App licence: users holding " + (lic.name || "the App licence")
      : "all matched users"

  function renderLicensing(lic) {
    const box = $("licensing")
    if (!lic) return box.replaceChildren(el("p", { class: "muted", textContent: "not known yet" }))
    const state = lic.problem ? "red" : lic.unknown > 0 ? "amber" : "green"
    const counts = [["served", lic.licensed], ["not licensed", lic.unlicensed], ["unknown", lic.unknown]]
    if (lic.cap !== undefined) counts.push(["at most", lic.cap])
    box.setAttribute("data-licensing", lic.mode)
    box.setAttribute("data-state", state)
    box.replaceChildren(...[
      el("p", {}, dot(state), " ", el("b", { textContent: lic.mode }), " — " + modeWords(lic)),
      el("dl", { class: "counts" }, ...counts.map(([k, v]) => el("div", { "data-licensing-count": k }, el("dt", { textContent: k }), el("dd", { textContent: String(v) })))),
      el("p", { class: "muted", textContent: "App object, for information: " +
        (lic.serviceLicences !== undefined ? lic.serviceLicences + " service licences" : "no service licences") + (lic.unlicensedFlag ? ", unlicensed flag set" : "") }),
      lic.problem ? el("div", { class: "fix", textContent: lic.problem.message + " — " + lic.problem.fix }) : null
    ].filter(Boolean))
  }

  function renderDetails(s) {
    const c = s.counts
    const counts = [["Teams users", c.teamsUsers], ["PBX users", c.pbxUsers], ["matched", c.matched], ["licensed", c.licensed],
      ["unlicensed", c.unlicensed], ["unmatched", c.unmatched], ["ambiguous", c.ambiguous]]
    if (c.technicalAccounts) counts.splice(1, 0, ["technical accounts", c.technicalAccounts])
    $("counts").replaceChildren(...counts.map(([k, v]) => el("div", { "data-count": k }, el("dt", { textContent: k }), el("dd", { textContent: String(v) }))))
    const excluded = [
      ...s.unlicensed.map((u) => ({ text: u.name + " — " + u.reason })),
      ...s.ambiguous.map((a) => ({ text: a.key + " — " + a.reason })),
      ...s.unmatched.slice(0, 50).map((u) => ({ text: u.name + " — no " + (u.side === "teams" ? "PBX" : "Teams") + " user matches" }))
    ]
    list("excluded", excluded, (x) => el("li", { textContent: x.text }), "every user is synchronised")
    list("errors", s.errors.slice().reverse(), (e) => el("li", { "data-error": e.level }, el("span", { class: "grow" },
      el("span", { class: "muted" }, F.time(e.at, true)), el("div", {}, e.message), fix(e.fix), detail(e.detail))), "no errors")
    const demo = $("demo")
    if (s.demo) {
      demo.hidden = false
      demo.textContent = "Demo mode — Graph simulator: " + s.demo.graphSimulator + " · PBX simulator: " + s.demo.pbxSimulator
    }
    $("meta").replaceChildren("v" + s.version + " · " + s.mode + " mode · up since ", F.time(s.startedAt, false),
      el("span", { class: "zone", textContent: " · times in " + F.zone }))
  }

  function renderUsers(s) {
    const q = $("search").value.trim().toLowerCase()
    const rows = s.users.filter((u) => !q || [u.name, u.upn, u.pbxName, u.pbx, u.activity, u.availability, u.written].join(" ").toLowerCase().includes(q))
    const shown = rows.slice(0, 500)
    const calls = new Map(((s.pbxToTeams && s.pbxToTeams.calls) || []).map((c) => [c.teamsId, c]))
    $("users").tBodies[0].replaceChildren(...shown.map((u) => {
      const call = calls.get(u.teamsId)
      const key = u.teamsId
      const signature = u.activity + "|" + u.written
      const changed = previous.has(key) && previous.get(key) !== signature
      previous.set(key, signature)
      const teams = u.availability === u.activity ? u.activity : u.availability + " / " + u.activity
      const age = F.age(u.lastChangeAt)
      const delay = u.delayMs === undefined ? "—" : u.delayMs + " ms"
      return el("tr", { "data-user": key, "data-written": u.written, "data-activity": u.activity, class: changed ? "changed" : "" },
        el("td", { class: "name" }, u.name, el("small", { textContent: u.upn })),
        el("td", { "data-col": "teams" }, teams,
          call ? el("small", { "data-call-since": String(call.since) }, "in a PBX call since ", F.time(call.since, false), call.shown ? "" : " (not shown yet)") : null),
        el("td", { "data-col": "written" }, el("span", { class: "badge " + u.written, textContent: u.licensed ? u.written : "not licensed" })),
        el("td", { "data-col": "pbx", textContent: u.pbxName + " @ " + u.pbx }),
        el("td", { "data-col": "age", textContent: age, title: F.title(u.lastChangeAt) }),
        el("td", { "data-col": "delay", textContent: delay }),
        // The phone layout shows PBX, age and delay in one small line under the presence.
        el("td", { "data-col": "summary", textContent: u.pbxName + " @ " + u.pbx + " · " + age + " · " + delay }))
    }))
    $("more").textContent = rows.length > shown.length ? "showing " + shown.length + " of " + rows.length + " — refine the search" : ""
  }

  /** `fresh`: a snapshot just arrived (its `now` is the connector's clock); else the ages only move on. */
  function render(s, fresh) {
    current = s
    if (fresh !== false) F.setServerNow(s.now)
    renderLights(s)
    renderCards(s)
    renderDetails(s)
    renderUsers(s)
  }

  $("search").addEventListener("input", () => current && renderUsers(current))
  fetch("./api/status", { credentials: "same-origin" }).then((r) => r.json()).then(render).catch(() => {})
  const events = new EventSource("./api/events")
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
  // Ages move on between updates.
  setInterval(() => current && render(current, false), 10000)
})()
