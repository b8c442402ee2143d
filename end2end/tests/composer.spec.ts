// Issue 18, item 6: a composer that keeps your words. The box grows with them up to half the
// window; each room keeps its own unsent draft, across room switches and reloads; a message
// the server refuses, or that the connection loses, comes back into the box with the reason,
// and the reason goes once it no longer applies; a pasted image is attached. And item 8: the
// box has the focus after registering, creating or opening a room.
import { test, expect, type Page } from "@playwright/test";
import { User, socketControl, unique } from "./fixtures/flack";

/** A server allowing a burst of 3 messages, then 1 a second (see playwright.config.ts). */
const SLOW = `http://127.0.0.1:${Number(process.env.FLACK_E2E_PORT ?? 3100) + 4}`;
const TOO_FAST = "You are sending messages too fast; wait a moment and try again.";
const OFFLINE = "Not connected right now; your message was not sent.";

const box = (page: Page) => page.getByLabel("Message", { exact: true });
const reason = (page: Page) => page.locator("form.composer").getByRole("alert");
const lines = (count: number) => Array.from({ length: count }, (_, i) => `line ${i + 1}`).join("\n");

/** The box's size: its height on screen, what it shows and what its words need. */
const size = (page: Page) =>
  box(page).evaluate((el) => ({
    height: el.getBoundingClientRect().height,
    client: el.clientHeight,
    scroll: el.scrollHeight,
    window: window.innerHeight,
  }));

/** An eight-line draft is shown whole (the box grew for it, and was focused once the name
 *  was chosen); a very long one stops the box at about half the window, which then scrolls. */
test("the box grows with its words up to half the window", async ({ browser }) => {
  const ada = await User.open(browser, "Ada");
  await expect(box(ada.page)).toBeFocused();
  const empty = await size(ada.page);
  await box(ada.page).fill(lines(8));
  const eight = await size(ada.page);
  expect(eight.scroll).toBeLessThanOrEqual(eight.client + 1);
  expect(eight.height).toBeGreaterThan(empty.height * 2.5);

  await box(ada.page).fill(lines(200));
  const long = await size(ada.page);
  expect(long.height).toBeLessThanOrEqual(long.window / 2 + 1);
  expect(long.height).toBeGreaterThan(long.window * 0.45);
  expect(long.scroll).toBeGreaterThan(long.client);
  await ada.close();
});

/** Words left in one room's box wait there while the user writes in another, come back
 *  when the room is opened again and after a reload, and are gone once sent. */
test("each room keeps its own draft, across room switches and reloads", async ({ browser }) => {
  const one = unique("draft");
  const two = unique("draft");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(one);
  await expect(box(ada.page)).toBeFocused();
  await box(ada.page).pressSequentially("half a thought");
  await box(ada.page).press("Shift+Enter");
  await box(ada.page).pressSequentially("for the first room");
  const first = "half a thought\nfor the first room";

  await ada.createAndOpen(two);
  await expect(box(ada.page)).toHaveValue("");
  await box(ada.page).pressSequentially("words for two");
  await ada.openChannel(one);
  await expect(box(ada.page)).toBeFocused();
  await expect(box(ada.page)).toHaveValue(first);

  await ada.page.reload();
  await ada.waitConnected();
  await expect(box(ada.page)).toHaveValue(first);
  await ada.openChannel(two);
  await expect(box(ada.page)).toHaveValue("words for two");

  await box(ada.page).press("Enter");
  await expect(ada.log()).toContainText("words for two");
  await expect(box(ada.page)).toHaveValue("");
  await ada.page.reload();
  await ada.waitConnected();
  await expect(box(ada.page)).toHaveValue("");
  await ada.openChannel(one);
  await expect(box(ada.page)).toHaveValue(first);
  await ada.close();
});

/** Six quick messages on a server allowing a burst of three: those refused come back into
 *  the box with the server's reason, so every word is either posted or still in the box.
 *  Sent again a moment later, they are posted and the reason goes. */
test("a message refused as too fast stays in the box until it is sent", async ({ browser }) => {
  const ada = await User.open(browser, "Ada", `${SLOW}/c/general`);
  const room = unique("quick");
  await ada.createAndOpen(room);
  const words = Array.from({ length: 6 }, (_, i) => unique(`word${i + 1}`));
  for (const word of words) {
    await box(ada.page).pressSequentially(word);
    await box(ada.page).press("Enter");
  }
  await expect(reason(ada.page)).toHaveText(TOO_FAST);
  await expect(box(ada.page)).not.toHaveValue("");
  await expect
    .poll(async () => {
      const held = await box(ada.page).inputValue();
      const posted = (await ada.log().textContent()) ?? "";
      return words.filter((w) => !held.includes(w) && !posted.includes(w));
    }, { message: "every word is posted or back in the box" })
    .toEqual([]);

  await ada.page.waitForTimeout(1500);
  await box(ada.page).press("Enter");
  await expect(box(ada.page)).toHaveValue("");
  await expect(reason(ada.page)).toBeHidden();
  for (const word of words) await expect(ada.log()).toContainText(word);
  await ada.close();
});

/** A message on its way when the connection drops comes back into the box with "not
 *  connected", as does one sent while offline; the reason goes once the connection is back,
 *  and the message is then posted once. */
test("a message the connection lost stays in the box until it is sent", async ({ browser }) => {
  const context = await browser.newContext();
  await context.addInitScript(socketControl);
  const page = await context.newPage();
  await page.goto("/c/general");
  const ada = new User(context, page, unique("Ada"));
  await ada.chooseName(ada.name);
  await ada.waitConnected();
  await ada.createAndOpen(unique("lossy"));

  // The send is lost on the way, then the connection drops before any answer.
  await page.evaluate(() => ((window as any).__holdSends = true));
  await box(page).fill("into the void");
  await box(page).press("Enter");
  await expect(box(page)).toHaveValue("");
  await context.setOffline(true);
  await page.evaluate(() => {
    (window as any).__holdSends = false;
    for (const ws of (window as any).__sockets) ws.close();
  });
  await expect(page.getByRole("status")).toHaveText("Reconnecting…");
  await expect(box(page)).toHaveValue("into the void");
  await expect(reason(page)).toHaveText(OFFLINE);

  // Sending while offline keeps the words too.
  await box(page).press("End");
  await box(page).pressSequentially(", again");
  await box(page).press("Enter");
  await expect(box(page)).toHaveValue("into the void, again");
  await expect(reason(page)).toHaveText(OFFLINE);

  await context.setOffline(false);
  await expect(page.getByRole("status")).toHaveText("Connected", { timeout: 10_000 });
  await expect(reason(page)).toBeHidden();
  await expect(box(page)).toHaveValue("into the void, again");
  await box(page).press("Enter");
  await expect(box(page)).toHaveValue("");
  await expect(ada.log().getByText("into the void, again")).toHaveCount(1);
  await expect(ada.log().getByText("into the void", { exact: true })).toHaveCount(0);
  await ada.close();
});

/** An image pasted into the box (a file on the clipboard) is uploaded and goes with the next
 *  message. */
test("pasting an image attaches it", async ({ browser }) => {
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(unique("paste"));
  await ada.page.evaluate(() => {
    const png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
    document
      .getElementById("message-input")!
      .dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
  });
  await expect(ada.page.getByText("pasted.png (", { exact: false })).toBeVisible();
  await ada.send("see the picture");
  await expect(ada.log().getByRole("img", { name: "pasted.png" })).toBeVisible();
  await ada.close();
});
