#!/usr/bin/env node
// End-to-end runner: the example apps' main interactions in Chromium
// against a running asyncrt HTTP server.
//
//   ASYNC_BASE_URL=http://127.0.0.1:8080 node spec/browser/e2e.mjs
//   node spec/browser/e2e.mjs --mock            (Lua-backed stand-in, mock.mjs)
//   node spec/browser/e2e.mjs --mock --defer    (same, client left deferred)
//   ASYNC_BASE_URL=... node spec/browser/e2e.mjs --no-js   (JavaScript off:
//                       the pages as the server rendered them, no client)
//
// ASYNC_BASE_URL is the gallery (build/asyncrt examples/gallery.lua): each
// scenario's default page is its example under the gallery's prefix
// (/counter/, /product/products/sku-1, ...); ASYNC_E2E_<NAME>_URL (absolute,
// or relative to ASYNC_BASE_URL) points a scenario elsewhere. docs/client.md,
// "End-to-end runner", lists the markup each scenario assumes. Only some:
// ASYNC_E2E_ONLY=counter,router. Screenshots go to build/screenshots/
// (ASYNC_E2E_SCREENSHOTS). Prints "N passed, N failed, N skipped"; exits 1
// when a scenario failed.
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { launch, watch, REPO } from "./harness.mjs";
import { startMock } from "./mock.mjs";

const argv = process.argv.slice(2);
const SHOTS = path.resolve(process.env.ASYNC_E2E_SCREENSHOTS || path.join(REPO, "build/screenshots"));
const TIMEOUT = Number(process.env.ASYNC_E2E_TIMEOUT || 10000);

// Either prefix family: async:/on:/signal: or data-async-/data-on-/data-signal-.
const attr = (kind, name, value) => {
  const v = value == null ? "" : `="${value}"`;
  return `[${kind}\\:${name}${v}], [data-${kind}-${name}${v}]`;
};

class Skip extends Error {}

// ===== helpers =====

// Opens url and waits for the client to have activated the page; checks
// the document's Content-Security-Policy.
async function openPage(page, url) {
  const resp = await page.goto(url);
  assert.ok(resp, `no response for ${url}`);
  assert.ok(resp.status() < 500, `${url} answered ${resp.status()}`);
  const csp = resp.headers()["content-security-policy"] || "";
  assert.match(csp, /script-src 'self'/, `${url}: no Content-Security-Policy with script-src 'self'`);
  await page.waitForFunction(() => window.Async && window.Async.ready, null, { timeout: TIMEOUT });
  await page.evaluate(() => window.Async.ready.then(() => true));
  return resp;
}

// Records POSTs and route partials: { url, path, method, headers, body,
// start, end, status }.
function network(page) {
  const log = [];
  const byReq = new Map();
  page.on("request", (r) => {
    const u = new URL(r.url());
    const h = r.headers();
    if (r.method() !== "POST" && !(h.accept || "").includes("application/x-async-partial")) return;
    const e = { url: r.url(), path: u.pathname + u.search, method: r.method(), headers: h, body: r.postData(),
      start: Date.now() };
    byReq.set(r, e);
    log.push(e);
  });
  const done = (r) => { const e = byReq.get(r); if (e && !e.end) e.end = Date.now(); };
  page.on("requestfinished", done);
  page.on("requestfailed", done);
  page.on("response", (r) => { const e = byReq.get(r.request()); if (e) e.status = r.status(); });
  return log;
}

// Problems the page reported: console errors (Chromium's own line for a
// non-2xx answer aside), page errors, async:error events, CSP violations.
async function problems(page, seen) {
  const inPage = await page.evaluate(() => ({ errors: window.__asyncErrors || [], csp: window.__csp || [] }))
    .catch(() => ({ errors: [], csp: [] }));
  return [
    ...seen.console.filter((m) => !m.startsWith("Failed to load resource")).map((m) => `console: ${m}`),
    ...seen.pageErrors.map((m) => `page error: ${m}`),
    ...inPage.errors.map((e) => `async:error ${e.code}: ${e.message}`),
    ...inPage.csp.map((c) => `CSP violation: ${c}`),
  ];
}

// Waits until locator's text is `want`.
async function textIs(page, selector, want) {
  await page.waitForFunction(([s, w]) => {
    const el = document.querySelector(s);
    return el && el.textContent.trim() === w;
  }, [selector, want], { timeout: TIMEOUT });
}

