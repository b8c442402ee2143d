// Cross-site requests: a page on another origin cannot use the visitor's browser to call
// Flack's server functions (hardening issue 15, item 11).
import { test, expect } from "@playwright/test";
import * as http from "http";
import type { AddressInfo } from "net";
import { User, unique } from "./fixtures/flack";

/** Serves `html` once on 127.0.0.1 at a port of its own (another origin than Flack's), and a
 *  plain page after that, so a form that posts itself on load is posted once even if the
 *  answer sends the browser back. */
async function serveOtherSite(html: string): Promise<http.Server> {
  let served = 0;
  const server = http.createServer((_request, response) => {
    response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    response.end(served++ === 0 ? html : "<!doctype html><p>Thanks for visiting.</p>");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

/** The visitor's session cookie, as the browser holds it. */
async function tokenCookie(user: User): Promise<string | undefined> {
  const cookies = await user.context.cookies();
  return cookies.find((cookie) => cookie.name === "flack_token")?.value;
}

/** A page on another origin that posts a form to `/api/register` as soon as it loads is
 *  refused (403, `cross_site`): the visitor's token cookie stays theirs and their page still
 *  shows them connected under their own name. */
test("another site's form cannot replace the visitor's session", async ({ browser, baseURL }) => {
  const ada = await User.open(browser, "Ada");
  const before = await tokenCookie(ada);
  expect(before).toBeTruthy();

  const attacker = unique("Mallory");
  const site = await serveOtherSite(`<!doctype html>
    <form method="post" action="${baseURL}/api/register">
      <input name="name" value="${attacker}">
    </form>
    <script>document.forms[0].submit();</script>`);
  try {
    const { port } = site.address() as AddressInfo;
    const answer = ada.page.waitForResponse((r) => r.url().endsWith("/api/register"));
    await ada.page.goto(`http://127.0.0.1:${port}/`, { waitUntil: "commit" });
    const response = await answer;
    await ada.page.waitForLoadState("load");
    expect(await tokenCookie(ada)).toBe(before);
    expect(response.status()).toBe(403);
    expect(await response.json()).toMatchObject({ code: "cross_site" });
  } finally {
    site.close();
  }

  await ada.page.goto("/c/general");
  await ada.waitConnected();
  await expect(ada.page.getByRole("dialog")).toBeHidden();
  // The attacker's name was not taken: someone else can still choose it.
  const other = await browser.newContext();
  const page = await other.newPage();
  await page.goto("/c/general");
  const claimed = new User(other, page, attacker);
  await claimed.chooseName(attacker);
  await claimed.waitConnected();
  await claimed.close();
  await ada.close();
});
