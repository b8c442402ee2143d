// Requirement 6: closing the browser on a channel and reopening the site's root lands the
// user back in that channel.
import { test, expect } from "@playwright/test";
import { User, unique } from "./fixtures/flack";

/** The last channel opened is where the site's root leads next time. */
test("the site's root returns to the last channel", async ({ browser }) => {
  const ada = await User.open(browser, "Ada", "/");
  await expect(ada.page).toHaveURL(/\/c\/general$/);
  const name = unique("return");
  await ada.createAndOpen(name);
  const state = await ada.context.storageState();
  await ada.close();

  const context = await browser.newContext({ storageState: state });
  const page = await context.newPage();
  await page.goto("/");
  await expect(page).toHaveURL(new RegExp(`/c/${name}$`));
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(name);
  await expect(page.getByRole("dialog")).toHaveCount(0);
  await context.close();
});
