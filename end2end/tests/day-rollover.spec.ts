// Issue 17, item 4: day separators follow the reader's clock while the page stays open.
import { test, expect } from "@playwright/test";
import { User, unique } from "./fixtures/flack";

/** A page left open past midnight renames its days: what was "Today" becomes "Yesterday"
 *  without a reload. (The page's clock is Playwright's: it runs at real time until the test
 *  moves it on to a moment past the next local midnight.) */
test("Today becomes Yesterday at midnight without a reload", async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.clock.install();
  await page.goto("/c/general");
  const ada = new User(context, page, unique("Night"));
  await ada.chooseName(ada.name);
  await ada.waitConnected();
  const channel = unique("late");
  await ada.createAndOpen(channel);
  await ada.send("just before midnight");
  const log = ada.log();
  await expect(log.getByRole("separator", { name: "Today" })).toBeVisible();

  const untilMidnight = await page.evaluate(() => {
    const now = new Date();
    const midnight = new Date(now);
    midnight.setHours(24, 0, 0, 0);
    return midnight.getTime() - now.getTime();
  });
  await page.clock.fastForward(untilMidnight + 1000);
  await expect(log.getByRole("separator", { name: "Yesterday" })).toBeVisible();
  await expect(log.getByRole("separator", { name: "Today" })).toHaveCount(0);
  await context.close();
});
