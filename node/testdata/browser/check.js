// check.js URL NODE_NAME: loads the edgepush status page in headless
// Chromium (Debian's, at $CHROMIUM) and checks it. Prints "ready" once the
// page is live and shows the node with no held stream, then "ok" once the
// page has shown, without a reload, one held stream and a published
// message (the Go test opens and publishes in between). Exits non-zero on
// any failure or page error. SCREENSHOT=file.png saves the final page.
import { chromium } from "playwright-core";

const [url, nodeName] = process.argv.slice(2);
if (!url || !nodeName) {
  console.error("usage: node check.js URL NODE_NAME");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push("page error: " + e));
  page.on("console", (m) => m.type() === "error" && problems.push("console error: " + m.text()));
  page.on("requestfailed", (r) => r.url().endsWith("/status/events") || problems.push("request failed: " + r.url()));
  page.on("request", (r) => new URL(r.url()).origin === new URL(url).origin || problems.push("external request: " + r.url()));

  await page.goto(url);
  const text = (id) => page.locator("#" + id).textContent();
  await page.waitForFunction(
    () => document.getElementById("live").textContent === "live" && document.getElementById("version").textContent !== "",
    null, { timeout: 10000 });
  const shown = { node: await text("node-name"), stream: await text("conn-stream-held"), held: await text("held-total") };
  if (shown.node !== nodeName || shown.stream !== "0" || shown.held !== "0") {
    throw new Error("page shows " + JSON.stringify(shown) + ", want node " + nodeName + " and no held connection");
  }
  console.log("ready");

  await page.waitForFunction(
    () => document.getElementById("conn-stream-held").textContent === "1" &&
      Number(document.getElementById("published").textContent) >= 1 &&
      document.title.includes("1 held"),
    null, { timeout: 15000 });
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  if (problems.length) throw new Error(problems.join("\n"));
  console.log("ok");
} finally {
  await browser.close();
}
