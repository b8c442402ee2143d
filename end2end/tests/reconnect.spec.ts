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
