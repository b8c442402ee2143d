// Issue 17, accessibility: axe-core finds no serious or critical violation on the home, channel,
// private-conversation and search pages (unread counts, mentions, formatted messages,
// reactions and their picker included), and every focus ring stands out from what is behind
// it.
import { test, expect, type Page } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";
import { User, openSidebar, seedMessages, unique } from "./fixtures/flack";

/** The serious and critical violations axe-core finds on `page`, one line each. */
async function seriousViolations(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).analyze();
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

/** The home page (as the server sends it: in the browser it moves on to a room at once) and
 *  the name prompt a first visit gets have no serious or critical violations. */
test("the home page passes axe", async ({ browser }) => {
  // Without the WebAssembly the page stays as served (axe itself needs JavaScript).
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.route("**/*.wasm", (route) => route.abort());
  await page.goto("/");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Flack");
  expect(await seriousViolations(page)).toEqual([]);

  const first = await context.newPage();
  await first.goto("/");
  await expect(first.getByRole("dialog")).toBeVisible();
  expect(await seriousViolations(first)).toEqual([]);
  await context.close();
});

/** A channel page with grouped messages, a day separator, the "New" divider and the
 *  new-messages notice showing has no serious or critical violations. */
test("a channel page passes axe", async ({ browser }) => {
  const name = unique("axe");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(name);
  await seedMessages(ada.page, name, unique("Seeder"), 40);
  await ada.send("a message of my own");
  const bob = await User.open(browser, "Bob", `/c/${name}`);
  await bob.openChannel("general");
  await ada.send("while Bob was away");
  await bob.openChannel(name);
  await expect(bob.page.getByRole("separator", { name: "New" })).toBeVisible();
  await bob.log().evaluate((el) => el.scrollTo({ top: -el.scrollHeight }));
  await bob.log().evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await ada.send("one more");
  await expect(bob.page.getByRole("button", { name: "Jump to newest" })).toBeVisible();
  expect(await seriousViolations(bob.page)).toEqual([]);
  expect(await seriousViolations(ada.page)).toEqual([]);
  await ada.close();
  await bob.close();
});

/** A sidebar showing unread channels with their counts, and a message with the reader's
 *  mention marked, have no serious or critical violations. */
test("unread counts and mentions pass axe", async ({ browser }) => {
  const room = unique("axe-unread");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob");
  await ada.send(`hello @${bob.name}`);
  await ada.send("and more");
  await expect(
    bob.channelNav().getByRole("link", { name: room, exact: true }),
  ).toHaveAccessibleDescription("1 mention, 2 unread");
  expect(await seriousViolations(bob.page)).toEqual([]);
  await bob.openChannel(room);
  await expect(bob.log().locator("mark.mention")).toHaveText(`@${bob.name}`);
  expect(await seriousViolations(bob.page)).toEqual([]);
  await ada.close();
  await bob.close();
});

/** A private conversation's page has no serious or critical violations. */
test("a private conversation passes axe", async ({ browser }) => {
  const room = unique("axe-dm");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob", `/c/${room}`);
  await ada.page.getByRole("list", { name: "Online" }).getByRole("button", { name: `Message ${bob.name}` }).click();
  await expect(ada.page.getByRole("heading", { level: 1 })).toHaveText(bob.name);
  await ada.send("just between us");
  await ada.send("really");
  await expect(ada.log()).toContainText("really");
  expect(await seriousViolations(ada.page)).toEqual([]);
  await ada.close();
  await bob.close();
});

/** The search box with results showing (and a result opened in its room) has no serious or
 *  critical violations, at desktop width and at 390 px. */
