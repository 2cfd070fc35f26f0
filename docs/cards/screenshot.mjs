// Screenshots rendered card pages with headless Chromium (playwright-core, Debian's /usr/bin/chromium).
//   node screenshot.mjs jobs.json
// jobs.json: [{"html": "/abs/page.html", "png": "/abs/out.png"}, ...]. Each page renders its card with the
// Adaptive Cards JS renderer, sets window.cardRendered and window.cardProblems; the #frame element is captured.
// Prints one JSON line per job: {"png", "problems": [...], "console": [...]}.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const jobs = JSON.parse(readFileSync(process.argv[2], "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--font-render-hinting=none"],
});
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 600 }, deviceScaleFactor: 2 });
  for (const job of jobs) {
    const page = await context.newPage();
    const consoleLines = [];
    page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") consoleLines.push(m.text()); });
    page.on("pageerror", (e) => consoleLines.push(String(e)));
    await page.goto(pathToFileURL(job.html).href);
    await page.waitForFunction(() => window.cardRendered === true, null, { timeout: 15000 });
    const problems = await page.evaluate(() => window.cardProblems || []);
    await page.locator("#frame").screenshot({ path: job.png });
    console.log(JSON.stringify({ png: job.png, problems, console: consoleLines }));
    await page.close();
  }
} finally {
  await browser.close();
}