let shotN = 0;
async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const prefix = argv.includes("--no-js") ? "no-js-" : "";   // a --no-js run keeps the other run's files
  const file = path.join(SHOTS, `${prefix}${String(++shotN).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

// The visible (non-template) text of every boundary, per id.
const boundaryTexts = (page) => page.evaluate(() => {
  const out = {};
  document.querySelectorAll("[async\\:boundary], [data-async-boundary]").forEach((b) => {
    const id = b.getAttribute("async:boundary") || b.getAttribute("data-async-boundary");
    out[id] = Array.from(b.childNodes).filter((n) => n.nodeName !== "TEMPLATE" && n.nodeName !== "SCRIPT")
      .map((n) => n.textContent).join("").replace(/\s+/g, " ").trim();
  });
  return out;
});

// Init script: a timeline of each boundary's visible text from the first
// parsed byte on: { id, text, t, state (document.readyState) }.
function boundaryTimeline() {
  window.__timeline = [];
  const last = new Map();
  const record = () => {
    document.querySelectorAll("[async\\:boundary], [data-async-boundary]").forEach((b) => {
      const id = b.getAttribute("async:boundary") || b.getAttribute("data-async-boundary");
      const text = Array.from(b.childNodes).filter((n) => n.nodeName !== "TEMPLATE" && n.nodeName !== "SCRIPT")
        .map((n) => n.textContent).join("").replace(/\s+/g, " ").trim();
      if (last.get(id) !== text) {
        last.set(id, text);
        window.__timeline.push({ id, text, t: Math.round(performance.now()), state: document.readyState });
      }
    });
  };
  new MutationObserver(record).observe(document, { childList: true, subtree: true, characterData: true });
}

// ===== scenarios =====

// The served client: 200 with an ETag, 304 on If-None-Match, gzip.
async function clientAsset(ctx) {
  const url = new URL("/__async/client.js", ctx.url).href;
  const get = (headers) => new Promise((resolve, reject) => {
    (url.startsWith("https:") ? https : http).get(url, { headers }, (res) => {
      res.resume();
      res.on("end", () => resolve(res));
    }).on("error", reject);
  });
  const a = await get({});
  assert.equal(a.statusCode, 200);
  assert.match(a.headers["content-type"] || "", /javascript/);
  assert.ok(a.headers.etag, "no ETag");
  const b = await get({ "If-None-Match": a.headers.etag });
  assert.equal(b.statusCode, 304, "If-None-Match did not answer 304");
  const c = await get({ "Accept-Encoding": "gzip" });
  assert.equal(c.headers["content-encoding"], "gzip", "no gzip when accepted");
}

// Counter: each click is a Lua handler round trip; five clicks in one task
// lose nothing and go one at a time.
async function counter(ctx) {
  const { page } = ctx;
  await openPage(page, ctx.url);
  const button = attr("on", "click", "increment"), out = attr("signal", "text", "count");
  assert.ok(await page.locator(button).count(), `no ${button} on ${ctx.url}`);
  const n0 = Number((await page.textContent(out)).trim());
  assert.ok(Number.isFinite(n0), "the count is not a number");
  await page.click(button);
  await textIs(page, out, String(n0 + 1));
  await shot(page, "counter-one-click");
  await page.evaluate((s) => { const b = document.querySelector(s); for (let i = 0; i < 5; i++) b.click(); }, button);
  await textIs(page, out, String(n0 + 6));
  await page.waitForTimeout(300);
  assert.equal((await page.textContent(out)).trim(), String(n0 + 6), "more answers arrived than clicks");
  const posts = ctx.net.filter((e) => e.method === "POST");
  assert.equal(posts.length, 6, "one POST per click");
  for (const p of posts) {
    assert.match(p.path, /^(\/[\w.~-]+)*\/__async\/handler\/increment$/, "the handler endpoint (under the app's mount)");
    assert.equal(p.headers["x-async-request"], "1");
    assert.match(p.headers["content-type"], /^application\/json/);
    assert.equal(p.status, 200);
  }
  const counts = posts.map((p) => JSON.parse(p.body).signals.count);
  assert.deepEqual(counts, counts.map((_, i) => n0 + i), "each call carries the count the previous answer left");
  for (let i = 1; i < posts.length; i++) assert.ok(posts[i].start >= posts[i - 1].end, `call ${i + 1} overlapped call ${i}`);
  await shot(page, "counter-quick-clicks");
}

// Counter with JavaScript off (--no-js): the page as the server rendered
// it is right (protocol.md "SSR output": bindings filled before sending):
// the count is there, the buttons are there, the state is inert JSON data,
// and no script ran (the client never activated it).
async function counterNoJs(ctx) {
  const { page } = ctx;
  const resp = await page.goto(ctx.url);
  assert.ok(resp, `no response for ${ctx.url}`);
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()["content-security-policy"] || "", /script-src 'self'/);
  const html = await resp.text();
  const out = attr("signal", "text", "count");
  assert.equal((await page.locator(out).first().textContent()).trim(), "0", "the count is not filled in the HTML");
  assert.match(html, /<strong signal:text="count">0<\/strong>/, "the server did not fill the count");
  assert.equal(await page.locator(attr("on", "click", "increment")).count(), 1, "no + button");
  assert.equal(await page.locator(attr("on", "click", "decrement")).count(), 1, "no - button");
  assert.equal(await page.title(), "Counter");
  const snap = await page.locator('script[type="application/json"][async\\:snapshot]').textContent();
  assert.equal(JSON.parse(snap).signals.count, 0, "the snapshot");
  assert.match(html, /<script src="[^"]*\/__async\/client\.js" defer><\/script>/, "a whole page loads the client deferred");
  // JavaScript is really off: a click changes nothing and posts nothing
  await page.click(attr("on", "click", "increment"));
  await page.waitForTimeout(200);
  assert.equal((await page.locator(out).first().textContent()).trim(), "0");
  assert.equal(ctx.net.length, 0, "a request was made with JavaScript off");
  await shot(page, "counter-no-js");
}

// A form posts a server call and shows the result.
async function form(ctx) {
  const { page } = ctx;
  await openPage(page, ctx.url);
  const sel = 'form[on\\:submit*="server."], form[data-on-submit*="server."]';
  if (!(await page.locator(sel).count())) throw new Skip(`no form with a server call on ${ctx.url}`);
  const before = await page.$$eval(attr("signal", "text"), (els) => els.map((e) => e.textContent));
  await page.evaluate(() => { window.__e2eStay = 1; });
  await shot(page, "form-before");
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST" && /\/__async\/server\//.test(r.url()), { timeout: TIMEOUT }),
    page.locator(sel).first().evaluate((f) => f.requestSubmit()),
  ]);
  assert.ok([200, 204].includes(resp.status()), `the server call answered ${resp.status()}`);
  const req = JSON.parse(resp.request().postData());
  assert.deepEqual(Object.keys(req).sort(), ["args", "input", "signals"]);
  if (resp.status() === 200) {
    const env = await resp.json();
    assert.ok(!env.error, `error envelope: ${JSON.stringify(env.error)}`);
    if (env.signals && Object.keys(env.signals).length) {
      await page.waitForFunction(([s, b]) => Array.from(document.querySelectorAll(s)).some((e, i) => e.textContent !== b[i]),
        [attr("signal", "text"), before], { timeout: TIMEOUT });
    }
  }
  assert.equal(page.url(), ctx.url, "the form navigated");
  assert.equal(await page.evaluate(() => window.__e2eStay), 1, "the page reloaded");
  await shot(page, "form-result");
}

// Route navigation swaps the route boundary without a reload; Back works.
async function router(ctx) {
  const { page } = ctx;
  await openPage(page, ctx.url);
  await page.evaluate(() => { window.__e2eStay = 1; });
  const texts = [(await boundaryTexts(page)).route];
  assert.ok(texts[0] != null, "no route boundary");
  const urls = [page.url()];
  for (const link of ctx.links) {
    const href = new URL(link, ctx.url).pathname;
    await page.evaluate((h) => {
      if (document.querySelector(`a[href="${h}"]`)) return;
      const c = document.querySelector("[async\\:container], [data-async-container]") || document.body;
      const a = document.createElement("a");
      a.href = h;
      a.textContent = `e2e link ${h}`;
      a.style.display = "block";
      c.prepend(a);
    }, href);
    const [partial] = await Promise.all([
      page.waitForResponse((r) => r.request().headers()["x-async-boundary"] === "route", { timeout: TIMEOUT }),
      page.click(`a[href="${href}"]`),
    ]);
    assert.equal(partial.request().headers().accept, "application/x-async-partial, application/json");
    const want = new URL(href, ctx.url).href;
    await page.waitForURL(want, { timeout: TIMEOUT });
    await page.waitForFunction(() => window.Async.signals.get("router.pending") === false, null, { timeout: TIMEOUT });
    const now = (await boundaryTexts(page)).route;
    assert.notEqual(now, texts[texts.length - 1], `the route boundary did not change for ${href}`);
    // router.path is the path inside the app: without the gallery's mount prefix
    assert.equal(await page.evaluate(() => window.Async.signals.get("router.path")),
      new URL(want).pathname.slice(ctx.prefix.length) || "/");
    texts.push(now);
    urls.push(want);
    await shot(page, `router-${new URL(want).pathname.replace(/\W+/g, "-")}`);
  }
  for (let i = texts.length - 2; i >= 0; i--) {
    await page.goBack();
    await page.waitForURL(urls[i], { timeout: TIMEOUT });
    await page.waitForFunction((w) => {
      const b = document.querySelector('[async\\:boundary="route"], [data-async-boundary="route"]');
      return Array.from(b.childNodes).filter((n) => n.nodeName !== "TEMPLATE" && n.nodeName !== "SCRIPT")
        .map((n) => n.textContent).join("").replace(/\s+/g, " ").trim() === w;
    }, texts[i], { timeout: TIMEOUT });
  }
  assert.equal(await page.evaluate(() => window.__e2eStay), 1, "a navigation reloaded the page");
  assert.ok(ctx.net.filter((e) => e.headers["x-async-boundary"] === "route").length >= texts.length - 1 + texts.length - 1,
    "Back did not fetch the route partials");
  await shot(page, "router-back");
}

// Streaming: each pending boundary shows its loading template, then its
// content as it arrives, while the document is still loading.
async function streaming(ctx) {
  const { page } = ctx;
  await page.addInitScript(boundaryTimeline);
  await page.goto(ctx.url, { waitUntil: "commit" });
  await page.waitForFunction(() => window.__timeline && window.__timeline.length > 0, null, { timeout: TIMEOUT });
  await page.waitForLoadState("load");
  await page.waitForFunction(() => window.Async && window.Async.ready, null, { timeout: TIMEOUT });
  await page.evaluate(() => window.Async.ready.then(() => true));
  const timeline = await page.evaluate(() => window.__timeline);
  const ids = [...new Set(timeline.map((e) => e.id))].filter((id) => id !== "route");
  const changed = ids.filter((id) => timeline.filter((e) => e.id === id).length > 1);
  assert.ok(changed.length > 0, `no boundary changed after the shell: ${JSON.stringify(timeline)}`);
  const early = timeline.filter((e) => changed.includes(e.id) && e.state === "loading" &&
    timeline.find((f) => f.id === e.id) !== e);
  assert.ok(early.length > 0, "boundaries were filled only after the document had finished loading " +
    "(the client ran late: a deferred script waits for the whole stream; docs/client.md)");
  assert.equal(await page.locator("template[async\\:fill], script[async\\:patch]").count(), 0, "carriers left behind");
  for (const id of changed) {
    const st = await page.evaluate((i) => window.Async.signals.has(i) ? window.Async.signals.get(`${i}.$status`) : null, id);
    assert.notEqual(st, "loading", `${id} is still loading`);
  }
  ctx.note = changed.map((id) => `${id}@${timeline.filter((e) => e.id === id).pop().t}ms`).join(" ");
  await shot(page, "streaming-done");
}

// Product: loading -> ready for a known product, loading -> error for a
// missing one (the product example's boundary and templates).
async function product(ctx) {
  const { page } = ctx;
  const runs = [[ctx.url, "ready"], [ctx.url404, "error"]];
  await page.addInitScript(boundaryTimeline);
  for (const [url, want] of runs) {
    await page.goto(url);
    await page.waitForFunction(() => window.Async && window.Async.ready, null, { timeout: TIMEOUT });
    await page.evaluate(() => window.Async.ready.then(() => true));
    await page.waitForFunction((w) => window.Async.signals.get("product.$status") === w, want, { timeout: TIMEOUT });
    const timeline = (await page.evaluate(() => window.__timeline)).filter((e) => e.id === "product");
    const loadingText = await page.evaluate(() => {
      const t = document.querySelector('template[async\\:loading="product"], template[data-async-loading="product"]');
      return t && t.content.textContent.replace(/\s+/g, " ").trim();
    });
    assert.ok(loadingText, "no loading template for boundary product");
    assert.equal(timeline[0] && timeline[0].text, loadingText, `${url}: the loading state was never shown`);
    const final = (await boundaryTexts(page)).product;
    const expect = await page.evaluate((w) => window.Async.signals.get(w === "ready" ? "product.title" : "product.$error.message"), want);
    assert.ok(expect && final.includes(expect), `${url}: boundary shows "${final}", expected "${expect}"`);
    await shot(page, `product-${want}`);
  }
}

// ===== the examples' own interactions =====

// Waits for a POST to /__async/<kind>/<name> while `act` runs; returns the
// response (status checked: 200, or 204 for a nil result).
async function posted(page, kind, name, act) {
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST" &&
      new URL(r.url()).pathname.endsWith(`/__async/${kind}/${name}`), { timeout: TIMEOUT }),
    act(),
  ]);
  assert.ok([200, 204].includes(resp.status()), `${kind} ${name} answered ${resp.status()}`);
  const h = resp.request().headers();
  assert.equal(h["x-async-request"], "1");
  assert.match(h["content-type"], /^application\/json/);
  return resp;
}

// Waits for the route partial a click (or submit) fetches.
async function partialFetched(page, act) {
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.request().headers()["x-async-boundary"] === "route", { timeout: TIMEOUT }),
    act(),
  ]);
  assert.equal(resp.request().headers().accept, "application/x-async-partial, application/json");
  return resp;
}

// product: Refresh is a GET form: the router fetches the route partial
// again and the product is loaded again (its fetch number goes up), no reload.
async function productRefresh(ctx) {
  const { page } = ctx;
  await openPage(page, ctx.url);
  await page.evaluate(() => { window.__e2eStay = 1; });
  await page.waitForFunction(() => window.Async.signals.get("product.$status") === "ready", null, { timeout: TIMEOUT });
  const fetch0 = await page.evaluate(() => window.Async.signals.get("product.fetch"));
  assert.ok(Number.isInteger(fetch0), "no product.fetch");
  await partialFetched(page, () => page.click('form[method="get"] button'));
  await page.waitForFunction((n) => window.Async.signals.get("product.fetch") > n, fetch0, { timeout: TIMEOUT });
  await page.waitForFunction(() => window.Async.signals.get("router.pending") === false, null, { timeout: TIMEOUT });
  const shown = (await boundaryTexts(page)).product;
  const fetch1 = await page.evaluate(() => window.Async.signals.get("product.fetch"));
  assert.ok(shown.includes(`fetch #${fetch1}`), `the boundary shows "${shown}", not fetch #${fetch1}`);
  assert.equal(page.url(), ctx.url, "the refresh changed the URL");
  assert.equal(await page.evaluate(() => window.__e2eStay), 1, "the refresh reloaded the page");
  await shot(page, "product-refreshed");
}

