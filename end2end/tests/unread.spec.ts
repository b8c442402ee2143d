// Issue 17, item 3: unread channels in bold with their counts, kept by the server so they
// survive a reload and agree across tabs; mentions highlighted and counted; the tab title
// carrying mentions and private messages; desktop notifications asked for on a click only.
import { test, expect, type Page } from "@playwright/test";
import { User, unique } from "./fixtures/flack";

/** The sidebar link of channel `name` in `page`. */
function channelLink(page: Page, name: string) {
  return page
    .getByRole("navigation", { name: "Channels" })
    .getByRole("link", { name, exact: true });
}

/** Expects `name`'s link in `page` to be bold and described by `counts`, or (with `null`)
 *  to be neither. */
async function expectUnread(page: Page, name: string, counts: string | null): Promise<void> {
  const link = channelLink(page, name);
  if (counts === null) {
    await expect(link).not.toHaveAttribute("aria-describedby", /.+/);
    await expect(link).toHaveCSS("font-weight", "400");
  } else {
    await expect(link).toHaveAccessibleDescription(counts);
    await expect(link).toHaveCSS("font-weight", "700");
  }
}

/** A channel with unread messages is bold and names its counts; the counts come from the
 *  server, so they are the same after a reload and in a second tab, and reading the channel
 *  in one tab clears it in the other (and after a reload of either). */
test("unread channels are bold, with counts that survive a reload and agree across tabs", async ({ browser }) => {
  const room = unique("unread");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob");
  const tab = await bob.context.newPage();
  await tab.goto("/c/general");
  await expect(tab.getByRole("status")).toHaveText("Connected");

  await ada.send("hello there");
  await ada.send(`hi @${bob.name}`);
  await ada.send("anyone?");
  for (const page of [bob.page, tab]) {
    await expectUnread(page, room, "1 mention, 3 unread");
  }
  // The channel being read is not unread.
  await expectUnread(bob.page, "general", null);

  await bob.page.reload();
  await bob.waitConnected();
  await expectUnread(bob.page, room, "1 mention, 3 unread");

  // Reading it in one tab clears it in the other, live and after a reload.
  await bob.openChannel(room);
  await expectUnread(tab, room, null);
  await expectUnread(bob.page, room, null);
  await tab.reload();
  await expect(tab.getByRole("status")).toHaveText("Connected");
  await expectUnread(tab, room, null);

  // New messages count again, from where Bob read.
  await bob.openChannel("general");
  await ada.send("one more");
  await expectUnread(bob.page, room, "1 unread");
  await expectUnread(tab, room, "1 unread");
  await ada.close();
  await bob.close();
});

/** A mention of the reader (any case) is highlighted as text, counted on its channel and
 *  in the tab title; a private message counts in the title and on the conversation too; and
 *  reading them takes them off. */
test("mentions are highlighted and counted, and the title carries them", async ({ browser }) => {
  const room = unique("mention");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob");
  await expect(bob.page).toHaveTitle("#general · Flack");

  const shouted = `@${bob.name.toUpperCase()}`;
  await ada.send(`<b>look</b> ${shouted} here`);
  await expectUnread(bob.page, room, "1 mention, 1 unread");
  await expect(bob.page).toHaveTitle("(1) #general · Flack");

  // A private message counts in the title and on the conversation.
  await ada.page.getByRole("button", { name: "People" }).click();
  await ada.page.getByRole("searchbox", { name: "Find people" }).fill(bob.name);
  await ada.page.getByRole("button", { name: `Message ${bob.name}` }).click();
  await expect(ada.page.getByRole("heading", { level: 1 })).toHaveText(bob.name);
  await ada.send("just between us");
  await expect(bob.page).toHaveTitle("(2) #general · Flack");
  const direct = bob.page
    .getByRole("navigation", { name: "Direct messages" })
    .getByRole("link", { name: ada.name, exact: true });
  await expect(direct).toHaveAccessibleDescription("1 unread");

  // Reading the channel shows the mention marked, as text, and takes it off the title.
  await bob.openChannel(room);
  const mark = bob.log().locator("mark.mention");
  await expect(mark).toHaveText(shouted);
  await expect(bob.log().locator(".body").filter({ has: bob.page.locator("mark") })).toHaveText(
    `<b>look</b> ${shouted} here`,
  );
  await expect(bob.log().locator("b")).toHaveCount(0);
  await expect(bob.page).toHaveTitle(`(1) #${room} · Flack`);
  await expectUnread(bob.page, room, null);

  // Reading the conversation clears the rest.
  await direct.click();
  await expect(bob.page).toHaveTitle(`${ada.name} · Flack`);
  await expect(direct).not.toHaveAttribute("aria-describedby", /.+/);
  await ada.close();
  await bob.close();
});

/** Permission for desktop notifications is asked only when the reader clicks the button,
 *  never on load; once given, a mention while the page is hidden shows a notification. */
test("notifications are asked for on a click, and come while the page is hidden", async ({ browser }) => {
  const room = unique("notify");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const context = await browser.newContext();
  // A stand-in for the browser's notifications and visibility, recording what happens.
  await context.addInitScript(() => {
    const w = window as unknown as Record<string, unknown>;
    w.__asked = 0;
    w.__shown = [] as string[];
    w.__hidden = false;
    class FakeNotification {
      static permission = "default";
      static requestPermission(): Promise<string> {
        w.__asked = (w.__asked as number) + 1;
        FakeNotification.permission = "granted";
        return Promise.resolve("granted");
      }
      constructor(title: string) {
        (w.__shown as string[]).push(title);
      }
    }
    w.Notification = FakeNotification;
    Object.defineProperty(document, "hidden", { get: () => w.__hidden });
  });
  const page = await context.newPage();
  await page.goto("/c/general");
  const bob = new User(context, page, unique("Bob"));
  await bob.chooseName(bob.name);
  await bob.waitConnected();

  const enable = page.getByRole("button", { name: "Enable desktop notifications" });
  await expect(enable).toBeVisible();
  expect(await page.evaluate(() => (window as unknown as { __asked: number }).__asked)).toBe(0);
  await enable.click();
  await expect(page.getByText("Desktop notifications are on.")).toBeVisible();
  expect(await page.evaluate(() => (window as unknown as { __asked: number }).__asked)).toBe(1);

  // Shown: no notification. Hidden: one for a mention.
  await ada.send(`@${bob.name} while you look`);
  await expectUnread(page, room, "1 mention, 1 unread");
  expect(await page.evaluate(() => (window as unknown as { __shown: string[] }).__shown)).toEqual([]);
  await page.evaluate(() => {
    (window as unknown as { __hidden: boolean }).__hidden = true;
  });
  await ada.send(`@${bob.name} while you are away`);
  await expect
    .poll(() => page.evaluate(() => (window as unknown as { __shown: string[] }).__shown))
    .toEqual([`You were mentioned in #${room}`]);
  await ada.close();
  await context.close();
});