test("the search results pass axe", async ({ browser }) => {
  const word = unique("axesearch").replace("-", "");
  const ada = await User.open(browser, "Ada");
  await ada.send(`first ${word} message`);
  await ada.send(`second ${word} message`);
  const box = ada.page.getByRole("searchbox", { name: "Search messages" });
  await box.fill(word);
  await box.press("Enter");
  const results = ada.page.getByRole("list", { name: "Search results" });
  await expect(results.getByRole("listitem")).toHaveCount(2);
  expect(await seriousViolations(ada.page)).toEqual([]);
  await ada.page.setViewportSize({ width: 390, height: 844 });
  // On a phone the results are in the sidebar's drawer.
  await openSidebar(ada.page);
  expect(await seriousViolations(ada.page)).toEqual([]);
  await results.getByRole("link").first().click();
  await expect(ada.log().locator("[data-found]")).toBeVisible();
  expect(await seriousViolations(ada.page)).toEqual([]);
  await ada.close();
});

/** Formatted messages (styles, inline code, links, a quote, lists, and a code block whose long
 *  line scrolls) have no serious or critical violations, in the light and the dark scheme. */
test("formatted messages pass axe", async ({ browser }) => {
  const name = unique("axefmt");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(name);
  await ada.send(
    "**bold** *italic* ~~struck~~ `code` [a link](https://example.org) https://example.org :tada:\n" +
      "> a quote with `code`\n- an item\n1. a step\n```\n" +
      "long ".repeat(100) +
      "\n```",
  );
  await expect(ada.log().locator("pre")).toHaveCount(1);
  expect(await seriousViolations(ada.page)).toEqual([]);
  await ada.page.emulateMedia({ colorScheme: "dark" });
  expect(await seriousViolations(ada.page)).toEqual([]);
  await ada.close();
});

/** Reactions (one of them the reader's, pressed) and the open reaction picker have no
 *  serious or critical violations, in the light and the dark scheme. */
test("reactions and the reaction picker pass axe", async ({ browser }) => {
  const name = unique("axereact");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(name);
  await ada.send("react to this");
  const message = ada.log().getByRole("listitem").filter({ hasText: "react to this" });
  for (const emoji of ["👍", "🎉"]) {
    await message.getByRole("button", { name: "Add reaction" }).click();
    const picker = ada.page.getByRole("dialog", { name: "Add reaction" });
    await picker.getByRole("button", { name: emoji }).click();
    const chip = message.getByRole("button", { name: `${emoji} 1` });
    await expect(chip).toHaveAttribute("aria-pressed", "true");
  }
  expect(await seriousViolations(ada.page)).toEqual([]);
  await message.getByRole("button", { name: "Add reaction" }).click();
  await expect(ada.page.getByRole("dialog", { name: "Add reaction" })).toBeVisible();
  expect(await seriousViolations(ada.page)).toEqual([]);
  await ada.page.emulateMedia({ colorScheme: "dark" });
  expect(await seriousViolations(ada.page)).toEqual([]);
  await ada.close();
});

/** A reply's quote (its original there, then deleted) and the box replying to a message
 *  have no serious or critical violations, in the light and the dark scheme. */
test("replies pass axe", async ({ browser }) => {
  const name = unique("axereply");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(name);
  await ada.send("answer this");
  const message = ada
    .log()
    .getByRole("listitem")
    .filter({ has: ada.page.locator(".body", { hasText: "answer this" }) });
  await message.getByRole("button", { name: "Reply", exact: true }).click();
  await ada.send("answered");
  const quote = ada.log().getByRole("button", { name: /^Reply to / });
  await expect(quote).toHaveCount(1);
  await message.getByRole("button", { name: "Reply", exact: true }).click();
  await expect(ada.page.locator(".composer .replying")).toBeVisible();
  expect(await seriousViolations(ada.page)).toEqual([]);
  await message.getByRole("button", { name: "Delete message" }).click();
  await ada.page.getByRole("dialog").getByRole("button", { name: "Delete", exact: true }).click();
  await expect(quote).toContainText("Original message deleted");
  for (const colorScheme of ["light", "dark"] as const) {
    await ada.page.emulateMedia({ colorScheme });
    expect(await seriousViolations(ada.page)).toEqual([]);
  }
  await ada.close();
});

