// Issue 18, item 4: replies. Every message offers "Reply" (on hover, focus and touch); the
// box then shows "Replying to {author}" (Cancel, or Escape in the box, stops), and the
// message sent shows above its text a button "Reply to {author}: {excerpt}", for everyone,
// live. Pressing it brings the original into view and highlights it, loading older messages
// if need be; once the original is known deleted, or older than the server keeps, it says so.
import { test, expect, type Page } from "@playwright/test";
import { User, seedMessages, unique } from "./fixtures/flack";

/** The server started with `--data-retain-messages 100` (playwright.config.ts). */
const RETAIN_100 = `http://127.0.0.1:${Number(process.env.FLACK_E2E_PORT ?? 3100) + 3}`;

/** The entry of the message whose own text (not a quote of it) holds `text`. */
const item = (user: User, text: string) =>
  user.log().getByRole("listitem").filter({ has: user.page.locator(".body", { hasText: text }) });
/** The quote in the reply whose text holds `text`. */
const quote = (user: User, text: string) =>
  item(user, text).getByRole("button", { name: /^Reply to / });
const replying = (page: Page) => page.locator(".composer .replying");
const box = (page: Page) => page.getByLabel("Message", { exact: true });

/** Bob replies to Ada's message with its Reply button (the box says whom he answers and
 *  has the focus); both see the quote live, named "Reply to Ada: {excerpt}" (formatting
 *  marks left out). Ada deletes the original: both replies say so, live and after a
 *  reload. */
test("a reply quotes its original for everyone and says when it is deleted", async ({ browser }) => {
  const room = unique("reply");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob", `/c/${room}`);
  await ada.send("the plan is **ready**\nsecond line");
  await expect(item(bob, "the plan is ready")).toHaveCount(1);

  await item(bob, "the plan is ready").getByRole("button", { name: "Reply", exact: true }).click();
  await expect(replying(bob.page)).toContainText(`Replying to ${ada.name}`);
  await expect(replying(bob.page)).toContainText("the plan is ready");
  await expect(box(bob.page)).toBeFocused();
  await bob.page.keyboard.type("great news");
  await bob.page.keyboard.press("Enter");
  await expect(replying(bob.page)).toHaveCount(0);

  const name = `Reply to ${ada.name}: the plan is ready`;
  for (const user of [ada, bob]) {
    await expect(quote(user, "great news")).toHaveAccessibleName(name);
    await expect(quote(user, "great news")).not.toContainText("Original message");
  }

  await item(ada, "the plan is ready").getByRole("button", { name: "Delete message" }).click();
  await ada.page.getByRole("dialog").getByRole("button", { name: "Delete", exact: true }).click();
  await expect(item(ada, "the plan is ready")).toHaveCount(0);
  for (const user of [ada, bob]) {
    await expect(quote(user, "great news")).toContainText("Original message deleted");
    await expect(quote(user, "great news")).toHaveAccessibleName(`${name} (Original message deleted)`);
  }
  await bob.page.reload();
  await bob.waitConnected();
  await expect(quote(bob, "great news")).toContainText("Original message deleted");
  await ada.close();
  await bob.close();
});

/** With 90 messages between them, pressing the quote scrolls the log up to the original and
 *  highlights it; with 58 more below the reply, after a reload the original is older than
 *  the messages shown, and pressing the quote loads older ones until it is there. */
test("pressing the quote brings the original into view, loading older messages", async ({ browser }) => {
  const room = unique("far");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  await ada.send("the very first word");
  await expect(item(ada, "the very first word")).toHaveCount(1);
  await seedMessages(ada.page, room, unique("Seeder"), 90);
  const bob = await User.open(browser, "Bob", `/c/${room}`);
  await expect(bob.log().getByRole("listitem")).toHaveCount(91);

  await item(bob, "the very first word").getByRole("button", { name: "Reply", exact: true }).click();
  await box(bob.page).fill("answering the start");
  await box(bob.page).press("Enter");
  await expect(quote(ada, "answering the start")).toHaveAccessibleName(
    `Reply to ${ada.name}: the very first word`,
  );
  await expect(item(bob, "the very first word")).not.toBeInViewport();
  await quote(bob, "answering the start").click();
  const found = bob.log().locator("[data-found]");
  await expect(found).toContainText("the very first word");
  await expect(found).toBeInViewport();

  // 58 more: the log opens on the newest 100 (from message 51), the reply far from its top
  // (where scrolling would load older messages by itself), the original above them.
  await seedMessages(ada.page, room, unique("Seeder"), 58, 91);
  await bob.page.reload();
  await bob.waitConnected();
  await expect(item(bob, "the very first word")).toHaveCount(0);
  await quote(bob, "answering the start").click();
  await expect(found).toContainText("the very first word", { timeout: 10_000 });
  await expect(found).toBeInViewport();
  await expect(quote(bob, "answering the start")).not.toContainText("Original message");
  await ada.close();
  await bob.close();
});

/** Escape in the box, or Cancel, stops replying (the focus stays in, or goes back to, the
 *  box), and the message then sent is no reply. */
test("replying can be cancelled", async ({ browser }) => {
  const room = unique("cancel");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  await ada.send("ask me anything");
  const reply = item(ada, "ask me anything").getByRole("button", { name: "Reply", exact: true });

  await reply.focus();
  await expect(reply).toBeVisible();
  await reply.press("Enter");
  await expect(replying(ada.page)).toContainText(`Replying to ${ada.name}`);
  await expect(box(ada.page)).toBeFocused();
  await ada.page.keyboard.press("Escape");
  await expect(replying(ada.page)).toHaveCount(0);

  await reply.click();
  await replying(ada.page).getByRole("button", { name: "Cancel reply" }).click();
  await expect(replying(ada.page)).toHaveCount(0);
  await expect(box(ada.page)).toBeFocused();
  await ada.send("no quote here");
  await expect(item(ada, "no quote here")).toHaveCount(1);
  await expect(quote(ada, "no quote here")).toHaveCount(0);
  await ada.close();
});

/** On a server keeping 100 messages per room, a reply whose original has fallen out says,
 *  once the log has asked for older messages, that the original is no longer kept (and
 *  its quote is then disabled). */
test("a reply says when its original is no longer kept", async ({ browser }) => {
  const ada = await User.open(browser, "Ada", `${RETAIN_100}/c/general`);
  const room = unique("kept");
  await ada.createAndOpen(room);
  await ada.send("soon forgotten");
  await item(ada, "soon forgotten").getByRole("button", { name: "Reply", exact: true }).click();
  await ada.send("still here");
  await expect(quote(ada, "still here")).toHaveCount(1);
  await seedMessages(ada.page, room, unique("Seeder"), 99);
  await ada.page.reload();
  await ada.waitConnected();
  await expect(ada.log().getByRole("listitem")).toHaveCount(100);
  // The page does not say yet whether older messages are kept; scrolled up to the reply (the
  // oldest shown), the log asks, and the server says they are not.
  await quote(ada, "still here").scrollIntoViewIfNeeded();
  await expect(quote(ada, "still here")).toContainText("Original message is no longer kept");
  await expect(quote(ada, "still here")).toHaveAccessibleName(
    `Reply to ${ada.name}: soon forgotten (Original message is no longer kept)`,
  );
  await expect(quote(ada, "still here")).toBeDisabled();
  await ada.close();
});