// streaming: the Select buttons arrived inside the fills; each runs the Lua
// handler `select` with the title it shows.
async function streamingSelect(ctx) {
  const { page } = ctx;
  await openPage(page, ctx.url);
  for (const id of ["product", "reviews", "recs"]) {
    await page.waitForFunction((i) => window.Async.signals.get(`${i}.$status`) === "ready", id, { timeout: TIMEOUT });
  }
  const out = attr("signal", "text", "selected");
  assert.equal((await page.textContent(out)).trim(), "nothing yet");
  const resp = await posted(page, "handler", "select", () => page.click(attr("on", "click", "select(product.title)")));
  assert.deepEqual(JSON.parse(resp.request().postData()).args, ["Keyboard"]);
  await textIs(page, out, "Keyboard");
  await posted(page, "handler", "select", () => page.click(attr("on", "click", "select(recs.2.title)")));
  await textIs(page, out, "Keycaps");
  await shot(page, "streaming-selected");
}

// components: on:attach and on:visible run the page script's browser
// handlers (no request); a click on a toggle runs the Lua handler `toggle`.
async function components(ctx) {
  const { page } = ctx;
  await openPage(page, ctx.url);
  const toggle = (k) => `.toggle[data-key="${k}"]`;
  await page.waitForFunction(() => document.querySelectorAll('.toggle[data-attached="true"]').length === 3, null,
    { timeout: TIMEOUT });
  await page.waitForFunction((s) => document.querySelector(s).dataset.visible === "true", toggle("wifi"), { timeout: TIMEOUT });
  assert.equal(await page.getAttribute(toggle("airplane"), "data-visible"), null, "below the fold, yet visible");
  await page.waitForFunction(() => window.Async.signals.get("home.Product.1.product.$status") === "ready", null,
    { timeout: TIMEOUT });
  assert.equal((await boundaryTexts(page))["home.Product.1.product"], "Keyboard");
  assert.equal(ctx.net.length, 0, "the lifecycle handlers made requests");
  const wasOn = await page.evaluate((s) => document.querySelector(s).classList.contains("on"), toggle("bluetooth"));
  const resp = await posted(page, "handler", "toggle", () => page.click(toggle("bluetooth")));
  assert.equal(JSON.parse(resp.request().postData()).args[0].key, "bluetooth", "toggle($dataset) sends data-key");
  await page.waitForFunction(([s, on]) => document.querySelector(s).classList.contains("on") === on,
    [toggle("bluetooth"), !wasOn], { timeout: TIMEOUT });
  await shot(page, "components-toggled");
  await page.locator(toggle("airplane")).scrollIntoViewIfNeeded();
  await page.waitForFunction((s) => document.querySelector(s).dataset.visible === "true", toggle("airplane"),
    { timeout: TIMEOUT });
  const log = (await page.textContent(attr("signal", "text", "lifecycle"))).split("\n");
  for (const line of ["attach wifi", "attach bluetooth", "attach airplane", "visible wifi", "visible airplane"]) {
    assert.ok(log.includes(line), `the lifecycle log has no "${line}": ${JSON.stringify(log)}`);
  }
  await shot(page, "components-visible");
}

