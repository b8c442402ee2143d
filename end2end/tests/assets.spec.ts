// The page's built assets are content-hashed, served compressed, and cached for a long time.
import { test, expect } from "@playwright/test";

/** The WebAssembly and stylesheet the page links to have hashed names, arrive compressed,
 *  and may be cached for a year. */
test("assets are hashed, compressed and long-cached", async ({ page, request }) => {
  await page.goto("/c/general");
  const wasm = await page.locator('link[rel="preload"][as="fetch"]').getAttribute("href");
  const css = await page.locator("link#leptos").getAttribute("href");
  for (const url of [wasm, css]) {
    expect(url).toMatch(/^\/pkg\/flack\.[A-Za-z0-9_-]+\.(wasm|css)$/);
    const response = await request.get(url!, { headers: { "Accept-Encoding": "br, gzip" } });
    expect(response.status()).toBe(200);
    expect(response.headers()["content-encoding"]).toMatch(/^(br|gzip)$/);
    expect(response.headers()["cache-control"]).toBe("public, max-age=31536000, immutable");
  }
});
