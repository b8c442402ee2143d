// Measures, in Chromium on loopback, the time from navigation to "connected": the page is
// hydrated, its socket is open and the channel's history is shown. Not a test (timings
// belong in BENCHMARKS.md, not in assertions): prints one JSON line with the results.
//
// Usage: node bench/time-to-connected.js http://127.0.0.1:3000 [runs]
const { chromium } = require("@playwright/test");

async function main() {
  const base = process.argv[2] ?? "http://127.0.0.1:3000";
  const runs = Number(process.argv[3] ?? 20);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--no-first-run"],
  });
  // One registered user, so the page goes straight to the channel without the prompt.
  const setup = await browser.newPage();
  await setup.goto(`${base}/c/general`);
  const name = `timer-${Date.now().toString(36)}`;
  const session = await setup.evaluate(async (name) => {
    const r = await fetch("/api/register", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({ name }).toString(),
    });
    const session = await r.json();
    // Fill the channel with 100 messages, so "history shown" means a full page of it.
    await new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${location.host}/ws`);
      let acked = 0;
      ws.onopen = () => {
        ws.send(JSON.stringify({ type: "auth", token: session.token }));
        for (let i = 0; i < 100; i++) {
          ws.send(JSON.stringify({ type: "send", room: { channel: "general" }, body: `message ${i}` }));
        }
      };
      ws.onmessage = (e) => {
        const event = JSON.parse(e.data);
        if (event.type === "error") reject(new Error(event.message));
        if (event.type === "ack" && ++acked === 100) { ws.close(); resolve(); }
      };
    });
    return session;
  }, name);
  await setup.close();

  const times = [];
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext();
    await context.addInitScript((session) => {
      localStorage.setItem("flack.session", JSON.stringify(session));
    }, session);
    const page = await context.newPage();
    await page.goto(`${base}/c/general`, { waitUntil: "commit" });
    await page.waitForFunction(
      () => {
        const status = document.querySelector('[role="status"]');
        const log = document.querySelector('[role="log"]');
        return status?.textContent === "Connected" && log !== null;
      },
      undefined,
      { polling: "raf" },
    );
    times.push(await page.evaluate(() => performance.now()));
    await context.close();
  }
  await browser.close();
  times.sort((a, b) => a - b);
  const pick = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  console.log(JSON.stringify({
    scenario: "time_to_connected",
    runs,
    min_ms: +times[0].toFixed(1),
    p50_ms: +pick(0.5).toFixed(1),
    p90_ms: +pick(0.9).toFixed(1),
    max_ms: +times[times.length - 1].toFixed(1),
  }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