// server-call: the form's server.greet.say($form) answers the greeting and
// how often this name was greeted (kept in the server cache across requests).
async function serverCall(ctx) {
  const { page } = ctx;
  await openPage(page, ctx.url);
  await page.evaluate(() => { window.__e2eStay = 1; });
  const name = `Ada ${Date.now() % 100000}`;
  await page.fill('input[name="name"]', name);
  for (const n of [1, 2]) {
    const resp = await posted(page, "server", "greet.say", () => page.click("form button"));
    const req = JSON.parse(resp.request().postData());
    assert.deepEqual(req.args, [{ name }]);
    const env = await resp.json();
    assert.equal(env.signals && env.signals.greeted, n,
      `greeting ${n} counted ${env.signals && env.signals.greeted}: the server cache did not keep the count across requests`);
    await textIs(page, attr("signal", "text", "greeting"), `Hello, ${name}!`);
    await textIs(page, attr("signal", "text", "greeted"), String(n));
  }
  await shot(page, "server-call-greeted");
  await page.fill('input[name="name"]', "  ");
  await posted(page, "server", "greet.say", () => page.press('input[name="name"]', "Enter"));
  await textIs(page, attr("signal", "text", "greeting"), "Type a name first.");
  assert.equal(page.url(), ctx.url, "the form navigated");
  assert.equal(await page.evaluate(() => window.__e2eStay), 1, "the page reloaded");
}

