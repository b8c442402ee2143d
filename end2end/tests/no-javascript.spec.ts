// Server-side rendering: the first load of a channel page is readable with JavaScript off.
import { test, expect } from "@playwright/test";
import { User, seedMessages, unique } from "./fixtures/flack";

/** With JavaScript disabled, a channel page still shows its heading, the channel list and
 *  its latest messages, because they arrive in the server's HTML. */
test("channel pages are readable without JavaScript", async ({ browser }) => {
  const ada = await User.open(browser, "Ada");
  const name = unique("static");
  await ada.createAndOpen(name);
  await seedMessages(ada.page, name, unique("Seeder"), 3);
  await ada.close();

  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`/c/${name}`);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(name);
  await expect(page.getByRole("navigation", { name: "Channels" }).getByRole("link", { name: "general", exact: true })).toBeVisible();
  const items = page.getByRole("log").getByRole("listitem");
  await expect(items).toHaveCount(3);
  await expect(items.last()).toContainText("message 3");
  await context.close();
});
