// Moving between pages happens inside the page: links in the channel list, the browser's Back
// and Forward buttons, and the mark on the open channel all work without a reload.
import { test, expect } from "@playwright/test";
import { User, unique } from "./fixtures/flack";

/** Opening a channel from the list changes the address and the view without reloading (a
 *  value left on the page survives), marks the open channel in the list, and Back and
 *  Forward show the channels opened before, with their messages. */
test("links, Back and Forward move between channels without reloading", async ({ browser }) => {
  const ada = await User.open(browser, "Ada");
  const heading = ada.page.getByRole("heading", { level: 1 });
  const nav = ada.channelNav();
  const name = unique("nav");
  await ada.createAndOpen(name);
  await ada.send("said before leaving");
  await ada.page.evaluate(() => {
    (window as unknown as { flackMarker: string }).flackMarker = "same page";
  });

  await ada.openChannel("general");
  await expect(ada.page).toHaveURL(/\/c\/general$/);
  await expect(heading).toHaveText("general");
  await expect(nav.getByRole("link", { name: "general", exact: true })).toHaveAttribute(
    "aria-current",
    "page",
  );
  await expect(nav.getByRole("link", { name, exact: true })).not.toHaveAttribute(
    "aria-current",
    "page",
  );

  await ada.page.goBack();
  await expect(ada.page).toHaveURL(new RegExp(`/c/${name}$`));
  await expect(heading).toHaveText(name);
  await expect(ada.log()).toContainText("said before leaving");
  await expect(nav.getByRole("link", { name, exact: true })).toHaveAttribute("aria-current", "page");

  await ada.page.goForward();
  await expect(ada.page).toHaveURL(/\/c\/general$/);
  await expect(heading).toHaveText("general");
  const marker = await ada.page.evaluate(
    () => (window as unknown as { flackMarker?: string }).flackMarker,
  );
  expect(marker).toBe("same page");
  await ada.close();
});

/** An address that names no page gets the "not found" page, with status 404 and the channel
 *  list already in the server's HTML. */
test("unknown addresses show the not-found page", async ({ page, request }) => {
  const html = await request.get("/nowhere/at/all");
  expect(html.status()).toBe(404);
  expect(await html.text()).toContain('href="/c/general"');

  const response = await page.goto("/nowhere/at/all");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Page not found");
});