// partials: the list partial's cards link to the product partial (nested
// components), whose link leads back; each click swaps the route boundary.
async function partials(ctx) {
  const { page } = ctx;
  await openPage(page, ctx.url);
  await page.evaluate(() => { window.__e2eStay = 1; });
  assert.equal(await page.locator("article.card").count(), 2);
  const routeText = async () => (await boundaryTexts(page)).route;
  const list = await routeText();
  assert.match(list, /^Products Keyboard 129\.50 EUR \*\*\*\*- Headphones 89\.00 EUR \*\*\*\*\*$/);
  await partialFetched(page, () => page.click("article.card >> nth=1 >> a"));
  await page.waitForFunction(() => window.Async.signals.get("router.pending") === false, null, { timeout: TIMEOUT });
  assert.equal(await routeText(), "Headphones 89.00 EUR ***** All products");
  assert.equal(await page.title(), "Headphones");
  assert.match(page.url(), /\/products\/sku-2$/);
  await shot(page, "partials-product");
  await partialFetched(page, () => page.click("text=All products"));
  await page.waitForFunction((w) => {
    const b = document.querySelector('[async\\:boundary="route"], [data-async-boundary="route"]');
    return b.textContent.replace(/\s+/g, " ").trim() === w;
  }, list, { timeout: TIMEOUT });
  assert.equal(page.url(), ctx.url);
  assert.equal(await page.evaluate(() => window.__e2eStay), 1, "a navigation reloaded the page");
}

