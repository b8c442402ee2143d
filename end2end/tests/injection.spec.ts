// Hostile input: names, channel names, messages and file names full of markup, script,
// javascript: links, direction overrides and very long unbroken strings render as inert text
// in another user's browser and never break the layout.
import { test, expect } from "@playwright/test";
import { User, watchedPage } from "./fixtures/flack";

const HOSTILE_MESSAGES = [
  "<script>window.pwn()</script>",
  '<img src=x onerror="window.pwn()">',
  "[click me](javascript:window.pwn())",
  "javascript:window.pwn()",
  "abc\u202Egnp.exe",
  "W".repeat(3000),
];

/** Markup planted by one user shows literally in another user's browser, no script runs,
 *  and nothing overflows the page sideways. */
test("hostile text stays inert", async ({ browser }) => {
  const { context, page, errors, pwned } = await watchedPage(browser);

  const mallory = await User.open(browser, "<b>M</b>");
  const channel = `<img src=x onerror=pwn()>`;
  await mallory.createAndOpen(channel);
  for (const text of HOSTILE_MESSAGES) {
    await mallory.send(text);
  }
  await mallory.page.getByLabel("Attach file").setInputFiles({
    name: "<svg onload=pwn()>.html",
    mimeType: "text/html",
    buffer: Buffer.from("<script>window.pwn()</script>"),
  });
  await expect(mallory.page.getByText("<svg onload=pwn()>.html (", { exact: false })).toBeVisible();
  await mallory.send("see attachment");

  await page.goto("/c/" + encodeURIComponent(channel));
  const observer = new User(context, page, "Observer-" + Date.now().toString(36));
  await observer.chooseName(observer.name);
  await observer.waitConnected();

  await expect(page.getByRole("heading", { level: 1 })).toHaveText(channel);
  await expect(
    page.getByRole("navigation", { name: "Channels" }).getByRole("link", { name: channel, exact: true }),
  ).toBeVisible();
  const bodies = observer.log().locator(".body");
  await expect(bodies).toHaveCount(HOSTILE_MESSAGES.length + 1);
  for (const [i, text] of HOSTILE_MESSAGES.entries()) {
    await expect(bodies.nth(i)).toHaveText(text);
  }
  await expect(observer.log().locator(".author").first()).toHaveText(mallory.name);
  await expect(
    observer.log().getByRole("link", { name: "<svg onload=pwn()>.html", exact: true }),
  ).toBeVisible();
  // No markup became elements: the only image-like or script elements are our own.
  await expect(observer.log().locator("script, svg, b, img")).toHaveCount(0);
  expect(await pwned()).toBe(false);
  // The very long word wraps instead of widening the page.
  const overflow = await page.evaluate(() => {
    const log = document.querySelector(".log-scroll")!;
    return log.scrollWidth - log.clientWidth;
  });
  expect(overflow).toBeLessThanOrEqual(1);
  expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
  expect(errors).toEqual([]);
  await mallory.close();
  await context.close();
});
