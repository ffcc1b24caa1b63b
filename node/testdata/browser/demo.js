// demo.js URL: the demo's origin switch in headless Chromium (Debian's, at
// $CHROMIUM). A first tab loads the demo page through the node and takes
// the origin down ("down"); a +1 there still reaches it; a second tab then
// opens while the origin is down, connects from the node's cache and
// updates on the next +1 ("live"). The script then waits for a line on
// stdin (the Go test checks the origin is really down meanwhile), brings
// the origin back up ("up") and ends with "ok". Exits non-zero on any
// failure or page error. SCREENSHOT=file.png saves the second tab.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const [url] = process.argv.slice(2);
if (!url) {
  console.error("usage: node demo.js URL");
  process.exit(2);
}
const input = createInterface({ input: process.stdin });
const stdin = input[Symbol.asyncIterator]();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const problems = [];
try {
  const context = await browser.newContext();
  const open = async (name) => {
    const page = await context.newPage();
    page.on("pageerror", (e) => problems.push(name + ": page error: " + e));
    page.on("console", (m) => m.type() === "error" && problems.push(name + ": console error: " + m.text()));
    page.on("response", (r) => r.status() >= 400 && problems.push(name + ": HTTP " + r.status() + " for " + r.url()));
    page.on("requestfailed", (r) => r.url().includes("/events?") || problems.push(name + ": request failed: " + r.url()));
    page.on("request", (r) => new URL(r.url()).origin === new URL(url).origin || problems.push(name + ": external request: " + r.url()));
    const resp = await page.goto(url);
    if (!resp || resp.status() !== 200) throw new Error(name + ": page answered " + (resp && resp.status()));
    await page.waitForFunction(() => document.getElementById("status").textContent === "connected", null, { timeout: 10000 });
    return { page, cache: (await resp.allHeaders())["x-cache"] };
  };
  const value = (page, name) => page.locator(`.counter[data-name="${name}"] .value`).textContent();
  const waitValue = (page, name, want) => page.waitForFunction(
    ([n, w]) => document.querySelector(`.counter[data-name="${n}"] .value`).textContent === w, [name, want], { timeout: 10000 });
  const waitOrigin = (page, state) => page.waitForFunction(
    (s) => document.getElementById("origin-state").textContent === s && !document.getElementById("origin-toggle").disabled,
    state, { timeout: 10000 });
  const plusOne = (page, name) => page.locator(`.counter[data-name="${name}"] button`).click();

  const first = (await open("first tab")).page;
  await waitOrigin(first, "up");
  const a0 = Number(await value(first, "a"));
  if (!Number.isInteger(a0)) throw new Error("counter a shows " + JSON.stringify(await value(first, "a")));

  await first.locator("#origin-toggle").click();
  await waitOrigin(first, "down");
  const hint = await first.locator("#origin-hint").textContent();
  if (!hint.includes("open a new tab") || !hint.includes("connects and updates from the cache")) {
    throw new Error("hint while down: " + JSON.stringify(hint));
  }
  console.log("down");

  // A publish while the origin is down: the first tab's stream gets it.
  await plusOne(first, "a");
  await waitValue(first, "a", String(a0 + 1));

  // The second tab opens from the cache: the page, then its stream (whose
  // cached copy the +1 purged: the node asks the origin, is refused, and
  // serves the copy with the messages published since).
  const second = await open("second tab");
  if (second.cache !== "HIT" && second.cache !== "STALE") throw new Error("second tab's page: X-Cache " + second.cache);
  await waitValue(second.page, "a", String(a0 + 1));
  await waitOrigin(second.page, "down");
  await plusOne(second.page, "a");
  await waitValue(second.page, "a", String(a0 + 2));
  await waitValue(first, "a", String(a0 + 2));
  if (process.env.SCREENSHOT) await second.page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  console.log("live");

  await stdin.next(); // the Go test has looked at the origin
  input.close();
  await second.page.locator("#origin-toggle").click();
  await waitOrigin(second.page, "up");
  console.log("up");
  if (problems.length) throw new Error(problems.join("\n"));
  console.log("ok");
} finally {
  await browser.close();
}
