// Issue 17, item 1: history that lasts. Scrolling to the top of a room loads the previous
// page from the server's store, keeping the reader's place, down to "This is the beginning
// of #name"; a server keeping 100 messages per room says older ones are not kept.
import { test, expect, type Page } from "@playwright/test";
import { User, seedMessages, unique } from "./fixtures/flack";

/** The server started with `--data-retain-messages 100` (playwright.config.ts). */
const RETAIN_100 = `http://127.0.0.1:${Number(process.env.FLACK_E2E_PORT ?? 3100) + 3}`;

/** Scrolls the open room's log to its top. (The log scrolls from the bottom: its
 *  `scrollTop` is 0 at the newest message and negative above.) */
async function scrollToTop(page: Page): Promise<void> {
  await page.locator(".log-scroll").evaluate((el) => {
    el.scrollTop = -(el.scrollHeight - el.clientHeight);
  });
}

/** Where the text of the message whose text is `text` sits on screen, from the top of the
 *  window. (The text, not its list item: a day separator or an author's name above it moves
 *  to the first message when older ones go in above.) */
async function topOf(page: Page, text: string): Promise<number> {
  const box = await page
    .getByRole("log")
    .getByRole("listitem")
    .locator(".body")
    .getByText(text, { exact: true })
    .boundingBox();
  if (!box) throw new Error(`${text} is not on screen`);
  return box.y;
}

/** A room of 250 messages opens on its newest 100; scrolling up loads 100 more each time
 *  without moving what the reader was looking at, until the room's beginning, announced. */
test("scrolling back through 250 messages reaches the beginning", async ({ browser }) => {
  const ada = await User.open(browser, "Ada");
  const name = unique("long");
  await ada.createAndOpen(name);
  // Two seeders, so neither meets the posting allowance.
  await seedMessages(ada.page, name, unique("Seeder"), 125, 1);
  await seedMessages(ada.page, name, unique("Seeder"), 125, 126);

  const bob = await User.open(browser, "Bob", `/c/${name}`);
  const items = bob.log().getByRole("listitem");
  await expect(items).toHaveCount(100);
  await expect(items.first()).toContainText("message 151");
  await expect(items.last()).toContainText("message 250");
  await expect(bob.page.getByText(`This is the beginning of #${name}`)).toHaveCount(0);

  // The reader's place: where message 151 is on screen the moment the reader reaches the
  // top (read in the same task as the scroll, before any page can load) is where it stays
  // once the older page is drawn above it.
  const reached = await bob.page.locator(".log-scroll").evaluate((el) => {
    el.scrollTop = -(el.scrollHeight - el.clientHeight);
    const first = [...el.querySelectorAll("li .body")].find(
      (body) => body.textContent === "message 151",
    );
    return first?.getBoundingClientRect().top ?? -1;
  });
  expect(reached).toBeGreaterThan(0);
  await expect(items).toHaveCount(200);
  await expect(items.first()).toContainText("message 51");
  await bob.page.waitForTimeout(300);
  expect(Math.abs((await topOf(bob.page, "message 151")) - reached)).toBeLessThan(2);

  await scrollToTop(bob.page);
  await expect(items).toHaveCount(250);
  await expect(items.first()).toContainText("message 1");
  await expect(bob.page.getByText(`This is the beginning of #${name}`)).toBeVisible();

  // New messages still arrive at the bottom, and the older ones stay.
  await ada.send("still live");
  await expect(items).toHaveCount(251);
  await expect(items.last()).toContainText("still live");
  await ada.close();
  await bob.close();
});

/** A short room shows its beginning at once, with nothing to load. */
test("a short room starts at its beginning", async ({ browser }) => {
  const ada = await User.open(browser, "Ada");
  const name = unique("short");
  await ada.createAndOpen(name);
  await ada.send("hello");
  await expect(ada.page.getByText(`This is the beginning of #${name}`)).toBeVisible();
  await expect(ada.page.getByRole("button", { name: "Load older messages" })).toHaveCount(0);
  await ada.close();
});

/** With data.retain_messages = 100 the room shows its newest 100, exactly as before the
 *  archive, and its top says older messages are not kept. */
test("a server keeping 100 messages says older ones are not kept", async ({ browser }) => {
  const ada = await User.open(browser, "Ada", `${RETAIN_100}/c/general`);
  const name = unique("kept");
  await ada.createAndOpen(name);
  await seedMessages(ada.page, name, unique("Seeder"), 150);

  const bob = await User.open(browser, "Bob", `${RETAIN_100}/c/${name}`);
  const items = bob.log().getByRole("listitem");
  await expect(items).toHaveCount(100);
  await expect(items.first()).toContainText("message 51");
  await scrollToTop(bob.page);
  await expect(bob.page.getByText("Older messages are not kept on this server")).toBeVisible();
  await expect(items).toHaveCount(100);
  await expect(items.first()).toContainText("message 51");
  await ada.close();
  await bob.close();
});

/** One's own message read back from the store (older than the 100 the server holds in
 *  memory) offers no delete button, since the server could not delete it; a recent one does. */
test("only messages the server still holds can be deleted", async ({ browser }) => {
  const ada = await User.open(browser, "Ada");
  const name = unique("aging");
  await ada.createAndOpen(name);
  await ada.send("mine, and soon old");
  await expect(ada.log()).toContainText("mine, and soon old");
  await seedMessages(ada.page, name, unique("Seeder"), 100);
  await ada.page.reload();
  await ada.waitConnected();
  await scrollToTop(ada.page);
  const old = ada.log().getByRole("listitem").filter({ hasText: "mine, and soon old" });
  await expect(old).toHaveCount(1);
  await expect(old.getByRole("button", { name: "Delete message" })).toHaveCount(0);
  await ada.send("mine, and new");
  const recent = ada.log().getByRole("listitem").filter({ hasText: "mine, and new" });
  await expect(recent.getByRole("button", { name: "Delete message" })).toHaveCount(1);
  await ada.close();
});
