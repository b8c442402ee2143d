// Issue 18, item 5: "Ann is typing…" for the room's other members, gone when her message
// arrives or a few seconds after she stops; never shown to herself or to other rooms.
import { test, expect } from "@playwright/test";
import { User, unique } from "./fixtures/flack";

/** Bob sees Ada typing in their channel until her message arrives; Ada never sees her own
 *  notice, and Cy, reading another channel, sees none. A draft left unsent stops showing
 *  by itself. */
test("members see who is typing, and the notice goes by itself", async ({ browser }) => {
  const room = unique("typing");
  const ada = await User.open(browser, "Ada");
  await ada.createAndOpen(room);
  const bob = await User.open(browser, "Bob");
  await bob.openChannel(room);
  const cy = await User.open(browser, "Cy");

  const box = ada.page.getByLabel("Message", { exact: true });
  await box.pressSequentially("hello every");
  const notice = bob.page.getByText(`${ada.name} is typing…`);
  await expect(notice).toBeVisible();
  await expect(ada.page.getByText(/is typing/)).toHaveCount(0);
  await expect(cy.page.getByText(/is typing/)).toHaveCount(0);

  await box.pressSequentially("one");
  await box.press("Enter");
  await expect(bob.log().getByText("hello everyone")).toBeVisible();
  await expect(notice).toBeHidden();

  // A draft typed and left: shown, then gone within a few seconds without a message.
  await ada.page.waitForTimeout(3200);
  await box.pressSequentially("maybe later");
  await expect(notice).toBeVisible();
  await expect(notice).toBeHidden({ timeout: 8000 });
  await expect(cy.page.getByText(/is typing/)).toHaveCount(0);
  for (const user of [ada, bob, cy]) await user.close();
});
