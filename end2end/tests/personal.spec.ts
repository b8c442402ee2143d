// The personal touches: unique names, deleting one's own messages, private conversations,
// renaming, and who is online.
import { test, expect } from "@playwright/test";
import { User, unique } from "./fixtures/flack";

/** A display name already in use (in any case) is refused with a clear message. */
test("display names are unique", async ({ browser }) => {
  const ada = await User.open(browser, "Ada");
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto("/c/general");
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Display name").fill(ada.name.toUpperCase());
  await dialog.getByRole("button", { name: "Start chatting" }).click();
  await expect(dialog.getByRole("alert")).toHaveText(
    `The display name “${ada.name}” is taken; choose another.`,
  );
  await expect(dialog).toBeVisible();
  await context.close();
  await ada.close();
});

/** Only one's own messages have a delete button; deleting (once confirmed) removes the
 *  message for the other user at once, and it stays gone after a reload. */
test("deleting one's own message removes it for everyone", async ({ browser }) => {
  const room = unique("tidy");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob", `/c/${room}`);

  await ada.send("oops, wrong channel");
  await bob.send("hello from Bob");
  const adaItem = ada.log().getByRole("listitem").filter({ hasText: "oops, wrong channel" });
  const bobSeesAda = bob.log().getByRole("listitem").filter({ hasText: "oops, wrong channel" });
  await expect(bobSeesAda).toHaveCount(1);
  await expect(bobSeesAda.getByRole("button", { name: "Delete message" })).toHaveCount(0);
  await expect(
    ada.log().getByRole("listitem").filter({ hasText: "hello from Bob" }).getByRole("button", { name: "Delete message" }),
  ).toHaveCount(0);

  await adaItem.getByRole("button", { name: "Delete message" }).click();
  await ada.page.getByRole("dialog").getByRole("button", { name: "Delete", exact: true }).click();
  await expect(adaItem).toHaveCount(0);
  await expect(bobSeesAda).toHaveCount(0);
  await expect(bob.log().getByRole("listitem")).toHaveCount(1);

  await bob.page.reload();
  await expect(bob.log().getByRole("listitem")).toHaveCount(1);
  await expect(bob.log()).not.toContainText("oops, wrong channel");
  await ada.close();
  await bob.close();
});

/** A private conversation opened from the Online list reaches the other user, with an unread
 *  count until opened; a third user never sees it. */
test("private messages reach only the two participants", async ({ browser }) => {
  const room = unique("lobby");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob", `/c/${room}`);
  const eve = await User.open(browser, "Eve", `/c/${room}`);

  const online = ada.page.getByRole("list", { name: "Online" });
  await expect(online.getByRole("listitem")).toHaveCount(3);
  await expect(online.getByRole("button", { name: `Message ${ada.name}` })).toHaveCount(0);
  await online.getByRole("button", { name: `Message ${bob.name}` }).click();
  await expect(ada.page.getByRole("heading", { level: 1 })).toHaveText(bob.name);
  await ada.send("the surprise party is on Friday");

  const bobDirects = bob.page.getByRole("navigation", { name: "Direct messages" });
  const entry = bobDirects.getByRole("listitem").filter({ hasText: ada.name });
  await expect(entry.getByRole("link", { name: ada.name, exact: true })).toBeVisible();
  await expect(entry).toContainText("1");
  await entry.getByRole("link", { name: ada.name, exact: true }).click();
  await expect(bob.page.getByRole("heading", { level: 1 })).toHaveText(ada.name);
  await expect(bob.log()).toContainText("the surprise party is on Friday");
  await expect(entry.locator(".counts")).toHaveCount(0);

  // The conversation is remembered as the last place Bob was.
  const back = await browser.newContext({ storageState: await bob.context.storageState() });
  const again = await back.newPage();
  await again.goto("/");
  await expect(again).toHaveURL(/\/dm\/\d+$/);
  await expect(again.getByRole("heading", { level: 1 })).toHaveText(ada.name);
  await back.close();

  // Eve sees nothing of it: not in her sidebar, not in the channel, not by guessing the page.
  await expect(eve.page.getByRole("navigation", { name: "Direct messages" }).getByRole("link")).toHaveCount(0);
  await expect(eve.log()).not.toContainText("surprise party");
  const bobId = new URL(ada.page.url()).pathname.split("/").pop();
  await eve.page.goto(`/dm/${bobId}`);
  await expect(eve.page.getByRole("heading", { level: 1 })).toHaveText(bob.name);
  await expect(eve.page.getByText("No messages yet. Say hello!")).toBeVisible();
  await expect(eve.page.locator("body")).not.toContainText("surprise party");
  await ada.close();
  await bob.close();
  await eve.close();
});

/** Changing one's display name shows the new name on one's messages and in the Online list
 *  of another browser, live. */
test("a new display name is seen live", async ({ browser }) => {
  const room = unique("names");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob", `/c/${room}`);
  await ada.send("hi, it's me");
  const item = bob.log().getByRole("listitem").filter({ hasText: "hi, it's me" });
  await expect(item.locator(".author")).toHaveText(ada.name);

  const renamed = unique("Countess");
  await ada.page.getByRole("button", { name: "Change display name" }).click();
  await ada.page.getByLabel("Display name").fill(renamed);
  await ada.page.getByRole("button", { name: "Save name" }).click();
  await expect(ada.page.getByText(`Signed in as ${renamed}`)).toBeVisible();
  await expect(item.locator(".author")).toHaveText(renamed);
  await expect(bob.page.getByRole("list", { name: "Online" })).toContainText(renamed);
  await expect(bob.page.getByRole("list", { name: "Online" })).not.toContainText(ada.name);

  // A taken name is refused and changes nothing.
  await ada.page.getByRole("button", { name: "Change display name" }).click();
  await ada.page.getByLabel("Display name").fill(bob.name);
  await ada.page.getByRole("button", { name: "Save name" }).click();
  await expect(ada.page.locator("form.rename").getByRole("alert")).toContainText("is taken");
  await expect(item.locator(".author")).toHaveText(renamed);
  await ada.close();
  await bob.close();
});

/** The Online list shows who is in the channel and drops a user whose browser closes. */
test("the online list follows people coming and going", async ({ browser }) => {
  const room = unique("desk");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const online = ada.page.getByRole("list", { name: "Online" });
  await expect(online.getByRole("listitem")).toHaveText([ada.name]);

  const bob = await User.open(browser, "Bob", `/c/${room}`);
  await expect(online.getByRole("listitem")).toHaveCount(2);
  await expect(online).toContainText(bob.name);
  await bob.close();
  await expect(online.getByRole("listitem")).toHaveCount(1);
  await expect(online).not.toContainText(bob.name);
  await ada.close();
});