// cache: three panels show one fill (single flight); "Ask again" is a hit
// within the TTL (same fill); "Read the tip" reads the browser cache, no request.
async function cache(ctx) {
  const { page } = ctx;
  await openPage(page, ctx.url);
  for (const p of ["a", "b", "c"]) {
    await page.waitForFunction((i) => window.Async.signals.get(`panel.${i}.$status`) === "ready", p, { timeout: TIMEOUT });
  }
  const fills = await page.evaluate(() => ["a", "b", "c"].map((p) => window.Async.signals.get(`panel.${p}.fill`)));
  assert.ok(fills.every((f) => f === fills[0]), `three fills: ${fills}`);
  const texts = await boundaryTexts(page);
  assert.deepEqual(["a", "b", "c"].map((p) => texts[`panel.${p}`]),
    ["A", "B", "C"].map((p) => `${p}: fill #${fills[0]}`));
  const resp = await posted(page, "server", "report.check", () => page.click(attr("on", "click", "server.report.check()")));
  const env = await resp.json();
  assert.equal(env.value.fill, fills[0],
    "asked again within the TTL, yet filled again: the server cache did not outlive the page's request");
  await textIs(page, attr("signal", "text", "report.fill"), String(fills[0]));
  await shot(page, "cache-hit");
  const before = ctx.net.length;
  await page.click(attr("on", "click", "readTip"));
  await textIs(page, attr("signal", "text", "tip"), await page.evaluate(() => window.Async.cache.get("tip:today")));
  assert.equal(ctx.net.length, before, "reading the browser cache made a request");
  await shot(page, "cache-tip");
}

