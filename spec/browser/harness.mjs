// Shared by the browser specs (client.test.mjs) and the end-to-end runner
// (e2e.mjs): Debian's Chromium through playwright-core (never a downloaded
// browser), a fresh profile per launch, and the Lua fixtures.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, "../..");
export const CLIENT = path.join(REPO, "client/async.js");

const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync"];

// Launches Chromium with a fresh --user-data-dir; close() also removes it.
// opts.javaScriptEnabled: false runs the pages with JavaScript off.
export async function launch(opts = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "async-chromium-"));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ARGS,
    viewport: { width: 1000, height: 800 },
    javaScriptEnabled: opts.javaScriptEnabled !== false,
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Runs spec/browser/fixtures.lua with luajit against the Lua modules of
// ASYNC_LUA_ROOT (default: this checkout) and returns the manifest.
export function fixtures() {
  const root = path.resolve(process.env.ASYNC_LUA_ROOT || REPO);
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "async-fixtures-")), "manifest.json");
  const env = {
    ...process.env,
    LUA_PATH: `${root}/lua/?.lua;${root}/lua/?/init.lua;${root}/?.lua;;`,
    LUA_CPATH: `${root}/build/?.so;;`,
  };
  if (!fs.existsSync(path.join(root, "build/async_core.so"))) {
    throw new Error(`${root}/build/async_core.so is missing: run make in ${root} first`);
  }
  execFileSync("luajit", [path.join(HERE, "fixtures.lua"), out], { cwd: root, env, stdio: ["ignore", "inherit", "inherit"] });
  const manifest = JSON.parse(fs.readFileSync(out, "utf8"));
  fs.rmSync(path.dirname(out), { recursive: true, force: true });
  return manifest;
}

// Collects what a page reports: console errors, page errors, async:error
// events and CSP violations (listeners added before any page script).
export async function watch(page) {
  const seen = { console: [], pageErrors: [] };
  page.on("console", (m) => { if (m.type() === "error") seen.console.push(m.text()); });
  page.on("pageerror", (e) => seen.pageErrors.push(String(e)));
  await page.addInitScript(() => {
    window.__asyncErrors = [];
    window.__csp = [];
    document.addEventListener("async:error", (e) => {
      window.__asyncErrors.push({ ...e.detail, target: e.target.id || e.target.nodeName });
    });
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return seen;
}
