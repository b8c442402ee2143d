// The page shows its connection state and, after the socket drops, reconnects by itself and
// fills in exactly the messages it missed.
import { test, expect } from "@playwright/test";
import { User, socketControl, unique } from "./fixtures/flack";

/** Messages sent while a user's connection is down appear once, in order, after it comes
 *  back, and the status says what is happening. */
test("a dropped connection reconnects and catches up", async ({ browser }) => {
  const name = unique("flaky");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(name);
  await ada.send("before the drop");

  const context = await browser.newContext();
  await context.addInitScript(socketControl);
  const page = await context.newPage();
  await page.goto(`/c/${name}`);
  const bob = new User(context, page, unique("Bob"));
  await bob.chooseName(bob.name);
  await bob.waitConnected();
  await expect(bob.log().getByRole("listitem")).toHaveCount(1);

  // Bob's browser goes offline: his socket drops and new ones fail.
  await context.setOffline(true);
  await page.evaluate(() => {
    for (const ws of (window as any).__sockets) ws.close();
  });
  await expect(page.getByRole("status")).toHaveText("Reconnecting…");

  for (const text of ["missed one", "missed two", "missed three"]) {
    await ada.send(text);
  }
  await expect(ada.log().getByRole("listitem")).toHaveCount(4);
  await expect(bob.log().getByRole("listitem")).toHaveCount(1);

  // The network comes back: Bob reconnects by himself and gets exactly what he missed.
  await context.setOffline(false);
  await expect(page.getByRole("status")).toHaveText("Connected", { timeout: 10_000 });
  const bodies = bob.log().locator(".body");
  await expect(bodies).toHaveText(["before the drop", "missed one", "missed two", "missed three"]);

  // And live messages flow again.
  await ada.send("after the return");
  await expect(bodies).toHaveCount(5);
  await expect(bodies.last()).toHaveText("after the return");
  await ada.close();
  await bob.close();
});

/** The page opens its socket while its WebAssembly is still on the way (the handshake
 *  overlaps the download), and the app takes that socket over rather than opening another:
 *  one page load, one connection, and messages flow through it. */
test("a page's socket opens before its WebAssembly arrives, and is the only one", async ({
  browser,
}) => {
  const name = unique("early");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(name);

  const context = await browser.newContext();
  await context.addInitScript(socketControl);
  const page = await context.newPage();
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route("**/*.wasm", async (route) => {
    await held;
    await route.continue();
  });
  await page.goto(`/c/${name}`);
  const OPEN = 1; // WebSocket.OPEN
  const states = () =>
    page.evaluate(() => (window as any).__sockets.map((ws: WebSocket) => ws.readyState));
  // No WebAssembly has run yet, and the socket is already open.
  await expect.poll(states).toEqual([OPEN]);
  await ada.send("sent while the page loads");
  release();

  const bob = new User(context, page, unique("Bob"));
  await bob.chooseName(bob.name);
  await bob.waitConnected();
  await expect(bob.log().locator(".body")).toHaveText(["sent while the page loads"]);
  await ada.send("and after");
  await expect(bob.log().locator(".body")).toHaveText(["sent while the page loads", "and after"]);
  expect(await states()).toEqual([OPEN]);
  await ada.close();
  await bob.close();
});