// ssr: activation changes nothing the server rendered (the snapshot panel
// aside, which the page script fills); the panel shows the snapshot the
// client read; the counter then runs over the Lua handler.
function recordActivation() {
  window.__mutations = [];
  document.addEventListener("readystatechange", () => {
    if (document.readyState !== "interactive") return;
    new MutationObserver((list) => {
      for (const m of list) {
        const el = m.target.nodeType === 1 ? m.target : m.target.parentElement;
        if (el && !el.closest("pre.snapshot") && el.closest('[async\\:boundary="route"]')) {
          window.__mutations.push(`${m.type} ${el.nodeName}`);
        }
      }
    }).observe(document, { childList: true, subtree: true, characterData: true, attributes: true });
  });
}

async function ssr(ctx) {
  const { page } = ctx;
  await page.addInitScript(recordActivation);
  await openPage(page, ctx.url);
  await page.waitForFunction(() => document.querySelector("pre.snapshot").textContent.startsWith("{"), null,
    { timeout: TIMEOUT });
  assert.deepEqual(await page.evaluate(() => window.__mutations), [], "activation changed the server's HTML");
  const shown = JSON.parse(await page.textContent("pre.snapshot"));
  const inPage = await page.evaluate(() => ({
    count: window.Async.signals.get("count"), path: window.Async.signals.get("router.path"),
    cached: window.Async.cache.get("product:123"),
  }));
  assert.equal(shown.signals.count, inPage.count);
  assert.equal(shown.signals["router.path"], inPage.path);
  assert.deepEqual(shown.cache.browser["product:123"], inPage.cached);
  assert.deepEqual(inPage.cached, { id: "123", title: "Product 123" });
  await shot(page, "ssr-snapshot");
  const out = attr("signal", "text", "count");
  await posted(page, "handler", "increment", () => page.click(attr("on", "click", "increment")));
  await textIs(page, out, String(inPage.count + 1));
  await shot(page, "ssr-after-click");
}

// The examples' pages under the gallery's prefixes (examples/gallery.lua).
const GALLERY = {
  counter: "/counter/", form: "/server-call/", router: "/router/", stream: "/streaming/",
  product: "/product/products/sku-1", product404: "/product/products/sku-404", components: "/components/",
  serverCall: "/server-call/", partials: "/partials/", cache: "/cache/", ssr: "/ssr/products/123",
};

