import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

/** The test files of the second group (below). */
const processTests = [
  "test/browser/**/*.test.ts",
  "test/cluster/**/*.test.ts",
  "test/e2e/**/*.test.ts",
  "test/embedding/**/*.test.ts",
  "test/fuzz/**/*.test.ts",
  "test/package/**/*.test.ts",
  "test/tenants/**/*.test.ts",
  "test/connector/Cli.test.ts",
  "test/connector/DataDir.test.ts"
]

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url))

export default defineConfig({
  resolve: {
    // The package's own names resolve to src/ here, as tsconfig.json's paths do; installed, they resolve to dist/.
    alias: [
      { find: /^teams-presence-connector$/, replacement: source("./src/index.ts") },
      { find: /^teams-presence-connector\/testing$/, replacement: source("./src/testing.ts") }
    ]
  },
  test: {
    // One PostgreSQL server per run, started only when a test file asks for a database.
    globalSetup: ["./test/support/postgres.globalSetup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default", "./test/support/SummaryReporter.ts"],
    projects: [
      // Files that stay in their own process (TestClock, a simulator or two over loopback): two at a time, in workers
      // that keep the modules they imported for the next file (importing effect and the connector again for each file
      // cost three times the tests' own time). What a file changes in its process it puts back.
      {
        extends: true,
        test: { name: "in-process", include: ["test/**/*.test.ts"], exclude: processTests, maxWorkers: 2, isolate: false, sequence: { groupOrder: 0 } }
      },
      // Files that start processes, runner clusters, browsers or many simulators, whose waits are real time: one at a
      // time, after the others, so that none shares the machine's cores with another.
      { extends: true, test: { name: "processes", include: processTests, maxWorkers: 1, sequence: { groupOrder: 1 } } }
    ]
  }
})
