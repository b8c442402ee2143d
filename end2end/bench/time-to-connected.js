// Measures, in Chromium on loopback, the time from navigation to "connected": the page is
// hydrated, its socket is open and the channel's history is shown. Not a test (timings
// belong in BENCHMARKS.md, not in assertions): prints one JSON line with the results.
//
// The page times itself: a script installed before the page's own (`addInitScript`) watches
// the document and notes `performance.now()` (milliseconds since navigation began) when the
// status first reads "Connected" beside the message log, and again at the next animation
// frame, when that state is painted. It reports through the console, so Playwright evaluates
// nothing in the page while it loads. (Polling from Playwright with `waitForFunction`
// injected a 40 ms script into the page's main thread in the middle of hydration and then
// waited for a round trip, so it measured Playwright as well as Flack.)
//
// With "slow" as the third argument, each page gets a slow connection and a slow CPU, as
// Chromium's developer tools emulate them: 150 ms of latency, 1.6 Mb/s down and 750 kb/s
// up, and the CPU slowed four times.
//
// Usage: node bench/time-to-connected.js http://127.0.0.1:3000 [runs] [slow]
const { chromium } = require("@playwright/test");

async function main() {
  const base = process.argv[2] ?? "http://127.0.0.1:3000";
  const runs = Number(process.argv[3] ?? 20);
  const slow = process.argv[4] === "slow";
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

  const connected = [];
  const painted = [];
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext();
    await context.addInitScript((session) => {
      localStorage.setItem("flack.session", JSON.stringify(session));
      const isConnected = () =>
        document.querySelector('[role="status"]')?.textContent === "Connected" &&
        document.querySelector('[role="log"]') !== null;
      new MutationObserver((_, observer) => {
        if (!isConnected()) return;
        observer.disconnect();
        const at = performance.now();
        requestAnimationFrame(() => console.log(`flack-connected ${at} ${performance.now()}`));
      }).observe(document, { subtree: true, childList: true, characterData: true });
    }, session);
    const page = await context.newPage();
    if (slow) {
      const cdp = await context.newCDPSession(page);
      await cdp.send("Network.enable");
      await cdp.send("Network.emulateNetworkConditions", {
        offline: false,
        latency: 150,
        downloadThroughput: (1.6 * 1000 * 1000) / 8,
        uploadThroughput: (750 * 1000) / 8,
      });
      await cdp.send("Emulation.setCPUThrottlingRate", { rate: 4 });
    }
    const report = page.waitForEvent("console", {
      predicate: (m) => m.text().startsWith("flack-connected "),
      timeout: 30_000,
    });
    await page.goto(`${base}/c/general`, { waitUntil: "commit" });
    const [, at, frame] = (await report).text().split(" ");
    connected.push(Number(at));
    painted.push(Number(frame));
    await context.close();
  }
  await browser.close();
  const pick = (list, q) => {
    const sorted = [...list].sort((a, b) => a - b);
    return +sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(1);
  };
  console.log(JSON.stringify({
    scenario: slow ? "time_to_connected_slow" : "time_to_connected",
    runs,
    // Until the next frame after the state is reached: the figure BENCHMARKS.md reports.
    p50_ms: pick(painted, 0.5),
    p90_ms: pick(painted, 0.9),
    max_ms: pick(painted, 1),
    // Until the document reaches the state.
    state_p50_ms: pick(connected, 0.5),
    state_p90_ms: pick(connected, 0.9),
  }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
