// Issue 17, items 2 and 4: a message log that keeps the reader's place, says what arrived
// below, marks what is new on returning, groups messages by author and day, and shows the
// newest messages and local times on the very first paint.
import { test, expect, type Locator, type Page } from "@playwright/test";
import { User, seedMessages, unique } from "./fixtures/flack";

const DAY_MS = 24 * 60 * 60 * 1000;

/** The message whose body is exactly `text`, in `page`'s log. */
function item(page: Page, text: string): Locator {
  return page
    .getByRole("log")
    .getByRole("listitem")
    .filter({ has: page.locator(".body", { hasText: new RegExp(`^${text}$`) }) });
}

/** The log's scroll position measured from the top of its content. */
async function fromTop(log: Locator): Promise<number> {
  return log.evaluate((el) => el.scrollTop + el.scrollHeight - el.clientHeight);
}

/** "Monday 30 November 2026", as the page names a day that is neither today nor yesterday. */
function dateLabel(d: Date): string {
  const days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
  const months = ["January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December"];
  return `${days[d.getDay()]} ${d.getDate()} ${months[d.getMonth()]} ${d.getFullYear()}`;
}

/** A reader scrolled up keeps their place when a message arrives: what they were reading
 *  stays where it was on screen, a notice counts the new message, and "Jump to newest" takes
 *  them to it. A reader at the bottom follows new messages with no notice. */
test("scrolled up, the reader keeps their place and can jump to newest", async ({ browser }) => {
  const name = unique("scroll");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(name);
  await seedMessages(ada.page, name, unique("Seeder"), 60);
  const bob = await User.open(browser, "Bob", `/c/${name}`);
  const log = bob.log();
  await expect(item(bob.page, "message 60")).toBeInViewport();

  // At the bottom, a new message is followed.
  await ada.send("while you watch");
  await expect(item(bob.page, "while you watch")).toBeInViewport();
  await expect(bob.page.getByText(/new message/)).toHaveCount(0);

  // Scrolled up to the top, a new message does not move what Bob reads.
  await log.evaluate((el) => el.scrollTo({ top: -el.scrollHeight }));
  await expect(item(bob.page, "message 1")).toBeInViewport();
  await expect.poll(() => fromTop(log)).toBeLessThanOrEqual(1);
  // Two frames: the scroll event has been handled.
  await log.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const reading = item(bob.page, "message 3");
  const before = (await reading.boundingBox())?.y;
  const top = await fromTop(log);
  await ada.send("news from below");
  await expect(bob.page.locator(".new-messages")).toContainText("1 new message");
  await ada.send("more news");
  await expect(bob.page.locator(".new-messages")).toContainText("2 new messages");
  const after = (await reading.boundingBox())?.y ?? Number.NaN;
  expect(Math.abs(after - (before ?? Number.NaN))).toBeLessThanOrEqual(1);
  expect(Math.abs((await fromTop(log)) - top)).toBeLessThanOrEqual(1);
  await expect(item(bob.page, "more news")).not.toBeInViewport();

  await bob.page.getByRole("button", { name: "Jump to newest" }).click();
  await expect(item(bob.page, "more news")).toBeInViewport();
  await expect(bob.page.getByRole("button", { name: "Jump to newest" })).toHaveCount(0);
  await expect(log).toBeFocused();
  await ada.close();
  await bob.close();
});

/** Coming back to a room shows a "New" divider above the first message that arrived while
 *  the reader was away, and only then: not on a first visit, not when nothing is new. */
test("returning to a room marks where the new messages start", async ({ browser }) => {
  const name = unique("away");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(name);
  await ada.send("before you left");
  const bob = await User.open(browser, "Bob", `/c/${name}`);
  await expect(item(bob.page, "before you left")).toBeVisible();
  const divider = bob.page.getByRole("separator", { name: "New" });
  await expect(divider).toHaveCount(0);

  await bob.openChannel("general");
  await ada.send("while you were away");
  await ada.send("and this too");
  await bob.openChannel(name);
  await expect(divider).toHaveCount(1);
  await expect(divider).toHaveText("New");
  await expect(bob.log().getByRole("listitem").filter({ has: divider })).toContainText(
    "while you were away",
  );

  // Seen now: leaving and coming back with nothing new shows no divider.
  await bob.openChannel("general");
  await bob.openChannel(name);
  await expect(item(bob.page, "and this too")).toBeVisible();
  await expect(divider).toHaveCount(0);

  // The position is kept across a reload of the page too.
  await bob.openChannel("general");
  await ada.send("after the reload");
  await bob.page.goto(`/c/${name}`);
  await bob.waitConnected();
  await expect(bob.log().getByRole("listitem").filter({ has: divider })).toContainText(
    "after the reload",
  );
  await ada.close();
  await bob.close();
});