// ===== runner =====

async function main() {
  let mock, base = process.env.ASYNC_BASE_URL;
  if (argv.includes("--mock")) {
    mock = await startMock({ deferClient: argv.includes("--defer") });
  } else if (!base) {
    console.error("usage: ASYNC_BASE_URL=http://host:port node spec/browser/e2e.mjs   (or --mock)");
    process.exit(2);
  }
  // a scenario's page: ASYNC_E2E_<NAME>_URL, else the mock's, else the
  // example's page under the gallery's prefix
  const url = (name, key) => {
    const v = process.env[`ASYNC_E2E_${name}_URL`] || (mock ? mock.urls[key] : GALLERY[key]);
    return new URL(v, base || mock.urls.counter).href;
  };
  // the router example's mount prefix ("" on its own, /router in the gallery)
  const routerPrefix = process.env.ASYNC_E2E_ROUTER_PREFIX ??
    (mock || process.env.ASYNC_E2E_ROUTER_URL ? "" : "/router");
  const noJs = argv.includes("--no-js");
  const all = [
    { name: "counter-no-js", run: counterNoJs, url: url("COUNTER", "counter"), noJs: true },
    { name: "client-asset", run: clientAsset, url: url("COUNTER", "counter"), page: false },
    { name: "counter", run: counter, url: url("COUNTER", "counter") },
    { name: "form", run: form, url: url("FORM", "form") },
    { name: "router", run: router, url: url("ROUTER", "router"), prefix: routerPrefix,
      links: (process.env.ASYNC_E2E_ROUTER_LINKS || "about,products/sku-1,nowhere").split(",") },
    { name: "streaming", run: streaming, url: url("STREAM", "stream") },
    { name: "product", run: product, url: url("PRODUCT", "product"), url404: url("PRODUCT_404", "product404") },
    // the examples' own interactions (examples/NAME/README.md, "Click")
    { name: "product-refresh", run: productRefresh, url: url("PRODUCT", "product") },
    { name: "streaming-select", run: streamingSelect, url: url("STREAM", "stream") },
    { name: "components", run: components, url: url("COMPONENTS", "components") },
    { name: "server-call", run: serverCall, url: url("SERVER_CALL", "serverCall") },
    { name: "partials", run: partials, url: url("PARTIALS", "partials") },
    { name: "cache", run: cache, url: url("CACHE", "cache") },
    { name: "ssr", run: ssr, url: url("SSR", "ssr") },
  ];
  // with --no-js only the scenarios written for JavaScript off, and only those
  const scenarios = all.filter((s) => Boolean(s.noJs) === noJs);
  const only = process.env.ASYNC_E2E_ONLY ? process.env.ASYNC_E2E_ONLY.split(",") : null;
  if (!noJs) fs.rmSync(SHOTS, { recursive: true, force: true });
  const browser = await launch({ javaScriptEnabled: !noJs });
  const counts = { passed: 0, failed: 0, skipped: 0 };
  try {
    for (const s of scenarios) {
      if (only && !only.includes(s.name)) continue;
      const ctx = { ...s };
      let page, seen;
      if (s.page !== false) {
        page = await browser.context.newPage();
        seen = await watch(page);
        ctx.page = page;
        ctx.net = network(page);
      }
      try {
        await s.run(ctx);
        if (page) {
          const bad = await problems(page, seen);
          assert.deepEqual(bad, [], "the page reported problems");
        }
        counts.passed++;
        console.log(`ok      ${s.name}${ctx.note ? `  (${ctx.note})` : ""}`);
      } catch (e) {
        if (e instanceof Skip) {
          counts.skipped++;
          console.log(`skip    ${s.name}: ${e.message}`);
        } else {
          counts.failed++;
          console.log(`not ok  ${s.name}: ${e.message.split("\n").join("\n        ")}`);
          if (page) {
            await shot(page, `${s.name}-failure`).catch(() => {});
            for (const p of await problems(page, seen)) console.log(`        ${p}`);
          }
        }
      } finally {
        if (page) await page.close();
      }
    }
  } finally {
    await browser.close();
    if (mock) await mock.close();
  }
  console.log(`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped (screenshots: ${SHOTS})`);
  process.exit(counts.failed ? 1 : 0);
}

await main();
