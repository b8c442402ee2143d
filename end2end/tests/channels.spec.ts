// Requirements 2 and 3: anyone creates channels, names never conflict, bad names get a clear
// message, and every open browser's channel list updates live.
import { test, expect } from "@playwright/test";
import { User, unique } from "./fixtures/flack";

/** Creating a channel opens it; the same name in another case or with spaces is refused with
 *  a message next to the form, and the list still holds one such channel. */
test("channel names never conflict", async ({ browser }) => {
  const ada = await User.open(browser, "Ada");
  const name = unique("Ops");
  await ada.createChannel(name);
  await expect(ada.page).toHaveURL(new RegExp(`/c/${name}$`));
  await expect(ada.page.getByRole("heading", { level: 1 })).toHaveText(name);
  await expect(ada.channelNav().getByRole("link", { name, exact: true })).toBeVisible();

  await ada.createChannel(`  ${name.toLowerCase()} `);
  const form = ada.page.locator("form.new-channel");
  await expect(form.getByRole("alert")).toHaveText(`A channel named “${name}” already exists.`);
  await expect(ada.channelNav().getByRole("link", { name: new RegExp(name, "i") })).toHaveCount(1);
  await expect(ada.page.getByRole("heading", { level: 1 })).toHaveText(name);
  await ada.close();
});

/** Empty, too long and control-character names are refused with a clear message and create
 *  nothing. */
test("invalid channel names are refused", async ({ browser }) => {
  const ada = await User.open(browser, "Ada");
  const form = ada.page.locator("form.new-channel");
  const before = await ada.channelNav().getByRole("link").count();

  await ada.createChannel("   ");
  await expect(form.getByRole("alert")).toHaveText("Channel names can't be empty.");

  await ada.createChannel("x".repeat(41));
  await expect(form.getByRole("alert")).toHaveText("Channel names can be at most 40 characters long.");

  await ada.createChannel("bad\u0007name");
  await expect(form.getByRole("alert")).toContainText("can't contain control characters");

  await expect(ada.channelNav().getByRole("link")).toHaveCount(before);
  await expect(ada.page.getByRole("heading", { level: 1 })).toHaveText("general");
  await ada.close();
});

/** A channel created in one browser appears in another browser's list without a reload,
 *  and can be opened there. */
test("channel list updates live in every browser", async ({ browser }) => {
  const ada = await User.open(browser, "Ada");
  const bob = await User.open(browser, "Bob");
  const name = unique("launch");
  await ada.createChannel(name);
  await expect(bob.channelNav().getByRole("link", { name, exact: true })).toBeVisible();
  await bob.openChannel(name);
  await expect(bob.page).toHaveURL(new RegExp(`/c/${name}$`));
  await ada.close();
  await bob.close();
});
