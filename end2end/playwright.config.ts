// Playwright configuration: one Chromium project (Debian's browser, no download), one worker
// on this 2-core machine, and a real Flack server started for the run.
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
  webServer: {
    // The suite registers a few hundred users and loads many pages, all from 127.0.0.1.
    command: `"${bin}" --server-addr 127.0.0.1:${PORT} --server-site-root "${siteRoot}" --server-env dev --data-dir "${dataDir}" --limits-message-burst 200 --limits-registrations-per-hour 100000 --limits-pages-per-minute 100000`,
    url: `http://127.0.0.1:${PORT}/c/general`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: "ignore",
    stderr: "pipe",
  },
});
