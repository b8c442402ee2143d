// Issue 18, items 7 and 8: on a phone the sidebar is a drawer opened from the header and
// the room fills the screen, with everything of the desktop a tap away and touch targets of
// at least 44 px; on every screen a skip link, Escape and Alt+Up/Down work from the keyboard.
import { test, expect, type Page } from "@playwright/test";
import { User, unique } from "./fixtures/flack";

/** Expects `page` to be no wider than its window. */
async function expectNoSideways(page: Page): Promise<void> {
  const widths = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  expect(widths[0]).toBeLessThanOrEqual(widths[1]);
}

test.describe("at 390x844", () => {
  test.use({ viewport: { width: 390, height: 844 } });

  /** The room fills the phone's screen; "Open sidebar" opens the drawer with the channel
   *  list, search, People and channel creation; Escape closes it and gives focus back to
   *  the button; opening a room from it closes it; the Online list is one tap away. */
  test("the sidebar is a drawer and the room fills the screen", async ({ browser }) => {
    const room = unique("phone");
    const ada = await User.open(browser, "Ada");
    const page = ada.page;
    const channels = page.getByRole("navigation", { name: "Channels" });
    await expect(channels).toBeHidden();
    const log = await page.getByRole("log").boundingBox();
    expect(log?.width ?? 0).toBeGreaterThan(340);
    await expectNoSideways(page);

    const open = page.getByRole("button", { name: "Open sidebar" });
    const size = await open.boundingBox();
    expect(size?.width ?? 0).toBeGreaterThanOrEqual(44);
    expect(size?.height ?? 0).toBeGreaterThanOrEqual(44);
    await open.click();
    await expect(channels).toBeVisible();
    await expect(open).toHaveAttribute("aria-expanded", "true");
    for (const name of ["Create channel", "People"]) {
      await expect(page.getByRole("button", { name, exact: false }).first()).toBeVisible();
    }
    await expect(page.getByRole("searchbox").first()).toBeVisible();
    const link = channels.getByRole("link", { name: "general", exact: true });
    expect((await link.boundingBox())?.height ?? 0).toBeGreaterThanOrEqual(44);
    await page.keyboard.press("Escape");
    await expect(channels).toBeHidden();
    await expect(open).toBeFocused();

    // Creating a channel from the drawer opens it, and the drawer closes.
    await open.click();
    await ada.createAndOpen(room);
    await expect(channels).toBeHidden();
    await open.click();
    await channels.getByRole("link", { name: "general", exact: true }).click();
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("general");
    await expect(channels).toBeHidden();

    // The Online list, hidden at first, is one tap away.
    const online = page.getByRole("list", { name: "Online" });
    await expect(online).toBeHidden();
    await page.getByRole("button", { name: "Online", exact: true }).click();
    await expect(online.getByText(ada.name)).toBeVisible();
    await expectNoSideways(page);
    await ada.close();
  });
});

test.describe("on a touch screen (no hover)", () => {
  test.use({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });

  /** Where nothing can hover, a message's actions are shown without hovering and are at
   *  least 44 px square, a tap on "Add reaction" opens the picker, and the reaction it
   *  gives is a 44 px target too; one's own message offers Edit and Delete the same way. */
  test("message actions are shown and big enough without hover", async ({ browser }) => {
    const ada = await User.open(browser, "Ada");
    const page = ada.page;
    expect(await page.evaluate(() => matchMedia("(hover: none)").matches)).toBe(true);
    const text = unique("tap me");
    await ada.send(text);
    const message = ada.log().getByRole("listitem").filter({ hasText: text });
    for (const name of ["Add reaction", "Edit message", "Delete message"]) {
      const button = message.getByRole("button", { name });
      await expect(button).toBeVisible();
      const opacity = await button.evaluate((el) => Number(getComputedStyle(el).opacity));
      expect(opacity, `${name} is shown without hover`).toBeGreaterThanOrEqual(0.5);
      const box = await button.boundingBox();
      expect(box?.width ?? 0, `${name} width`).toBeGreaterThanOrEqual(44);
      expect(box?.height ?? 0, `${name} height`).toBeGreaterThanOrEqual(44);
    }
    await message.getByRole("button", { name: "Add reaction" }).tap();
    const picker = page.getByRole("dialog", { name: "Add reaction" });
    await expect(picker).toBeVisible();
    await picker.getByRole("button", { name: "👍" }).tap();
    await expect(picker).toHaveCount(0);
    const reaction = message.getByRole("button", { name: "👍 1" });
    await expect(reaction).toHaveAttribute("aria-pressed", "true");
    const size = await reaction.boundingBox();
    expect(size?.width ?? 0).toBeGreaterThanOrEqual(44);
    expect(size?.height ?? 0).toBeGreaterThanOrEqual(44);
    await expectNoSideways(page);
    await ada.close();
  });
});