/** Consecutive messages from one author are grouped under one visible name; each still
 *  carries its author for assistive technology and its full date and time on hover. */
test("messages from one author are grouped under one name", async ({ browser }) => {
  const name = unique("group");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(name);
  const bob = await User.open(browser, "Bob", `/c/${name}`);
  for (const text of ["one", "two", "three"]) {
    await ada.send(text);
    await expect(item(bob.page, text)).toBeVisible();
  }
  await bob.send("four");
  await expect(item(bob.page, "four")).toBeVisible();

  const visibleNames = await bob.log().locator(".author").evaluateAll((names) =>
    names.filter((n) => n.getBoundingClientRect().width > 1).map((n) => n.textContent),
  );
  expect(visibleNames).toEqual([ada.name, bob.name]);
  await expect(item(bob.page, "two")).toContainText(ada.name);

  const time = item(bob.page, "three").locator("time");
  const iso = (await time.getAttribute("datetime")) ?? "";
  const expected = await bob.page.evaluate((iso) => {
    const d = new Date(iso);
    const pad = (n: number) => String(n).padStart(2, "0");
    return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }, iso);
  const full = `${dateLabel(new Date(iso))} at ${expected}`;
  await expect(time).toHaveAttribute("title", full);
  // The full date and time is also in the message's text, for assistive technology.
  await expect(item(bob.page, "three").locator(".meta")).toContainText(full);
  await expect(time).toHaveText(expected);
  await expect(time).toHaveCSS("opacity", "0");
  await item(bob.page, "three").hover();
  await expect(time).toHaveCSS("opacity", "1");
  await ada.close();
  await bob.close();
});

/** A day separator heads the messages of each day: "Today" for today's, and, read by a
 *  browser whose clock is a day (or three days) ahead, "Yesterday" (or the date). */
test("day separators name today, yesterday and older dates", async ({ browser }) => {
  const name = unique("days");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(name);
  await ada.send("said today");
  await expect(ada.log().getByRole("separator", { name: "Today" })).toHaveText("Today");
  const iso = (await item(ada.page, "said today").locator("time").getAttribute("datetime")) ?? "";

  for (const [days, label] of [
    [1, "Yesterday"],
    [3, dateLabel(new Date(iso))],
  ] as const) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.clock.setFixedTime(Date.now() + days * DAY_MS);
    await page.goto(`/c/${name}`);
    const separator = page.getByRole("log").getByRole("separator");
    await expect(separator).toHaveCount(1);
    await expect(separator).toHaveText(label);
    await expect(separator).toHaveAccessibleName(label);
    await context.close();
  }
  await ada.close();
});

/** The server's first paint already shows the newest messages at the bottom of the log, in
 *  the reader's local time once their browser has told the server its zone: checked with
 *  JavaScript off, so nothing but the HTML and CSS can have placed them. */
test("the first paint shows the newest messages in local time", async ({ browser }) => {
  const name = unique("paint");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(name);
  await seedMessages(ada.page, name, unique("Seeder"), 80);
  await ada.close();

  // A first visit without JavaScript: no zone known, so times are in UTC and say so.
  const plain = await browser.newContext({ javaScriptEnabled: false });
  const page = await plain.newPage();
  await page.goto(`/c/${name}`);
  await expect(item(page, "message 80")).toBeInViewport();
  await expect(item(page, "message 1")).not.toBeInViewport();
  const utc = item(page, "message 80").locator("time");
  await expect(utc).toBeVisible();
  await expect(utc).toHaveText(/^\d\d:\d\d UTC$/);
  await plain.close();

  // A browser in India (UTC+05:30) visits once with JavaScript, which stores its zone; its
  // next first paint, even without JavaScript, is in its time.
  const india = await browser.newContext({ timezoneId: "Asia/Kolkata" });
  const visit = await india.newPage();
  await visit.goto(`/c/${name}`);
  await expect(visit.getByRole("status")).toHaveText("Connected");
  const state = await india.storageState();
  await india.close();
  expect(state.cookies.find((c) => c.name === "flack_tz")?.value).toBe("330");
  const again = await browser.newContext({
    javaScriptEnabled: false,
    timezoneId: "Asia/Kolkata",
    storageState: state,
  });
  const second = await again.newPage();
  await second.goto(`/c/${name}`);
  await expect(item(second, "message 80")).toBeInViewport();
  const time = item(second, "message 80").locator("time");
  const iso = (await time.getAttribute("datetime")) ?? "";
  const local = new Date(Date.parse(iso) + 330 * 60 * 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  await expect(time).toHaveText(`${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}`);
  await expect(time).toBeVisible();
  await again.close();
});
