// Tenants overview: renders /tenants/status (the process's tenants, one row each) and reads it again every 5 s. Plain
// browser JavaScript, no build; every text goes in as text, never as markup.
"use strict"
;(function () {
  const F = window.StatusFormat
  const $ = (id) => document.getElementById(id)
  const { el, dot } = window.StatusFormat
  const light = (name, l) =>
    l ? el("td", { "data-light": name, "data-state": l.state }, dot(l.state), " ", l.reason) : el("td", { "data-light": name, class: "muted", textContent: "—" })

  const stateCell = (tenant) => {
    if (tenant.state === "failed") {
      return el("td", { "data-col": "state" }, dot("red"), " failed",
        el("small", { class: "fix", textContent: tenant.error + (tenant.failures > 1 ? " (" + tenant.failures + " times in a row)" : "") }))
    }
    return el("td", { "data-col": "state" }, dot(tenant.state === "running" ? "green" : "amber"), " " + tenant.state)
  }

  const row = (tenant) => {
    const counts = tenant.counts
    const error = tenant.lastError
    return el("tr", { "data-tenant": tenant.id, "data-state": tenant.state },
      el("td", { class: "name" }, el("a", { href: tenant.page, textContent: tenant.id })),
      stateCell(tenant),
      light("masterPbx", tenant.lights && tenant.lights.masterPbx),
      light("authentication", tenant.lights && tenant.lights.authentication),
      light("presenceSubscription", tenant.lights && tenant.lights.presenceSubscription),
      el("td", { "data-col": "counts", textContent: counts ? counts.matched + " / " + counts.written + " of " + counts.teamsUsers : "—" }),
      el("td", { "data-col": "error" }, error ? el("span", {}, F.time(error.at, true), " ", error.message) : "—"))
  }

  const render = (overview) => {
    F.setServerNow(overview.now)
    const tenants = overview.tenants
    const green = tenants.filter((t) => t.lights && ["masterPbx", "authentication", "presenceSubscription"].every((k) => t.lights[k].state === "green"))
    // A cluster runner shows the tenants it owns: say which runner.
    const where = overview.runner ? "runner " + overview.runner + " · tenants owned here: " + tenants.length : tenants.length + " tenant(s)"
    $("meta").textContent = where + " · times in " + F.zone
    $("counts").replaceChildren(
      ...[["tenants", tenants.length], ["all green", green.length], ["failed", tenants.filter((t) => t.state === "failed").length]]
        .map(([name, value]) => el("div", {}, el("dt", { textContent: name }), el("dd", { textContent: String(value) }))))
    $("tenants").tBodies[0].replaceChildren(...tenants.map(row))
  }

  const load = () =>
    fetch("/tenants/status", { cache: "no-store" })
      .then((response) => (response.ok ? response.json() : Promise.reject(new Error("HTTP " + response.status))))
      .then(render)
      .catch((error) => { $("meta").textContent = "cannot read the tenants' status: " + error.message })
  load()
  setInterval(load, 5000)
})()
