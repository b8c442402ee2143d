// Issue 17, item 6: search. The sidebar's search box finds messages by words across the rooms
// the reader can read, never another pair's private conversation; each result names its room,
// author and text, and choosing one opens the room at that message, loading older pages when
// it is not among the newest.
import { test, expect, type Page } from "@playwright/test";
import { User, openSidebar, seedMessages, unique } from "./fixtures/flack";

/** Searches for `text` with the sidebar's search box and returns the results list, once
 *  the answer is in (the results panel is busy until then). */
async function search(page: Page, text: string) {
  await openSidebar(page);
  const box = page.getByRole("searchbox", { name: "Search messages" });
  await box.fill(text);
  await box.press("Enter");
  await expect(page.locator(".search-panel")).toHaveAttribute("aria-busy", "false");
  return page.getByRole("list", { name: "Search results" });
}

/** Starts (or opens) a private conversation with `name` from People. */
async function message(user: User, name: string): Promise<void> {
  await user.page.getByRole("button", { name: "People" }).click();
  await user.page.getByRole("searchbox", { name: "Find people" }).fill(name);
  await user.page.getByRole("button", { name: `Message ${name}` }).click();
  await expect(user.page.getByRole("heading", { level: 1 })).toHaveText(name);
}

/** Three people: Ada posts a word in a channel and in her private conversation with Bob.
 *  Bob finds both, each naming its room, author and text; Eve, a third person, finds only the
 *  channel's, whatever she types; choosing her result opens the channel at that message. */
test("search results respect privacy", async ({ browser }) => {
  const word = unique("quokka").replace("-", "");
  const room = unique("search");
  const ada = await User.open(browser, "Ada");
  const bob = await User.open(browser, "Bob");
  const eve = await User.open(browser, "Eve");
  await ada.createAndOpen(room);
  await ada.send(`the ${word} migration is done`);
  await message(ada, bob.name);
  await ada.send(`between us: ${word} secrets`);
  await expect(ada.log()).toContainText("secrets");

  const bobs = await search(bob.page, word);
  await expect(bobs.getByRole("listitem")).toHaveCount(2);
  // Newest first: the private message, named after the other participant.
  await expect(bobs.getByRole("listitem").nth(0)).toContainText(ada.name);
  await expect(bobs.getByRole("listitem").nth(0)).toContainText(`between us: ${word} secrets`);
  await expect(bobs.getByRole("listitem").nth(1)).toContainText(`#${room}`);
  await expect(bobs.getByRole("listitem").nth(1)).toContainText(ada.name);
  await expect(bobs.getByRole("listitem").nth(1)).toContainText(`the ${word} migration is done`);
  // Bob's private result opens his conversation with Ada at that message.
  await bobs.getByRole("link", { name: /secrets/ }).click();
  await expect(bob.page.getByRole("heading", { level: 1 })).toHaveText(ada.name);
  await expect(bob.log().locator("[data-found]")).toContainText(`between us: ${word} secrets`);

  for (const guess of [word, `${word} secrets`, `"${word}" OR secrets`, `${ada.name} ${bob.name} ${word}`]) {
    const eves = await search(eve.page, guess);
    await expect(eve.page.getByText(/messages? found|No messages match/)).toBeVisible();
    await expect(eves).not.toContainText("secrets");
    await expect(eves.getByRole("listitem")).toHaveCount(guess === word ? 1 : 0);
  }
  const eves = await search(eve.page, word);
  await expect(eves.getByRole("listitem")).toHaveCount(1);
  await eves.getByRole("link", { name: new RegExp(`migration is done`) }).click();
  await expect(eve.page.getByRole("heading", { level: 1 })).toHaveText(room);
  const found = eve.log().locator("[data-found]");
  await expect(found).toContainText(`the ${word} migration is done`);
  await expect(found).toBeInViewport();

  // Text that is only punctuation or query syntax gets a plain answer.
  const box = eve.page.getByRole("searchbox", { name: "Search messages" });
  await box.fill('" * (');
  await box.press("Enter");
  await expect(eve.page.locator(".search").getByRole("alert")).toHaveText("Type a word to search for.");
  await ada.close();
  await bob.close();
  await eve.close();
});

/** A result older than the newest 100 messages opens its room with older pages loaded until
 *  the message is there, scrolled into view; the search box works on a phone-sized screen. */
test("a result among older messages opens the room at it, at 390 px", async ({ browser }) => {
  const word = unique("wombat").replace("-", "");
  const room = unique("deep");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  await ada.send(`early ${word} note`);
  await expect(ada.log()).toContainText(`early ${word} note`);
  await seedMessages(ada.page, room, unique("Seeder"), 150);
  const bob = await User.open(browser, "Bob");
  await bob.page.setViewportSize({ width: 390, height: 844 });
  const results = await search(bob.page, word);
  await expect(results.getByRole("listitem")).toHaveCount(1);
  await results.getByRole("link").click();
  await expect(bob.page.getByRole("heading", { level: 1 })).toHaveText(room);
  const found = bob.log().locator("[data-found]");
  await expect(found).toContainText(`early ${word} note`, { timeout: 10_000 });
  await expect(found).toBeInViewport();
  await ada.close();
  await bob.close();
});
