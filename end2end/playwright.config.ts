// Playwright configuration: one Chromium project (Debian's browser, no download), one worker
// on this 2-core machine, and real Flack servers started for the run: one in the default
// mode (SQLite) for every spec, two cluster instances for cluster.spec.ts, one keeping
// only 100 messages per room (data.retain_messages = 100) for history.spec.ts, and one
// allowing a burst of only 3 messages and 1 a second after it for composer.spec.ts.
import { defineConfig } from "@playwright/test";
import * as os from "os";
import * as path from "path";

const PORT = Number(process.env.FLACK_E2E_PORT ?? 3100);
const root = path.resolve(__dirname, "..");
const bin =
  process.env.FLACK_BIN ??
  path.join(process.env.HOME ?? "", ".cache/flack/target/debug/flack");
const siteRoot = process.env.FLACK_SITE_ROOT ?? path.join(root, "target/site");
// Uploaded files go to a fresh folder outside the checkout for each run.
const dataDir = path.join(os.tmpdir(), `flack-e2e-${process.pid}`);
// Two more instances form a cluster (cluster.spec.ts) on a fresh PostgreSQL database and
// Redis prefix, both named once per run (workers read the same names from the environment;
// global-teardown.ts drops the database).
process.env.FLACK_E2E_CLUSTER ??= `flack_e2e_${Date.now().toString(36)}_${process.pid}`;
const clusterName = process.env.FLACK_E2E_CLUSTER;
const postgres = process.env.FLACK_E2E_POSTGRES ?? "postgres://postgres@127.0.0.1:5432";
const redis = process.env.FLACK_E2E_REDIS ?? "redis://127.0.0.1:6379/";
const limits =
  "--limits-message-burst 200 --limits-registrations-per-hour 100000 --limits-pages-per-minute 100000";
const clusterInstance = (port: number) => ({
  command: `"${bin}" --server-addr 127.0.0.1:${port} --server-site-root "${siteRoot}" --server-env dev --data-dir "${dataDir}-${port}" ${limits} --data-store postgres --data-postgres-url ${postgres}/${clusterName} --cluster-redis-url ${redis} --cluster-prefix ${clusterName}`,
  url: `http://127.0.0.1:${port}/c/general`,
  reuseExistingServer: false,
  timeout: 60_000,
  stdout: "ignore" as const,
  stderr: "pipe" as const,
});

export default defineConfig({
  testDir: "./tests",
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 30_000,
  expect: { timeout: 5_000 },
  reporter: [["list"]],
  use: {
    baseURL: `http://127.0.0.1:${PORT}`,
    trace: "off",
  },
  projects: [
    {
      name: "chromium",
      use: {
        browserName: "chromium",
        launchOptions: {
          executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
          args: [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
          ],
        },
      },
    },
  ],
  globalTeardown: "./global-teardown.ts",
  webServer: [
    {
      // The suite registers a few hundred users and loads many pages, all from 127.0.0.1.
      command: `"${bin}" --server-addr 127.0.0.1:${PORT} --server-site-root "${siteRoot}" --server-env dev --data-dir "${dataDir}" ${limits}`,
      url: `http://127.0.0.1:${PORT}/c/general`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "ignore",
      stderr: "pipe",
    },
    clusterInstance(PORT + 1),
    clusterInstance(PORT + 2),
    {
      command: `"${bin}" --server-addr 127.0.0.1:${PORT + 3} --server-site-root "${siteRoot}" --server-env dev --data-dir "${dataDir}-${PORT + 3}" ${limits} --data-retain-messages 100`,
      url: `http://127.0.0.1:${PORT + 3}/c/general`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "ignore",
      stderr: "pipe",
    },
    {
      command: `"${bin}" --server-addr 127.0.0.1:${PORT + 4} --server-site-root "${siteRoot}" --server-env dev --data-dir "${dataDir}-${PORT + 4}" --limits-message-burst 3 --limits-messages-per-second 1 --limits-registrations-per-hour 100000 --limits-pages-per-minute 100000`,
      url: `http://127.0.0.1:${PORT + 4}/c/general`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "ignore",
      stderr: "pipe",
    },
  ],
});