/** The phone layout (room, drawer open, Online panel shown), the quick switcher and a
 *  typing notice have no serious or critical violations. */
test("the phone drawer, the quick switcher and the typing notice pass axe", async ({ browser }) => {
  const ada = await User.open(browser, "Ada");
  const bob = await User.open(browser, "Bob");
  await bob.page.getByLabel("Message", { exact: true }).pressSequentially("hello");
  await expect(ada.page.getByText(`${bob.name} is typing…`)).toBeVisible();
  expect(await seriousViolations(ada.page)).toEqual([]);
  await ada.page.setViewportSize({ width: 390, height: 844 });
  expect(await seriousViolations(ada.page)).toEqual([]);
  await ada.page.getByRole("button", { name: "Online", exact: true }).click();
  expect(await seriousViolations(ada.page)).toEqual([]);
  await openSidebar(ada.page);
  expect(await seriousViolations(ada.page)).toEqual([]);
  await ada.page.keyboard.press("Escape");
  await ada.page.keyboard.press("Control+k");
  await expect(ada.page.getByRole("dialog", { name: "Jump to" })).toBeVisible();
  expect(await seriousViolations(ada.page)).toEqual([]);
  await ada.close();
  await bob.close();
});

/** Every element that shows a focus ring while tabbing through a channel page, in the light
 *  and the dark scheme, draws it at a contrast of at least 3:1 against the background it
 *  sits on (WCAG 2.2, 1.4.11). */
test("focus rings have at least 3:1 contrast", async ({ browser }) => {
  const ada = await User.open(browser, "Ada");
  await ada.send("something to focus near");
  const page = ada.page;
  for (const colorScheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme });
    await page.locator("body").focus();
    const seen: string[] = [];
    // Enough presses to pass the sidebar (with the channels the other tests of this file
    // created), the log, the buttons of its messages (Reply, Add reaction, and on one's own
    // Edit and Delete) and reach the box.
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press("Tab");
      const ring = await page.evaluate(() => {
        const el = document.activeElement as HTMLElement | null;
        if (!el || el === document.body) return null;
        const style = getComputedStyle(el);
        if (style.outlineStyle === "none" || parseFloat(style.outlineWidth) === 0) {
          return { name: el.outerHTML.slice(0, 80), ratio: 0 };
        }
        const rgb = (c: string) => (c.match(/[\d.]+/g) ?? []).map(Number);
        const luminance = ([r, g, b]: number[]) => {
          const lin = (v: number) => {
            const s = v / 255;
            return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
          };
          return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
        };
        // A ring drawn outside the element sits on its parent's background; one drawn inside
        // (a negative offset) on the element's own. The first opaque background up the tree.
        let from: Element | null = parseFloat(style.outlineOffset) < 0 ? el : el.parentElement;
        let background = "rgb(255, 255, 255)";
        for (; from; from = from.parentElement) {
          const bg = getComputedStyle(from).backgroundColor;
          const parts = rgb(bg);
          if (parts.length >= 3 && (parts.length < 4 || parts[3] > 0)) {
            background = bg;
            break;
          }
        }
        const a = luminance(rgb(style.outlineColor));
        const b = luminance(rgb(background));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        return { name: el.outerHTML.slice(0, 80), ratio };
      });
      if (!ring) continue;
      seen.push(ring.name);
      expect(ring.ratio, `${colorScheme} focus ring of ${ring.name}`).toBeGreaterThanOrEqual(3);
    }
    // The walk went through the sidebar and the room: links, fields, buttons and the log.
    expect(seen.some((s) => s.startsWith("<a"))).toBe(true);
    expect(seen.some((s) => s.includes('role="log"'))).toBe(true);
    expect(seen.some((s) => s.startsWith("<textarea"))).toBe(true);
  }
  await ada.close();
});
