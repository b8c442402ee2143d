// Requirement 1: the first visit asks for a display name and nothing else happens until one
// is given; a returning visitor is not asked again and sees their name.
import { test, expect } from "@playwright/test";
import { User, unique } from "./fixtures/flack";

/** The prompt blocks the page on a first visit, refuses a blank name, and the chosen name is
 *  remembered in a new browser context that has the same stored state. */
test("display name is asked once and remembered", async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto("/");

  const dialog = page.getByRole("dialog");
  await expect(dialog).toBeVisible();
  await expect(dialog.getByLabel("Display name")).toBeFocused();
  // Everything behind the prompt is inert: the message box cannot be reached.
  await expect(page.locator(".app")).toHaveAttribute("inert", "");

  await dialog.getByRole("button", { name: "Start chatting" }).click();
  await expect(dialog.getByRole("alert")).toHaveText("Display names can't be empty.");
  await expect(dialog).toBeVisible();

  const name = unique("Ada Lovelace");
  await dialog.getByLabel("Display name").fill(`  ${name}  `);
  await dialog.getByRole("button", { name: "Start chatting" }).click();
  await expect(dialog).toBeHidden();
  await expect(page.locator(".app")).not.toHaveAttribute("inert", "");
  await expect(page.getByText(`Signed in as ${name}`)).toBeVisible();

  // "Close the browser and come back": a new context with the same stored state.
  const state = await context.storageState();
  await context.close();
  const again = await browser.newContext({ storageState: state });
  const page2 = await again.newPage();
  await page2.goto("/");
  await expect(page2.getByRole("status")).toHaveText("Connected");
  await expect(page2.getByText(`Signed in as ${name}`)).toBeVisible();
  await expect(page2.getByRole("dialog")).toHaveCount(0);
  await again.close();
});

/** Sending is only possible with a name: the message box stays unreachable until one is
 *  chosen. */
test("nothing can be sent before a name is chosen", async ({ browser }) => {
  const user = await browser.newContext();
  const page = await user.newPage();
  await page.goto("/c/general");
  await expect(page.getByRole("dialog")).toBeVisible();
  const box = page.getByLabel("Message", { exact: true });
  await expect(box.fill("sneaky", { timeout: 1000 })).rejects.toThrow();
  await user.close();
  // A named user in the same channel never received anything.
  const other = await User.open(browser, "Witness");
  await expect(other.log()).not.toContainText("sneaky");
  await other.close();
});
