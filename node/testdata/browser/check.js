// check.js URL NODE_NAME [WHERE]: loads the edgepush status page in headless
// Chromium (Debian's, at $CHROMIUM) and checks it. Prints "ready" once the
// page is live and shows the node with no held stream and its four charts
// drawn, flat; then "ok" once the page has shown, without a reload, one
// held stream and a published message, and the charts have moved: a held
// stream, a delivery, a cache hit ratio and an origin latency (the Go test
// opens a stream, makes a cache miss and a hit and publishes in between).
// With WHERE ("region / zone"), the page must show it for the node and
// in its row of the tier's members. Exits non-zero on any failure or page
// error. SCREENSHOT=file.png saves
// the final page.
import { chromium } from "playwright-core";

const [url, nodeName, where] = process.argv.slice(2);
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
  if (where) {
    await page.waitForFunction((w) => !document.getElementById("where").hidden &&
      document.getElementById("where-text").textContent === w &&
      [...document.querySelectorAll("#members tr")].some((tr) => tr.textContent.includes(w)),
    where, { timeout: 10000 });
  }
  const charts = ["chart-held", "chart-deliveries", "chart-hits", "chart-latency"];
  const chartState = () => page.evaluate((ids) => ids.map((id) => {
    const el = document.getElementById(id);
    return {
      id, now: el.dataset.now, peak: el.dataset.peak, text: el.querySelector(".now").textContent,
      paths: [...el.querySelectorAll("svg path.series")].map((p) => p.getAttribute("d") || ""),
    };
  }), charts);
  // Two events drawn: the held chart has a line.
  await page.waitForFunction(() => /L/.test(document.querySelector("#chart-held path.series").getAttribute("d") || ""),
    null, { timeout: 10000 });
  const before = await chartState();
  const flat = { "chart-held": "0,0,0", "chart-deliveries": "0", "chart-hits": "", "chart-latency": "" };
  for (const c of before) {
    if (c.now !== flat[c.id] || c.paths.length !== (c.id === "chart-held" ? 3 : 1)) {
      throw new Error("before any activity: " + JSON.stringify(c));
    }
  }
  console.log("ready");

  await page.waitForFunction(
    () => document.getElementById("conn-stream-held").textContent === "1" &&
      Number(document.getElementById("published").textContent) >= 1 &&
      document.title.includes("1 held"),
    null, { timeout: 15000 });
  // The charts moved: one held stream, a delivery, a hit ratio and an
  // origin latency, all drawn.
  await page.waitForFunction(() => {
    const data = (id) => document.getElementById(id).dataset;
    const drawn = (id) => document.querySelector("#" + id + " path.series").getTotalLength() > 0;
    return data("chart-held").now.startsWith("1,") && drawn("chart-held") &&
      Number(data("chart-deliveries").peak) > 0 && drawn("chart-deliveries") &&
      Number(data("chart-hits").now) > 0 && drawn("chart-hits") &&
      Number(data("chart-latency").now) > 0 && drawn("chart-latency");
  }, null, { timeout: 15000 });
  const after = await chartState();
  if (after[0].paths[0] === before[0].paths[0]) throw new Error("held chart did not move: " + after[0].paths[0]);
  console.log("charts: " + after.map((c) => c.id + " " + c.text).join("; "));
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  if (problems.length) throw new Error(problems.join("\n"));
  console.log("ok");
} finally {
  await browser.close();
}
