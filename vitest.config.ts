import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    // Each file gets its own process, so each integration file owns its stack and config.
    pool: "forks",
    maxWorkers: 2,
    // Generous bounds: a 2-core CI machine running two suites against shared engines is slow;
    // tests finish as soon as their conditions hold, so only a real hang reaches these.
    testTimeout: 240_000,
    hookTimeout: 240_000,
    // A polled condition (a console page showing an answer) may take seconds under two suites' load.
    expect: { poll: { timeout: 15_000 } },
    env: {
      LOG_LEVEL: process.env.LOG_LEVEL ?? "SILENT",
      POWERTOOLS_METRICS_DISABLED: "true",
      POWERTOOLS_DEV: "false",
      AWS_REGION: "us-east-1",
      TABLE_NAME: "unit-test-table",
    },
  },
});
