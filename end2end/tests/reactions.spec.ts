// Issue 18, item 3: reactions. Every message offers "Add reaction" (on hover, focus and
// touch), which opens a dialog "Add reaction": common emoji and a search by shortcode name.
// A reaction shows as a button named by its emoji and count ("👍 2"), pressed when it is the
// reader's, with who reacted on hover; pressing it gives or takes away the reader's. Changes
// reach the other user live and stay after a reload.
import { test, expect, type Page } from "@playwright/test";
import { User, unique } from "./fixtures/flack";

const item = (user: User, text: string) =>
  user.log().getByRole("listitem").filter({ hasText: text });
const picker = (page: Page) => page.getByRole("dialog", { name: "Add reaction" });
/** The reaction `emoji` of the message holding `text`, whatever its count. */
const chip = (user: User, text: string, emoji: string) =>
  item(user, text).getByRole("button", { name: new RegExp(`^${emoji} \\d+$`) });

/** Ada reacts and Bob sees "👍 1" live, not pressed for him; Bob presses it ("👍 2", pressed
 *  for him, both names on hover); Ada takes hers away ("👍 1" for both); after a reload
 *  the counts stay. */
test("reactions are toggled live for everyone and stay", async ({ browser }) => {
  const room = unique("react");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob", `/c/${room}`);
  await bob.send("who wants lunch?");
  await expect(item(ada, "who wants lunch?")).toHaveCount(1);

  await item(ada, "who wants lunch?").getByRole("button", { name: "Add reaction" }).click();
  await expect(picker(ada.page)).toBeVisible();
  await picker(ada.page).getByRole("button", { name: "👍" }).click();
  await expect(picker(ada.page)).toHaveCount(0);

  await expect(chip(bob, "who wants lunch?", "👍")).toHaveAccessibleName("👍 1");
  await expect(chip(bob, "who wants lunch?", "👍")).toHaveAttribute("aria-pressed", "false");
  await expect(chip(ada, "who wants lunch?", "👍")).toHaveAttribute("aria-pressed", "true");
  await expect(chip(bob, "who wants lunch?", "👍")).toHaveAttribute("title", /Ada/);

  await chip(bob, "who wants lunch?", "👍").click();
  for (const user of [ada, bob]) {
    await expect(chip(user, "who wants lunch?", "👍")).toHaveAccessibleName("👍 2");
    await expect(chip(user, "who wants lunch?", "👍")).toHaveAttribute("title", /^Ada\S*, Bob\S* reacted with :\+1:$/);
  }
  await expect(chip(bob, "who wants lunch?", "👍")).toHaveAttribute("aria-pressed", "true");

  await chip(ada, "who wants lunch?", "👍").click();
  for (const user of [ada, bob]) {
    await expect(chip(user, "who wants lunch?", "👍")).toHaveAccessibleName("👍 1");
  }
  await expect(chip(ada, "who wants lunch?", "👍")).toHaveAttribute("aria-pressed", "false");
  await expect(chip(bob, "who wants lunch?", "👍")).toHaveAttribute("aria-pressed", "true");

  for (const user of [ada, bob]) {
    await user.page.reload();
    await user.waitConnected();
    await expect(chip(user, "who wants lunch?", "👍")).toHaveAccessibleName("👍 1");
  }
  await expect(chip(bob, "who wants lunch?", "👍")).toHaveAttribute("aria-pressed", "true");
  await expect(chip(ada, "who wants lunch?", "👍")).toHaveAttribute("aria-pressed", "false");
  await ada.close();
  await bob.close();
});

/** The picker works from the keyboard: the button is reached by focus, the search box has
 *  the focus, typing a shortcode name filters the emoji, Enter takes the first, Escape
 *  closes and gives the focus back to "Add reaction". */
test("the picker is keyboard-usable and Escape closes it", async ({ browser }) => {
  const room = unique("pick");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  await ada.send("ship it");
  const add = item(ada, "ship it").getByRole("button", { name: "Add reaction" });

  await add.focus();
  await expect(add).toBeVisible();
  await add.press("Enter");
  const search = picker(ada.page).getByRole("searchbox", { name: "Search emoji" });
  await expect(search).toBeFocused();
  await ada.page.keyboard.press("Escape");
  await expect(picker(ada.page)).toHaveCount(0);
  await expect(add).toBeFocused();

  await add.press("Enter");
  await expect(search).toBeFocused();
  await ada.page.keyboard.type("rock");
  await expect(picker(ada.page).getByRole("button", { name: "🚀" })).toBeVisible();
  await expect(picker(ada.page).getByRole("button", { name: "👍" })).toHaveCount(0);
  await ada.page.keyboard.press("Enter");
  await expect(picker(ada.page)).toHaveCount(0);
  await expect(chip(ada, "ship it", "🚀")).toHaveAccessibleName("🚀 1");
  await expect(add).toBeFocused();

  // Tab reaches the emoji of the grid; Space chooses one.
  await add.press("Enter");
  await ada.page.keyboard.press("Tab");
  await ada.page.keyboard.press("Space");
  await expect(picker(ada.page)).toHaveCount(0);
  await expect(chip(ada, "ship it", "👍")).toHaveAccessibleName("👍 1");
  await ada.close();
});

/** A message drawn anew because someone else changed it (a reaction, an edit) keeps the
 *  reader's keyboard focus: Bob is on "Add reaction" of Ada's message when Ada reacts to it
 *  and then edits it, and his focus is on that button each time, not on the page. */
test("the focus stays on a message someone else changes", async ({ browser }) => {
  const room = unique("keep");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob", `/c/${room}`);
  await ada.send("focus here");
  const bobs = item(bob, "focus here").getByRole("button", { name: "Add reaction" });
  await bobs.focus();
  await expect(bobs).toBeFocused();

  await item(ada, "focus here").getByRole("button", { name: "Add reaction" }).click();
  await picker(ada.page).getByRole("button", { name: "🎉" }).click();
  await expect(chip(bob, "focus here", "🎉")).toHaveAccessibleName("🎉 1");
  await expect(bobs).toBeFocused();

  await item(ada, "focus here").getByRole("button", { name: "Edit message" }).click();
  const edit = ada.page.getByRole("textbox", { name: "Edit message" });
  await edit.fill("focus still here");
  await edit.press("Enter");
  await expect(item(bob, "focus still here")).toContainText("(edited)");
  const after = item(bob, "focus still here").getByRole("button", { name: "Add reaction" });
  await expect(after).toBeFocused();
  await ada.close();
  await bob.close();
});
