// Loads snapflow's live web view in headless Chromium and checks what a person would see:
// the job graph shows every operator of the job, the throughput number changes while the job
// runs, and checkpoints appear in the history. Saves a screenshot.
//
//   node web_ui.mjs URL SCREENSHOT OPERATOR[,OPERATOR...]
//
// Every wait polls the page for an event (an element, a changed value), each bounded by a
// generous timeout that only marks a failure; nothing waits for a fixed time.
import { chromium } from "playwright-core";

const [url, screenshot, operatorList] = process.argv.slice(2);
if (!url || !screenshot || !operatorList) {
  console.error("usage: node web_ui.mjs URL SCREENSHOT OPERATOR[,OPERATOR...]");
  process.exit(2);
}
const operators = operatorList.split(",");
const TIMEOUT = 60_000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // Root (CI) cannot use Chromium's sandbox.
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);

  // The graph: one node per operator of the job, named.
  await page.waitForFunction(
    (names) => names.every((n) =>
      document.querySelector(`#graph-svg g[data-operator="${CSS.escape(n)}"]`)),
    operators, { timeout: TIMEOUT });
  const shown = await page.$$eval("#graph-svg g[data-operator]", (gs) =>
    gs.map((g) => g.getAttribute("data-operator")));
  console.log(`graph shows: ${shown.join(", ")}`);
  const edges = await page.$$eval("#graph-svg .edge-label", (ls) => ls.map((l) => l.textContent));
  console.log(`edges: ${edges.join(", ")}`);
  if (edges.length < operators.length - 1) throw new Error(`only ${edges.length} edges drawn`);

  // The throughput: a first positive value, then a different one.
  const readThroughput = () => page.$eval("#throughput", (e) => e.textContent);
  await page.waitForFunction(
    () => Number(document.querySelector("#throughput").textContent.replace(/[^0-9.]/g, "")) > 0,
    null, { timeout: TIMEOUT });
  const first = await readThroughput();
  console.log(`throughput: ${first} records/s`);
  await page.waitForFunction(
    (before) => {
      const now = document.querySelector("#throughput").textContent;
      return now !== before && Number(now.replace(/[^0-9.]/g, "")) > 0;
    },
    first, { timeout: TIMEOUT });
  console.log(`throughput changed: ${first} -> ${await readThroughput()} records/s`);

  // Every operator has a row in the operator table, and a checkpoint shows in the history.
  await page.waitForFunction(
    (names) => names.every((n) =>
      document.querySelector(`#operators tr[data-operator="${CSS.escape(n)}"]`)),
    operators, { timeout: TIMEOUT });
  await page.waitForFunction(
    () => [...document.querySelectorAll("#checkpoints tbody tr")].some((r) =>
      r.textContent.includes("COMPLETED")),
    null, { timeout: TIMEOUT });
  await page.waitForFunction(() => document.querySelector("#chart-svg rect") !== null,
    null, { timeout: TIMEOUT });
  console.log("checkpoint history and chart shown");

  if (errors.length > 0) throw new Error(`errors on the page: ${errors.join("; ")}`);
  await page.screenshot({ path: screenshot });
  console.log(`screenshot: ${screenshot}`);
} catch (e) {
  failed = true;
  console.error(`web UI check failed: ${e.stack || e}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
