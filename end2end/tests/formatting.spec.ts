// Formatting (issue 18, item 1): the Markdown subset shows as elements in other browsers and
// on the server's first paint alike, and hostile Markdown stays inert without widening the page.
import { test, expect, type Page } from "@playwright/test";
import { User, unique, watchedPage } from "./fixtures/flack";

/** A message's HTML without what only differs between the server's first paint and the
 *  browser's own drawing: hydration's comment markers and the reader's mention marks. */
async function bodyMarkup(page: Page, containing: string): Promise<string> {
  const body = page.getByRole("log").locator(".body").filter({ hasText: containing });
  await expect(body).toHaveCount(1);
  return body.evaluate((el) =>
    el.innerHTML.replace(/<!--.*?-->/g, "").replace(/<\/?mark[^>]*>/g, ""),
  );
}

/** True when nothing on the page reaches past the window's right edge. */
async function pageFits(page: Page): Promise<boolean> {
  return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
}

/** Bob sees the formatting Ada typed as elements (bold, italic, strike, code, code block,
 *  quote, list, links with safe attributes, emoji, his mention marked), and a browser with
 *  JavaScript off gets the very same elements from the server. */
test("formatted messages show the same live and on the first paint", async ({ browser }) => {
  const name = unique("fmt");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(name);
  const bob = await User.open(browser, "Bob", `/c/${name}`);
  const text = [
    `**Ship** it *today* ~~tomorrow~~, run \`cargo test\` first :tada: @${bob.name}`,
    "> quoted **words**",
    "- one",
    "- two",
    "Docs: [the guide](https://example.org/guide?a=1&b=2), or https://example.org/faq.",
    "```",
    "fn main() {",
    '    println!("<b>not bold</b>");',
    "}",
    "```",
  ].join("\n");
  await ada.send(text);

  const body = bob.log().locator(".body").filter({ hasText: "Ship" });
  await expect(body).toHaveCount(1);
  await expect(body.locator("strong").first()).toHaveText("Ship");
  await expect(body.locator("em")).toHaveText("today");
  await expect(body.locator("s")).toHaveText("tomorrow");
  await expect(body.locator("p code")).toHaveText("cargo test");
  await expect(body.locator("p").first()).toContainText("🎉");
  await expect(body.locator("mark.mention")).toHaveText(`@${bob.name}`);
  await expect(body.locator("blockquote strong")).toHaveText("words");
  await expect(body.getByRole("listitem")).toHaveText(["one", "two"]);
  await expect(body.locator("pre code")).toHaveText('fn main() {\n    println!("<b>not bold</b>");\n}');
  await expect(body.locator("b")).toHaveCount(0);
  const guide = body.getByRole("link", { name: "the guide" });
  await expect(guide).toHaveAttribute("href", "https://example.org/guide?a=1&b=2");
  await expect(guide).toHaveAttribute("target", "_blank");
  await expect(guide).toHaveAttribute("rel", "noopener noreferrer nofollow");
  const faq = body.getByRole("link", { name: "https://example.org/faq" });
  await expect(faq).toHaveAttribute("href", "https://example.org/faq");
  await expect(faq).toHaveAttribute("rel", "noopener noreferrer nofollow");
  const live = await bodyMarkup(bob.page, "Ship");

  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`/c/${name}`);
  expect(await bodyMarkup(page, "Ship")).toBe(live);
  await expect(page.getByRole("log").getByRole("link", { name: "the guide" })).toHaveAttribute(
    "rel",
    "noopener noreferrer nofollow",
  );
  await context.close();
  await ada.close();
  await bob.close();
});

const HOSTILE_MARKDOWN = [
  "[click me](javascript:window.pwn())",
  "[case](JaVaScRiPt:window.pwn())",
  "[data](data:text/html,<script>window.pwn()</script>)",
  '[quote](https://example.org/" onmouseover="window.pwn())',
  "`<img src=x onerror=window.pwn()>` **<script>window.pwn()</script>**",
  "*a **b ***c ~~d _e __f ".repeat(166),
  "*".repeat(4000),
  "```\n" + "x".repeat(3990) + "\n```",
  "```\n<img src=x onerror=window.pwn()>\nthe fence never closes",
  "https://example.org/" + "a".repeat(3000),
  "> " + "Q".repeat(3000),
  "- " + "L".repeat(3000),
];

/** Hostile Markdown planted by one user runs nothing in another user's browser, makes no
 *  link but to http, https or mailto, and leaves the page no wider than the window at phone
 *  and desktop widths, with JavaScript and without: long code lines scroll inside their
 *  block, long words wrap. */
test("hostile Markdown stays inert and keeps the page's width", async ({ browser }) => {
  const name = unique("fmtbad");
  const mallory = await User.open(browser, "Mallory");
  await mallory.createAndOpen(name);
  for (const text of HOSTILE_MARKDOWN) {
    await mallory.send(text);
  }
  await expect(mallory.log().locator(".body")).toHaveCount(HOSTILE_MARKDOWN.length);

  const { context, page, errors, pwned } = await watchedPage(browser, {
    viewport: { width: 1440, height: 900 },
  });
  await page.goto(`/c/${name}`);
  const observer = new User(context, page, unique("Observer"));
  await observer.chooseName(observer.name);
  await observer.waitConnected();
  const log = observer.log();
  await expect(log.locator(".body")).toHaveCount(HOSTILE_MARKDOWN.length);

  await expect(log.getByText("[click me](javascript:window.pwn())", { exact: true })).toBeVisible();
  await expect(log.locator("script, img, iframe, svg, b")).toHaveCount(0);
  const links = await log.locator(".body a").evaluateAll((as) =>
    as.map((a) => [a.getAttribute("href") ?? "", a.getAttribute("rel"), a.getAttribute("target")]),
  );
  expect(links.length).toBe(2);
  for (const [href, rel, target] of links) {
    expect(href).toMatch(/^https:\/\/example\.org\//);
    expect(href).not.toContain('"');
    expect(rel).toBe("noopener noreferrer nofollow");
    expect(target).toBe("_blank");
  }
  // The long code line scrolls inside its block; the unclosed fence became code.
  const wide = log.locator("pre").filter({ hasText: "xxxx" });
  expect(await wide.evaluate((pre) => pre.scrollWidth > pre.clientWidth)).toBe(true);
  await expect(log.locator("pre").filter({ hasText: "never closes" })).toContainText(
    "<img src=x onerror=window.pwn()>",
  );
  for (const width of [1440, 390]) {
    await page.setViewportSize({ width, height: 844 });
    expect(await pageFits(page), `at ${width} px`).toBe(true);
  }
  expect(await pwned()).toBe(false);
  expect(errors).toEqual([]);

  const still = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
  const first = await still.newPage();
  await first.goto(`/c/${name}`);
  await expect(first.getByRole("log").locator(".body")).toHaveCount(HOSTILE_MARKDOWN.length);
  await expect(first.getByRole("log").locator("script, img, iframe, svg, b")).toHaveCount(0);
  expect(await pageFits(first)).toBe(true);
  await still.close();
  await context.close();
  await mallory.close();
});
