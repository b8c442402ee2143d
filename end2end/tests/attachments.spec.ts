// File attachments: images preview for everyone in the room, other files are download links,
// and a private conversation's files reach only its two participants.
import { test, expect } from "@playwright/test";
import { User, unique } from "./fixtures/flack";

const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
  "base64",
);

/** An image chosen with the file picker shows as a preview in another browser; a text file
 *  dropped on the message box shows as a link named by its file name. */
test("attachments are previewed or linked", async ({ browser }) => {
  const room = unique("files");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob", `/c/${room}`);

  await ada.page.getByLabel("Attach file").setInputFiles({
    name: "dot.png",
    mimeType: "application/octet-stream",
    buffer: PNG,
  });
  await expect(ada.page.getByText("dot.png (", { exact: false })).toBeVisible();
  await ada.send("look at this");
  const image = bob.log().getByRole("img", { name: "dot.png" });
  await expect(image).toBeVisible();
  await expect
    .poll(() => image.evaluate((img: HTMLImageElement) => img.naturalWidth))
    .toBe(1);

  // Drop a file on the message box.
  await ada.page.evaluate(() => {
    const data = new DataTransfer();
    data.items.add(new File(["meeting notes"], "notes.txt", { type: "text/plain" }));
    const form = document.querySelector("form.composer")!;
    form.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
  });
  await expect(ada.page.getByText("notes.txt (", { exact: false })).toBeVisible();
  await ada.page.getByRole("button", { name: "Send" }).click();
  const link = bob.log().getByRole("link", { name: "notes.txt", exact: true });
  await expect(link).toBeVisible();
  const response = await bob.page.request.get(await link.getAttribute("href") ?? "");
  expect(response.status()).toBe(200);
  expect(response.headers()["content-disposition"]).toContain("attachment");
  expect(await response.text()).toBe("meeting notes");
  await ada.close();
  await bob.close();
});

/** An image in a private conversation loads for both participants and is refused to a third
 *  user who has its address. */
test("private attachments stay private", async ({ browser }) => {
  const room = unique("lobby");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob", `/c/${room}`);
  const eve = await User.open(browser, "Eve", `/c/${room}`);

  await ada.page
    .getByRole("list", { name: "Online" })
    .getByRole("button", { name: `Message ${bob.name}` })
    .click();
  await expect(ada.page.getByRole("heading", { level: 1 })).toHaveText(bob.name);
  await ada.page.getByLabel("Attach file").setInputFiles({ name: "secret.png", mimeType: "image/png", buffer: PNG });
  await expect(ada.page.getByText("secret.png (", { exact: false })).toBeVisible();
  await ada.send("for your eyes only");
  const mine = ada.log().getByRole("img", { name: "secret.png" });
  await expect(mine).toBeVisible();
  const src = (await mine.getAttribute("src")) ?? "";

  await bob.page
    .getByRole("navigation", { name: "Direct messages" })
    .getByRole("link", { name: ada.name, exact: true })
    .click();
  const theirs = bob.log().getByRole("img", { name: "secret.png" });
  await expect.poll(() => theirs.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(1);

  const stolen = await eve.page.request.get(src);
  expect(stolen.status()).toBe(403);
  await ada.close();
  await bob.close();
  await eve.close();
});

/** While a file is on its way up, the message box shows a progress bar that moves; when the
 *  upload ends the bar gives way to the file's name and size. The upload is slowed down with
 *  Chromium's network throttling so there is time to see it. */
test("an upload shows its progress", async ({ browser }) => {
  const room = unique("slow");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);

  const cdp = await ada.context.newCDPSession(ada.page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 20,
    downloadThroughput: -1,
    uploadThroughput: 256 * 1024,
  });

  await ada.page.getByLabel("Attach file").setInputFiles({
    name: "big.bin",
    mimeType: "application/octet-stream",
    buffer: Buffer.alloc(1024 * 1024, 7),
  });
  const bar = ada.page.getByRole("progressbar", { name: "Upload progress" });
  await expect(bar).toBeVisible();
  // The bar reports part of the file sent: more than nothing, less than all of it.
  // (`position` is the bar's value over its maximum.)
  await expect
    .poll(() => bar.evaluate((p: HTMLProgressElement) => p.position), { timeout: 10_000 })
    .toBeGreaterThan(0);
  const midway = await bar.evaluate((p: HTMLProgressElement) => p.position).catch(() => 1);
  expect(midway).toBeLessThan(1);

  await expect(ada.page.getByText("big.bin (1.0 MB)", { exact: false })).toBeVisible({ timeout: 15_000 });
  await expect(bar).toBeHidden();
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: -1,
  });
  await ada.send("the big one");
  await expect(ada.log().getByRole("link", { name: "big.bin", exact: true })).toBeVisible();
  await ada.close();
});
