import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

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
    include: ["test/**/*.test.ts"],
    // One PostgreSQL server per run, started only when a test file asks for a database.
    globalSetup: ["./test/support/postgres.globalSetup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default", "./test/support/SummaryReporter.ts"]
  }
})
