"use strict"
/**
 * The Node.js version check that runs before anything loads TypeScript or a dependency: on a Node.js older than the
 * package's `engines.node` it names the version found, the version needed and how to run the same command with
 * Node.js 24 through npx, and exits 1. Plain CommonJS with nothing newer than Node.js 8 knows, so an old Node.js runs it.
 *
 *   node scripts/check-node.cjs npm test     (first in `npm start` and `npm test`; the arguments are the command shown)
 *   require("./check-node.cjs").exitUnlessSupported("teams-presence-connector …")   (the bin, src/bin.ts)
 */
const { engines } = require("../package.json")

/** The minimum from package.json's `engines.node` (">=22.19"): the one place the version is written down. */
const minimum = (() => {
  const match = /^>=\s*(\d+)\.(\d+)/.exec(engines.node)
  if (match === null) throw new Error(`package.json engines.node is not ">=MAJOR.MINOR": ${engines.node}`)
  return { major: Number(match[1]), minor: Number(match[2]) }
})()

/** What is wrong with a Node.js version ("20.20.2"), or undefined when it is new enough. */
const versionProblem = (version, command) => {
  const [major, minor] = String(version).replace(/^v/, "").split(".").map(Number)
  if (major > minimum.major || (major === minimum.major && minor >= minimum.minor)) return undefined
  return [
    `teams-presence-connector needs Node.js ${minimum.major}.${minimum.minor} or newer; this is Node.js ${version}.`,
    "Install Node.js 24, or run the same command with Node.js 24 through npx:",
    `  npx -y -p node@24 -- ${command || "npm test"}`
  ].join("\n")
}

/** Prints the problem and exits 1 when this Node.js is too old; returns otherwise. */
const exitUnlessSupported = (command) => {
  const problem = versionProblem(process.versions.node, command)
  if (problem === undefined) return
  process.stderr.write(problem + "\n")
  process.exit(1)
}

module.exports = { minimum, versionProblem, exitUnlessSupported }

if (require.main === module) exitUnlessSupported(process.argv.slice(2).join(" "))
