// Finding people and presence: the People finder starts a private conversation on any
// screen size, and switching rooms takes you off the Online list of the room you left.
import { test, expect } from "@playwright/test";
import { User, openSidebar, unique } from "./fixtures/flack";

/** On a phone-sized screen, People finds someone registered (not online anywhere) and starts
 *  a private conversation with them; it reaches them, and only then is it in their list. */
test("a conversation starts from People at 390 px", async ({ browser }) => {
  const bob = await User.open(browser, "Bob");
  const bobDirects = bob.page.getByRole("navigation", { name: "Direct messages" });
  await bob.page.goto("/c/general");
  const ada = await User.open(browser, "Ada");
  await ada.page.setViewportSize({ width: 390, height: 844 });
  await openSidebar(ada.page);

  const people = ada.page.getByRole("button", { name: "People" });
  await expect(people).toBeVisible();
  await people.click();
  await ada.page.getByRole("searchbox", { name: "Find people" }).fill(bob.name.toUpperCase());
  const message = ada.page.getByRole("button", { name: `Message ${bob.name}` });
  await expect(message).toHaveCount(1);
  await message.click();
  await expect(ada.page.getByRole("heading", { level: 1 })).toHaveText(bob.name);
  // Opened but nothing sent: not in Bob's list yet.
  await bob.page.reload();
  await bob.waitConnected();
  await expect(bobDirects.getByRole("link", { name: ada.name, exact: true })).toHaveCount(0);

  await ada.send("found you through People");
  await expect(bobDirects.getByRole("link", { name: ada.name, exact: true })).toBeVisible();
  await bobDirects.getByRole("link", { name: ada.name, exact: true }).click();
  await expect(bob.log()).toContainText("found you through People");
  await ada.close();
  await bob.close();
});

/** Someone who switches to another channel leaves the Online list of the one they left
 *  within seconds, and appears in the new one's. */
test("switching rooms moves you between Online lists", async ({ browser }) => {
  const room = unique("elsewhere");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  await ada.openChannel("general");
  const bob = await User.open(browser, "Bob");
  const online = ada.page.getByRole("list", { name: "Online" });
  await expect(online).toContainText(bob.name);

  await bob.openChannel(room);
  await expect(online).not.toContainText(bob.name, { timeout: 3_000 });
  await ada.openChannel(room);
  await expect(online).toContainText(bob.name);
  await ada.close();
  await bob.close();
});
