// Issue 18, item 2: edit and delete, for the author. One's own messages offer "Edit message"
// and "Delete message" buttons, reachable with the keyboard; an edit reaches the other user
// live, marked "(edited)" with its time on hover; Up in an empty box edits one's last
// message, Enter saves and Escape cancels; deleting asks first, in a dialog, and leaves the
// focus on the next message (or the box).
import { test, expect, type Page } from "@playwright/test";
import { User, unique } from "./fixtures/flack";

const box = (page: Page) => page.getByLabel("Message", { exact: true });
const editBox = (page: Page) => page.getByRole("textbox", { name: "Edit message" });
const item = (user: User, text: string) =>
  user.log().getByRole("listitem").filter({ hasText: text });

/** The text of the list item (message) holding the focus, if any. */
const focusedItem = (page: Page) =>
  page.evaluate(() => document.activeElement?.closest("li.entry")?.textContent ?? null);

/** Bob sees Ada's edit at once, with "(edited)" and the edit's time on hover; only Ada's
 *  own message offers the buttons; Enter saves, and the focus stays on that message. */
test("an edit reaches the other user live, marked edited", async ({ browser }) => {
  const room = unique("typo");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob", `/c/${room}`);
  await ada.send("helo everyone");
  await bob.send("hi Ada");
  await expect(item(bob, "helo everyone")).toHaveCount(1);
  await expect(item(bob, "helo everyone").getByRole("button", { name: "Edit message" })).toHaveCount(0);
  await expect(item(ada, "hi Ada").getByRole("button", { name: "Edit message" })).toHaveCount(0);

  await item(ada, "helo everyone").getByRole("button", { name: "Edit message" }).click();
  await expect(editBox(ada.page)).toBeFocused();
  await expect(editBox(ada.page)).toHaveValue("helo everyone");
  await editBox(ada.page).fill("hello **everyone**");
  await editBox(ada.page).press("Enter");
  await expect(editBox(ada.page)).toHaveCount(0);

  for (const user of [ada, bob]) {
    const edited = item(user, "hello everyone");
    await expect(edited).toHaveCount(1);
    await expect(edited.locator("strong")).toHaveText("everyone");
    await expect(edited.getByText("(edited)")).toBeVisible();
    await expect(edited.getByText("(edited)")).toHaveAttribute("title", /\d/);
    await expect(user.log()).not.toContainText("helo");
  }
  await expect(ada.page.getByRole("button", { name: "Edit message" }).first()).toBeFocused();

  // It stays edited for someone who loads the page afterwards.
  await bob.page.reload();
  await bob.waitConnected();
  await expect(item(bob, "hello everyone").getByText("(edited)")).toBeVisible();
  await ada.close();
  await bob.close();
});

/** Up in the empty box edits one's last message; Escape leaves it as it was and gives the
 *  box the focus back; Shift+Enter makes a new line, Enter saves. */
test("Up edits the last message, Escape cancels", async ({ browser }) => {
  const room = unique("upkey");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob", `/c/${room}`);
  await ada.send("first thought");
  await ada.send("second thought");
  await expect(item(bob, "second thought")).toHaveCount(1);

  await box(ada.page).focus();
  await box(ada.page).press("ArrowUp");
  await expect(editBox(ada.page)).toBeFocused();
  await expect(editBox(ada.page)).toHaveValue("second thought");
  await editBox(ada.page).pressSequentially(" (discarded)");
  await editBox(ada.page).press("Escape");
  await expect(editBox(ada.page)).toHaveCount(0);
  await expect(box(ada.page)).toBeFocused();
  await expect(ada.log()).not.toContainText("discarded");

  await box(ada.page).press("ArrowUp");
  await expect(editBox(ada.page)).toBeFocused();
  await editBox(ada.page).fill("second thought,");
  await editBox(ada.page).press("Shift+Enter");
  await editBox(ada.page).pressSequentially("on two lines");
  await editBox(ada.page).press("Enter");
  await expect(box(ada.page)).toBeFocused();
  const edited = item(bob, "on two lines");
  await expect(edited).toContainText("second thought,\non two lines");
  await expect(edited.getByText("(edited)")).toBeVisible();
  await expect(item(bob, "first thought").getByText("(edited)")).toHaveCount(0);

  // With words in the box, Up moves within them and edits nothing.
  await box(ada.page).fill("draft");
  await box(ada.page).press("ArrowUp");
  await expect(editBox(ada.page)).toHaveCount(0);
  await ada.close();
  await bob.close();
});

/** Deleting asks in a dialog; Cancel and Escape keep the message; "Delete" removes it for
 *  both users and the focus goes to the next message, or to the box after the last one. */
test("deleting asks first, then removes for everyone", async ({ browser }) => {
  const room = unique("tidy");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob", `/c/${room}`);
  await ada.send("one");
  await ada.send("two");
  await ada.send("three");
  await expect(item(bob, "three")).toHaveCount(1);
  const dialog = ada.page.getByRole("dialog");
  const deleteTwo = item(ada, "two").getByRole("button", { name: "Delete message" });

  await deleteTwo.click();
  await expect(dialog).toBeVisible();
  await expect(dialog).toHaveAttribute("aria-modal", "true");
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await expect(dialog).toHaveCount(0);
  await expect(deleteTwo).toBeFocused();
  await deleteTwo.press("Enter");
  await expect(dialog).toBeVisible();
  await ada.page.keyboard.press("Escape");
  await expect(dialog).toHaveCount(0);
  await expect(item(ada, "two")).toHaveCount(1);
  await expect(item(bob, "two")).toHaveCount(1);

  await deleteTwo.click();
  await dialog.getByRole("button", { name: "Delete", exact: true }).click();
  await expect(item(ada, "two")).toHaveCount(0);
  await expect(item(bob, "two")).toHaveCount(0);
  await expect.poll(() => focusedItem(ada.page)).toContain("three");

  await item(ada, "three").getByRole("button", { name: "Delete message" }).click();
  await dialog.getByRole("button", { name: "Delete", exact: true }).click();
  await expect(item(bob, "three")).toHaveCount(0);
  await expect(box(ada.page)).toBeFocused();
  await expect(item(bob, "one")).toHaveCount(1);
  await ada.close();
  await bob.close();
});

/** The buttons are reached with Tab, and shown while focused (not only on hover). */
test("message actions are reachable by keyboard", async ({ browser }) => {
  const room = unique("keys");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  await ada.send("reach me");
  const edit = item(ada, "reach me").getByRole("button", { name: "Edit message" });
  await expect(edit).toHaveCount(1);
  await ada.page.mouse.move(0, 0);
  await expect(edit).toHaveCSS("opacity", "0");

  await ada.log().focus();
  let reached = false;
  for (let i = 0; i < 10 && !reached; i++) {
    await ada.page.keyboard.press("Tab");
    reached = await edit.evaluate((el) => el === document.activeElement);
  }
  expect(reached).toBe(true);
  await expect(edit).not.toHaveCSS("opacity", "0");
  await ada.page.keyboard.press("Tab");
  await expect(item(ada, "reach me").getByRole("button", { name: "Delete message" })).toBeFocused();
  await ada.page.keyboard.press("Shift+Tab");
  await ada.page.keyboard.press("Enter");
  await expect(editBox(ada.page)).toBeFocused();
  await ada.page.keyboard.press("Escape");
  await expect(edit).toBeFocused();
  await ada.close();
});
