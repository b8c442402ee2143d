// Requirements 4 and 5: opening a channel shows its 100 most recent messages, oldest first,
// each with name and time; a message sent in one browser appears in another at once.
import { test, expect } from "@playwright/test";
import { User, seedMessages, unique } from "./fixtures/flack";

/** After 150 messages, opening the channel shows exactly the last 100, oldest first, each
 *  with its author and a machine-readable time. */
test("opening a channel shows its 100 most recent messages", async ({ browser }) => {
  const ada = await User.open(browser, "Ada");
  const name = unique("busy");
  await ada.createAndOpen(name);
  const seeder = unique("Seeder");
  await seedMessages(ada.page, name, seeder, 150);

  const bob = await User.open(browser, "Bob", `/c/${name}`);
  const items = bob.log().getByRole("listitem");
  await expect(items).toHaveCount(100);
  await expect(items.first()).toContainText("message 51");
  await expect(items.last()).toContainText("message 150");
  await expect(items.first().locator(".author")).toHaveText(seeder);
  const datetime = await items.first().locator("time").getAttribute("datetime");
  expect(Number.isNaN(Date.parse(datetime ?? ""))).toBe(false);
  await ada.close();
  await bob.close();
});

/** A message typed in one browser appears in a second browser in the same channel without a
 *  reload, with the sender's name and the server's time in local time; Enter sends. */
test("messages appear live in other browsers", async ({ browser }) => {
  const name = unique("live");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(name);
  const bob = await User.open(browser, "Bob", `/c/${name}`);

  await ada.send("Hello <b>Bob</b>, shipping today?");
  await expect(ada.page.getByLabel("Message", { exact: true })).toHaveValue("");
  const item = bob.log().getByRole("listitem").filter({ hasText: "shipping today?" });
  await expect(item).toHaveCount(1);
  await expect(item.locator(".author")).toHaveText(ada.name);
  await expect(item.locator(".body")).toHaveText("Hello <b>Bob</b>, shipping today?");
  await expect(item.locator("b")).toHaveCount(0);

  // The time shown is the server's timestamp in the browser's local time.
  const time = item.locator("time");
  const datetime = (await time.getAttribute("datetime")) ?? "";
  const expected = await bob.page.evaluate((iso) => {
    const d = new Date(iso);
    const pad = (n: number) => String(n).padStart(2, "0");
    return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }, datetime);
  await expect(time).toHaveText(expected);

  // And the reply comes back the other way.
  await bob.send("Yes!");
  await expect(ada.log().getByRole("listitem").filter({ hasText: "Yes!" })).toHaveCount(1);
  await ada.close();
  await bob.close();
});

/** An empty message is refused in the page with a clear message, and nothing is posted. */
test("empty messages are refused", async ({ browser }) => {
  const name = unique("quiet");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(name);
  await ada.send("   ");
  await expect(ada.page.locator("form.composer").getByRole("alert")).toHaveText(
    "Messages can't be empty.",
  );
  await expect(ada.log().getByRole("listitem")).toHaveCount(0);
  await ada.close();
});