/** From the keyboard: the first Tab reaches "Skip to message box", which puts focus in the
 *  box; Alt+Down and Alt+Up open the next and previous room of the sidebar; Escape closes
 *  the rename form and gives the focus back to the button that opened it. */
test("the keyboard reaches the box, moves between rooms and closes forms", async ({ browser }) => {
  const first = unique("a-keys");
  const second = unique("b-keys");
  const ada = await User.open(browser, "Ada");
  const page = ada.page;
  await ada.createAndOpen(first);
  await ada.createAndOpen(second);
  await page.reload();
  await ada.waitConnected();
  await page.keyboard.press("Tab");
  const skip = page.getByRole("link", { name: "Skip to message box" });
  await expect(skip).toBeFocused();
  await page.keyboard.press("Enter");
  await expect(page.getByLabel("Message", { exact: true })).toBeFocused();

  // The neighbours in the sidebar's order (other tests' channels may sit between).
  const names = await ada.channelNav().getByRole("link").allTextContents();
  const at = names.findIndex((name) => name.includes(second));
  const above = names[at - 1].replace(/^#\s*/, "").trim();
  await page.keyboard.press("Alt+ArrowUp");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(above);
  await page.keyboard.press("Alt+ArrowDown");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(second);

  await page.getByRole("button", { name: "Change display name" }).click();
  const rename = page.getByLabel("Display name");
  await expect(rename).toBeVisible();
  await rename.press("Escape");
  await expect(rename).toBeHidden();
  await expect(page.getByRole("button", { name: "Change display name" })).toBeFocused();
  await ada.close();
});

/** Ctrl+K opens the "Jump to" dialog; typing filters channels and people, Up/Down choose,
 *  Enter opens the choice; Escape closes it with focus back in the message box. */
test("the quick switcher jumps to a channel or a person", async ({ browser }) => {
  const room = unique("jump");
  const ada = await User.open(browser, "Ada");
  const bob = await User.open(browser, "Bob");
  const page = ada.page;
  await ada.createAndOpen(room);
  await ada.openChannel("general");

  await page.keyboard.press("Control+k");
  const dialog = page.getByRole("dialog", { name: "Jump to" });
  await expect(dialog).toBeVisible();
  const box = dialog.getByRole("combobox", { name: "Jump to" });
  await expect(box).toBeFocused();
  await box.fill(room.slice(0, 8));
  await expect(dialog.getByRole("option", { name: `#${room}` })).toBeVisible();
  await box.press("Enter");
  await expect(dialog).toBeHidden();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(room);

  await page.keyboard.press("Control+k");
  await box.fill(bob.name);
  await expect(dialog.getByRole("option", { name: bob.name })).toBeVisible();
  await box.press("Enter");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(bob.name);

  await page.keyboard.press("Control+k");
  await expect(box).toBeFocused();
  await box.press("Escape");
  await expect(dialog).toBeHidden();
  await expect(page.getByLabel("Message", { exact: true })).toBeFocused();
  for (const user of [ada, bob]) await user.close();
});
