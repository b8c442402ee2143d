// Cluster mode in two real browsers: one person on each of two Flack instances sharing one
// PostgreSQL database and one Redis (started by playwright.config.ts).
import { test, expect } from "@playwright/test";
import { User, unique } from "./fixtures/flack";

const port = Number(process.env.FLACK_E2E_PORT ?? 3100);
const A = `http://127.0.0.1:${port + 1}`;
const B = `http://127.0.0.1:${port + 2}`;

/** Two people on two instances chat in a channel and in a private conversation; a channel
 *  made on one instance appears in the other's list, and a new name made on one is seen on
 *  the other, all live. */
test("two browsers on two instances chat as if on one server", async ({ browser }) => {
  const ada = await User.open(browser, "Ada", `${A}/c/general`);
  const bob = await User.open(browser, "Bob", `${B}/c/general`);

  const room = unique("across");
  await ada.createAndOpen(room);
  await expect(bob.channelNav().getByRole("link", { name: room, exact: true })).toBeVisible();
  await bob.openChannel(room);
  await ada.send("hello from the first instance");
  await expect(bob.log()).toContainText("hello from the first instance");
  await bob.send("and hello from the second");
  await expect(ada.log()).toContainText("and hello from the second");

  // Bob is online through the other instance, so Ada can start a conversation with him.
  const online = ada.page.getByRole("list", { name: "Online" });
  await online.getByRole("button", { name: `Message ${bob.name}` }).click();
  await expect(ada.page.getByRole("heading", { level: 1 })).toHaveText(bob.name);
  await ada.send("a word in private");
  const entry = bob.page
    .getByRole("navigation", { name: "Direct messages" })
    .getByRole("listitem")
    .filter({ hasText: ada.name });
  await entry.getByRole("link", { name: ada.name, exact: true }).click();
  await expect(bob.page.getByRole("heading", { level: 1 })).toHaveText(ada.name);
  await expect(bob.log()).toContainText("a word in private");
  await bob.send("heard you");
  await expect(ada.log()).toContainText("heard you");

  const renamed = unique("Robert");
  await bob.page.getByRole("button", { name: "Change display name" }).click();
  await bob.page.getByLabel("Display name").fill(renamed);
  await bob.page.getByRole("button", { name: "Save name" }).click();
  await expect(bob.page.getByText(`Signed in as ${renamed}`)).toBeVisible();
  const item = ada.log().getByRole("listitem").filter({ hasText: "heard you" });
  await expect(item.locator(".author")).toHaveText(renamed);
  await ada.close();
  await bob.close();
});
