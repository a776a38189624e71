// The client protocol suite: client/async.js in Chromium against pages
// rendered by the Lua server code and network answers recorded from
// rt:dispatch, rt:call and rt:render (spec/browser/fixtures.lua).
//
//   cd spec/browser && npm install && node --test client.test.mjs
//
// Pages are served through page.route on http://app.test; the progressive
// streaming case uses a local chunked HTTP server instead (page.route cannot
// deliver a body in pieces).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { execFile } from "node:child_process";
import os from "node:os";
import { launch, fixtures, watch, HERE, CLIENT } from "./harness.mjs";

const ORIGIN = "http://app.test";
const CSP = "script-src 'self'";
let browser, M;

before(async () => {
  M = fixtures();
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
});

// ===== the simulated server =====

// Opens a page of the manifest with the recorded answers behind it.
// opts: docs (path -> html), csp, delay (ms before each POST answer),
// partial (path -> "fail" to break a route partial), mutations (count
// mutations from the moment the parser is done).
async function open(key, opts = {}) {
  const page = await browser.context.newPage();
  const seen = await watch(page);
  const log = [], mismatches = [];
  const docs = opts.docs || { [M.pages[key].url]: M.pages[key].html };
  if (opts.mutations) await page.addInitScript(countMutations);
  await page.route("**/*", async (route) => {
    const req = route.request(), url = new URL(req.url());
    const where = url.pathname + url.search;
    const headers = req.headers();
    if (url.origin !== ORIGIN) {
      log.push({ kind: "external", url: req.url() });
      return route.fulfill({ status: 200, contentType: "text/html", body: "<title>elsewhere</title><p id=elsewhere>elsewhere</p>" });
    }
    if (url.pathname === "/__async/client.js") {
      return route.fulfill({ status: 200, contentType: "text/javascript", body: fs.readFileSync(CLIENT, "utf8") });
    }
    if (/^\/\w+\.js$/.test(url.pathname)) {
      return route.fulfill({ status: 200, contentType: "text/javascript",
        body: fs.readFileSync(path.join(HERE, "public", url.pathname.slice(1)), "utf8") });
    }
    if (req.method() === "POST") {
      const entry = { kind: "post", path: url.pathname, body: req.postDataJSON(), headers, start: Date.now() };
      log.push(entry);
      const ex = M.exchanges.find((e) => e.path === url.pathname && isDeepStrictEqual(e.body, entry.body));
      if (opts.delay) await new Promise((r) => setTimeout(r, opts.delay));
      entry.end = Date.now();
      if (!ex) {
        mismatches.push(entry);
        return route.fulfill({ status: 599, contentType: "application/json",
          body: JSON.stringify({ __async_server_result__: 1, error: { code: "fixture-mismatch", message: "no recorded answer" } }) });
      }
      if (ex.status === 204) return route.fulfill({ status: 204, body: "" });
      return route.fulfill({ status: ex.status, contentType: "application/json", body: JSON.stringify(ex.response) });
    }
    if ((headers.accept || "").includes("application/x-async-partial")) {
      log.push({ kind: "partial", path: where, headers });
      const p = M.partials.find((x) => x.path === where);
      if (!p || (opts.partial && opts.partial[where] === "fail")) {
        return route.fulfill({ status: 502, contentType: "text/html", body: "<h1>Bad gateway</h1>" });
      }
      return route.fulfill({ status: p.status, contentType: "application/json", body: JSON.stringify(p.response) });
    }
    log.push({ kind: "document", path: where });
    if (docs[where] == null) return route.fulfill({ status: 404, contentType: "text/plain", body: "not found" });
    return route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: docs[where],
      headers: opts.csp ? { "Content-Security-Policy": CSP } : {} });
  });
  const first = Object.keys(docs)[0];
  await page.goto(ORIGIN + (opts.url || first));
  await ready(page);
  return { page, seen, log, mismatches };
}

// Waits until the client has activated the page (Async.ready).
async function ready(page) {
  await page.waitForFunction(() => window.Async && window.Async.ready);
  await page.evaluate(() => window.Async.ready.then(() => true));
}

// Init script: records every DOM mutation made after the parser finished
// (readyState "interactive" comes before deferred scripts run).
function countMutations() {
  window.__mutations = [];
  document.addEventListener("readystatechange", () => {
    if (document.readyState !== "interactive" || window.__mo) return;
    window.__clientBeforeObserver = typeof window.Async !== "undefined";
    window.__added = {};
    window.__mo = new MutationObserver((rs) => rs.forEach((r) => {
      window.__mutations.push(`${r.type} ${r.target.id || r.target.nodeName} ${r.attributeName || ""}`);
      r.addedNodes.forEach((n) => { if (/^(ARTICLE|UL)$/.test(n.nodeName)) window.__added[n.nodeName] = (window.__added[n.nodeName] || 0) + 1; });
    }));
    window.__mo.observe(document.documentElement, { subtree: true, childList: true, attributes: true, characterData: true });
  });
}

// The mutations counted so far.
async function mutations(page) {
  return page.evaluate(() => {
    window.__mo.takeRecords().forEach((r) => window.__mutations.push(`${r.type} ${r.target.id || r.target.nodeName}`));
    return window.__mutations.slice();
  });
}

const asyncErrors = (page) => page.evaluate(() => window.__asyncErrors);
const text = (page, css) => page.textContent(css);
const exchanges = (p) => M.exchanges.filter((e) => e.path === p);

// Console errors other than Chromium's own line for a non-2xx answer
// ("Failed to load resource: ... 404"), which an error envelope comes with.
const consoleErrors = (t) => t.seen.console.filter((m) => !m.startsWith("Failed to load resource"));

// No console error, page error, CSP violation or fixture mismatch.
async function clean(t, expectedConsole = 0) {
  assert.deepEqual(t.mismatches.map((m) => [m.path, m.body]), []);
  assert.deepEqual(t.seen.pageErrors, []);
  assert.equal(consoleErrors(t).length, expectedConsole, t.seen.console.join("\n"));
  assert.deepEqual(await t.page.evaluate(() => window.__csp), []);
}

// ===== activation =====

test("activation re-renders nothing the server filled (zero mutations)", async () => {
  for (const key of ["lab", "ssr", "product", "product-404", "data"]) {
    const t = await open(key, { mutations: true });
    assert.equal(await t.page.evaluate(() => window.__clientBeforeObserver), false, "observer started before the client");
    assert.deepEqual(await mutations(t.page), [], `${key}: activation mutated the DOM`);
    assert.equal(await t.page.evaluate(() => Async.stats().subscriptions > 0), true, `${key}: nothing was bound`);
    await clean(t);
    await t.page.close();
  }
});

test("snapshot restores signals (async meta paths) and the browser cache", async () => {
  const t = await open("lab");
  const got = await t.page.evaluate(() => ({
    count: Async.signals.get("count"), tone: Async.signals.get("tone.1"), wide: Async.signals.get("tone.2.wide"),
    status: Async.signals.get("stock.$status"), loading: Async.signals.get("stock.$loading"),
    version: Async.signals.get("stock.$version"), sku: Async.signals.get("stock.sku"),
    value: Async.signals.get("stock.$value.qty"), path: Async.signals.get("router.path"),
  }));
  assert.deepEqual(got, { count: 0, tone: "card", wide: true, status: "ready", loading: false, version: 1, sku: "a",
    value: 3, path: "/lab" });
  await t.page.close();
  const s = await open("ssr");
  assert.deepEqual(await s.page.evaluate(() => Async.cache.get("product:123")), { id: "123", title: "Product 123" });
  await clean(s);
  await s.page.close();
});

test("signal store: copy-on-write sets, longest prefix ids, unregistered reads", async () => {
  const t = await open("lab");
  const r = await t.page.evaluate(() => {
    const before = Async.signals.get("tone");
    Async.signals.set("tone.2.wide", false);
    const after = Async.signals.get("tone");
    Async.signals.set("deep.a.b", 1);          // a new id "deep.a.b"
    Async.signals.set("deep", { a: { b: 2 } });   // "deep" no longer shadows the longer id
    let err;
    try { Async.signals.get("nope.x"); } catch (e) { err = e.code + " " + e.message; }
    let ro;
    try { Async.signals.set("stock.$status", "x"); } catch (e) { ro = e.code; }
    return { same: before === after, oldWide: before[1].wide, newWide: after[1].wide,
      first: before[0] === after[0], longest: Async.signals.get("deep.a.b"), short: Async.signals.get("deep.a"),
      err, ro, cls: document.querySelector("#count").className };
  });
  assert.deepEqual(r, { same: false, oldWide: true, newWide: false, first: true, longest: 1, short: { b: 2 },
    err: 'signal-not-registered Signal "nope" is not registered.', ro: "signal-read-only", cls: "count card active" });
  await clean(t);
  await t.page.close();
});

test("bindings update: text, attr, class:NAME, signal:class keeps static classes, value writeback", async () => {
  const t = await open("lab");
  await t.page.evaluate(() => {
    Async.signals.set("count", 7);
    Async.signals.set("active", false);
    Async.signals.set("tone", ["solid", { big: 1, wide: 0 }]);
  });
  assert.equal(await text(t.page, "#count"), "7");
  assert.equal(await t.page.getAttribute("#count", "data-count"), "7");
  assert.equal(await t.page.getAttribute("#count", "class"), "count solid big");
  await t.page.evaluate(() => Async.signals.set("tone", "x"));
  assert.equal(await t.page.getAttribute("#count", "class"), "count x");
  await t.page.fill("#title-input", "Typed");
  assert.equal(await text(t.page, "#title"), "Typed");
  assert.equal(await t.page.evaluate(() => Async.signals.get("title")), "Typed");
  await t.page.evaluate(() => Async.signals.set("title", "From signal"));
  assert.equal(await t.page.inputValue("#title-input"), "From signal");
  assert.equal(t.log.filter((l) => l.kind === "post").length, 0);
  await clean(t);
  await t.page.close();
});

test("signal:prop one way; signal:attr refuses unsafe URLs and event attributes", async () => {
  const t = await open("lab");
  assert.equal(await t.page.isChecked("#agree"), true);
  await t.page.evaluate(() => Async.signals.set("active", false));
  assert.equal(await t.page.isChecked("#agree"), false);
  await t.page.check("#agree");                                     // one way: no writeback
  assert.equal(await t.page.evaluate(() => Async.signals.get("active")), false);
  assert.equal(await t.page.getAttribute("#link", "href"), "/lab#top");
  await t.page.evaluate(() => Async.signals.set("link", " JavaScript:alert(1)"));
  assert.equal(await t.page.getAttribute("#link", "href"), "about:invalid#async-unsafe-url");
  await t.page.evaluate(() => Async.signals.set("link", "mailto:a@b.test"));
  assert.equal(await t.page.getAttribute("#link", "href"), "mailto:a@b.test");
  await t.page.evaluate(() => Async.signals.set("link", false));
  assert.equal(await t.page.getAttribute("#link", "href"), null);
  await t.page.evaluate(() => {
    const b = document.createElement("b");
    b.id = "evil";
    b.setAttribute("signal:attr:onclick", "title");
    document.querySelector("main").append(b);
  });
  await t.page.waitForFunction(() => window.__asyncErrors.length === 1);
  assert.equal((await asyncErrors(t.page))[0].code, "unsafe-binding");
  assert.equal(await t.page.getAttribute("#evil", "onclick"), null);
  await clean(t, 1);
  await t.page.close();
});

// ===== handlers =====

test("click -> Lua handler POST with the exact body and headers -> envelope applied", async () => {
  const t = await open("lab");
  await t.page.click("#inc");
  await t.page.waitForFunction(() => document.querySelector("#count").textContent === "1");
  const [post] = t.log.filter((l) => l.kind === "post");
  assert.equal(post.path, "/__async/handler/increment");
  assert.deepEqual(post.body, exchanges("/__async/handler/increment")[0].body);
  assert.equal(post.headers["content-type"], "application/json");
  assert.equal(post.headers["x-async-request"], "1");
  assert.equal(await t.page.getAttribute("#count", "data-count"), "1");
  await clean(t);
  await t.page.close();
});

test("mounted under a prefix: the client posts to <prefix>/__async/... (read from its own script URL)", async () => {
  const page = await browser.context.newPage();
  const posts = [];
  const html = M.pages.lab.html.split('src="/__async/client.js"').join('src="/shop/__async/client.js"');
  await page.route("**/*", async (route) => {
    const req = route.request(), url = new URL(req.url());
    if (url.pathname === "/shop/__async/client.js") {
      return route.fulfill({ status: 200, contentType: "text/javascript", body: fs.readFileSync(CLIENT, "utf8") });
    }
    if (/^\/\w+\.js$/.test(url.pathname)) {
      return route.fulfill({ status: 200, contentType: "text/javascript",
        body: fs.readFileSync(path.join(HERE, "public", url.pathname.slice(1)), "utf8") });
    }
    if (req.method() === "POST") {
      posts.push(url.pathname);
      const ex = M.exchanges.find((e) => "/shop" + e.path === url.pathname && isDeepStrictEqual(e.body, req.postDataJSON()));
      if (!ex) return route.fulfill({ status: 404, contentType: "application/json", body: "{}" });
      return route.fulfill({ status: ex.status, contentType: "application/json", body: JSON.stringify(ex.response) });
    }
    return route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: html });
  });
  await page.goto(ORIGIN + "/shop/lab");
  await ready(page);
  await page.click("#inc");
  await page.waitForFunction(() => document.querySelector("#count").textContent === "1");
  assert.deepEqual(posts, ["/shop/__async/handler/increment"]);
  await page.close();
});

test("quick clicks: handler calls go one at a time, in order, each with the previous answer's signals", async () => {
  for (const key of ["lab", "ssr"]) {
    const t = await open(key, { delay: 150 });
    const button = key === "lab" ? "#inc" : "button";
    for (let i = 0; i < 3; i++) await t.page.click(button);
    const counter = key === "lab" ? "#count" : "strong";
    await t.page.waitForFunction((c) => document.querySelector(c).textContent === "3", counter);
    const posts = t.log.filter((l) => l.kind === "post");
    assert.equal(posts.length, 3);
    assert.deepEqual(posts.map((p) => p.body.signals.count), [0, 1, 2]);
    for (let i = 1; i < 3; i++) assert.ok(posts[i].start >= posts[i - 1].end, `${key}: call ${i + 1} overlapped call ${i}`);
    await clean(t);
    await t.page.close();
  }
});

test("browser handler registered with Async.use runs locally (ctx.signals, ctx.el)", async () => {
  const t = await open("lab");
  await t.page.click("#bump");
  assert.equal(await text(t.page, "#count"), "5");
  assert.equal(t.log.filter((l) => l.kind === "post").length, 0);
  await clean(t);
  await t.page.close();
});

test("stopPropagation ends the delegated walk; event locals reach browser handlers", async () => {
  const t = await open("lab");
  await t.page.click("#inner");
  assert.equal(await text(t.page, "#count"), "2");                   // the outer on:click did not run
  await t.page.evaluate(() => {
    Async.use({ handler: { probe(ctx, value, checked, dataset, form, ev, el, path) {
      window.__probe = { value, checked, dataset, form, type: ev.type, same: el === ctx.el, path, input: ctx.input, id: ctx.el.id };
      ctx.stop();
    }, never() { window.__never = 1; } } });
    const f = document.createElement("form");
    f.innerHTML = '<input type="checkbox" id="probe" name="box" value="v1" checked data-kind="k" ' +
      'on:change="probe($value, $checked, $dataset, $form, $event, $el, stock.sku); never"><input name="t" value="x">';
    document.querySelector("main").append(f);
  });
  await t.page.uncheck("#probe");
  await t.page.waitForFunction(() => window.__probe);
  assert.deepEqual(await t.page.evaluate(() => [window.__probe, window.__never]), [{ value: "v1", checked: false,
    dataset: { kind: "k" }, form: {}, type: "change", same: true, path: "a", id: "probe",
    input: { value: "v1", checked: false, dataset: { kind: "k" } } }, undefined]);
  await clean(t);
  await t.page.close();
});

test("on:visible runs once when the element first intersects; on:attach cleanup runs on removal", async () => {
  const t = await open("lab");
  await t.page.evaluate(() => {
    window.__seen = 0;
    window.__gone = 0;
    Async.use({ handler: { seen() { window.__seen++; }, hold() { return () => window.__gone++; } } });
    const spacer = document.createElement("div");
    spacer.style.height = "3000px";
    const v = document.createElement("p");
    v.id = "far";
    v.textContent = "far away";
    v.setAttribute("on:visible", "seen");
    v.setAttribute("on:attach", "hold");
    document.querySelector("main").append(spacer, v);
  });
  await t.page.waitForTimeout(300);
  assert.equal(await t.page.evaluate(() => window.__seen), 0);
  await t.page.evaluate(() => document.querySelector("#far").scrollIntoView());
  await t.page.waitForFunction(() => window.__seen === 1);
  await t.page.evaluate(() => window.scrollTo(0, 0));
  await t.page.evaluate(() => document.querySelector("#far").scrollIntoView());
  await t.page.waitForTimeout(200);
  assert.equal(await t.page.evaluate(() => window.__seen), 1);
  await t.page.evaluate(() => document.querySelector("#far").remove());
  await t.page.waitForFunction(() => window.__gone === 1);
  await clean(t);
  await t.page.close();
});

test("a handler's redirect navigates through the router (partial + pushState)", async () => {
  const t = await open("lab");
  await t.page.evaluate(() => { window.__stay = 1; });
  await t.page.click("#leave");
  await t.page.waitForURL(ORIGIN + "/lab?left=1");
  assert.equal(await t.page.evaluate(() => window.__stay), 1);
  assert.deepEqual(t.log.map((l) => `${l.kind} ${l.path}`),
    ["document /lab", "post /__async/handler/leave", "partial /lab?left=1"]);
  assert.deepEqual(await t.page.evaluate(() => Async.signals.get("router.query")), { left: "1" });
  await t.page.click("#inc");                                       // the new route content is live
  await t.page.waitForFunction(() => window.__asyncErrors.length === 1);
  t.mismatches.length = 0;                                          // (its body has the new route's signals)
  await t.page.close();
});

test("a page script that runs before the client queues Async.push(...) declarations", async () => {
  const html = M.pages.lab.html.replace('<script src="/__async/client.js" defer></script><script src="/lab.js" defer></script>',
    '<script src="/early.js"></script><script src="/__async/client.js" defer></script>');
  assert.notEqual(html, M.pages.lab.html);
  const t = await open("lab", { docs: { "/lab": html } });
  await t.page.click("#bump");
  assert.equal(await text(t.page, "#count"), "100");
  await clean(t);
  await t.page.close();
});

test("form -> server function with $form -> value, signals applied; preventDefault keeps the page", async () => {
  const t = await open("lab");
  await t.page.evaluate(() => { window.__stay = 1; });
  await t.page.click("#greet-go");
  await t.page.waitForFunction(() => document.querySelector("#greeting").textContent === "Hello, Ada");
  const [post] = t.log.filter((l) => l.kind === "post");
  assert.equal(post.path, "/__async/server/greet.hello");
  assert.deepEqual(post.body, { args: [{ name: "Ada" }], input: { name: "Ada" }, signals: {} });
  assert.deepEqual(post.body, exchanges("/__async/server/greet.hello")[0].body);
  assert.equal(await t.page.evaluate(() => window.__stay), 1);
  await clean(t);
  await t.page.close();
});

test("error envelope: async:error + console.error with the code, nothing else applied", async () => {
  const t = await open("lab");
  await t.page.click("#restock");
  await t.page.waitForFunction(() => window.__asyncErrors.length > 0);
  const [err] = await asyncErrors(t.page);
  assert.equal(err.code, "out-of-stock");
  assert.equal(err.message, "Nothing left to restock");
  assert.equal(err.target, "restock");
  assert.equal(await text(t.page, "#count"), "0");
  assert.equal(await text(t.page, "#panel"), "no panel");
  assert.equal(new URL(t.page.url()).pathname, "/lab");
  assert.equal(consoleErrors(t).length, 1);
  assert.match(consoleErrors(t)[0], /^\[async\] out-of-stock: Nothing left to restock/);
  assert.deepEqual(t.log.filter((l) => l.kind !== "post"), [{ kind: "document", path: "/lab" }]);
  await t.page.close();
});

test("malformed chains: parsed whole before any step, exact messages as async.chain", async () => {
  const t = await open("lab");
  // every case of the Lua parser's table, through the client's parser
  const norm = (steps) => steps.map((s) => s.builtin ? { kind: "builtin", name: s.builtin }
    : { kind: s.server ? "server" : "handler", [s.server ? "id" : "name"]: s.server || s.handler,
        args: s.args.map((a) => a.path ? { kind: "signal", path: a.path } : { kind: "local", name: a.local }) });
  const luaNorm = (steps) => steps.map((s) => s.kind === "builtin" ? s
    : { ...s, args: Array.isArray(s.args) ? s.args : [] });
  for (const c of M.chains) {
    const got = await t.page.evaluate((src) => {
      try { return { ok: true, steps: Async.parse(src) }; } catch (e) { return { ok: false, code: e.code, message: e.message }; }
    }, c.src);
    if (c.ok) assert.deepEqual(norm(got.steps), luaNorm(c.steps), c.src);
    else assert.deepEqual(got, { ok: false, code: c.code, message: c.message }, c.src);
  }
  // in a page: the first step (a browser handler) must not run
  await t.page.evaluate(() => {
    const b = document.createElement("button");
    b.id = "bad";
    b.setAttribute("on:click", "bump; server.x");
    document.querySelector("main").append(b);
  });
  await t.page.click("#bad");
  const errs = await asyncErrors(t.page);
  assert.equal(errs.length, 1);
  assert.equal(errs[0].code, "invalid-handler-command");
  assert.equal(errs[0].target, "bad");
  assert.equal(await text(t.page, "#count"), "0");
  assert.equal(consoleErrors(t).length, 1);
  assert.match(consoleErrors(t)[0], /^\[async\] invalid-handler-command: /);
  await t.page.close();
});

test("$event and $el are never sent to a Lua handler", async () => {
  const t = await open("lab");
  await t.page.evaluate(() => {
    const b = document.createElement("button");
    b.id = "leak";
    b.setAttribute("on:click", "increment($event)");
    document.querySelector("main").append(b);
  });
  await t.page.click("#leak");
  await t.page.waitForFunction(() => window.__asyncErrors.length > 0);
  const [err] = await asyncErrors(t.page);
  assert.equal(err.code, "invalid-handler-command");
  assert.match(err.message, /\$event cannot be sent to the server/);
  assert.equal(t.log.filter((l) => l.kind === "post").length, 0);
  await t.page.close();
});

// ===== envelopes and boundaries =====

test("envelope order: signals are applied before the boundary swap", async () => {
  const t = await open("lab");
  await t.page.evaluate(() => {
    window.__order = [];
    Async.signals.subscribe("count", (v) => window.__order.push(`count=${v} swapped=${!!document.querySelector(".panel-v1")}`));
  });
  await t.page.click("#show1");
  await t.page.waitForSelector(".panel-v1");
  assert.deepEqual(await t.page.evaluate(() => window.__order), ["count=10 swapped=false"]);
  await clean(t);
  await t.page.close();
});

test("boundary swap: old bindings and lifecycle cleaned up, new content scanned (snapshot inside too)", async () => {
  const t = await open("lab");
  const base = await t.page.evaluate(() => Async.stats().subscriptions);
  await t.page.click("#show1");
  await t.page.waitForSelector(".panel-v1 i[data-attached=yes]", { state: "attached" });
  assert.equal(await text(t.page, "#panel-count"), "10");
  assert.equal(await text(t.page, "#panel-note"), "note 1");        // from the snapshot inside the swapped HTML
  const one = await t.page.evaluate(() => Async.stats().subscriptions);
  assert.ok(one > base);
  await t.page.click("#panel-bump");                                  // delegated events reach new content
  assert.equal(await text(t.page, "#panel-count"), "11");
  assert.equal(await text(t.page, "#count"), "11");
  await t.page.evaluate(() => Async.signals.set("count", 10));      // back to what the recording expects
  await t.page.click("#show2");
  await t.page.waitForSelector(".panel-v2 i[data-attached=yes]", { state: "attached" });
  assert.equal(await t.page.evaluate(() => [window.labAttached, window.labDetached].join()), "2,1");
  assert.equal(await text(t.page, "#panel-note"), "note 2");
  assert.equal(await t.page.evaluate(() => Async.stats().subscriptions), one, "the first panel's bindings leaked");
  const posts = t.log.filter((l) => l.kind === "post");
  assert.deepEqual(posts.map((p) => p.body), exchanges("/__async/handler/showPanel").map((e) => e.body));
  // cleanup is part of the swap itself, not left to a later observer
  assert.deepEqual(await t.page.evaluate(() => {
    Async.swap("panel", "<p id=gone>gone</p>");
    return [window.labDetached, Async.stats().subscriptions];
  }), [2, base]);
  await clean(t);
  await t.page.close();
});

test("async boundary follows $status; keeps its HTML while the status is unchanged", async () => {
  const t = await open("lab");
  await t.page.evaluate(() => { document.querySelector("#stock p.ready").__server = true; });
  await t.page.evaluate(() => Async.signals.set("stock.qty", 9));
  assert.equal(await t.page.evaluate(() => document.querySelector("#stock p.ready").__server), true);
  assert.equal(await text(t.page, "#stock p.ready span"), "9");
  await t.page.evaluate(() => Async.signals.set("stock", { status: "loading", loading: true, value: null, error: null, version: 2 }));
  assert.equal(await text(t.page, "#stock > p"), "Loading stock...");
  await t.page.evaluate(() => Async.signals.set("stock", { status: "ready", loading: false, value: { sku: "z", qty: 7 }, error: null, version: 2 }));
  assert.equal(await text(t.page, "#stock > p"), "Stock of z: 7");
  await t.page.evaluate(() => Async.signals.set("stock", { status: "error", loading: false, value: null, version: 3,
    error: { code: "not-found", message: "No stock for q" } }));
  assert.equal(await text(t.page, "#stock > p.error"), "No stock for q");
  assert.equal(await t.page.locator("#stock > template").count(), 3);
  assert.equal(await t.page.locator("#stock > p").count(), 1);
  await clean(t);
  await t.page.close();
});

// ===== streaming =====

// The streamed document of a fixture stream, chunks joined.
const streamed = (key) => M.streams[key].chunks.map((c) => c.html).join("");

test("streaming: fills and patches already in the document when the deferred client runs", async () => {
  const s = M.streams.streaming;
  const t = await open("streaming", { docs: { [s.url]: streamed("streaming") }, mutations: true });
  // each boundary got its content once: the fill, not the fill and then its template again
  assert.deepEqual(await t.page.evaluate(() => window.__added), { ARTICLE: 1, UL: 1 });
  assert.equal(await text(t.page, "[async\\:boundary=product] h1"), "Keyboard");
  assert.deepEqual(await t.page.$$eval("[async\\:boundary=recs] li", (l) => l.map((x) => x.textContent)), ["Wrist rest", "Keycaps"]);
  assert.equal(await t.page.locator("template[async\\:fill], script[async\\:patch]").count(), 0);
  assert.deepEqual(await t.page.evaluate(() => [Async.signals.get("product.$status"), Async.signals.get("recs.1.title")]),
    ["ready", "Wrist rest"]);
  // delegated events work inside filled content: the example's handler fails on the server (recorded)
  await t.page.click("text=Select");
  await t.page.waitForFunction(() => window.__asyncErrors.length > 0);
  assert.deepEqual(t.log.filter((l) => l.kind === "post").map((p) => p.body), exchanges("/__async/handler/selectProduct").map((e) => e.body));
  assert.equal((await asyncErrors(t.page))[0].code, exchanges("/__async/handler/selectProduct")[0].response.error.code);
  await clean(t, 1);
  await t.page.close();
});

test("streaming: carriers arriving later, patches out of order, applied in seq order", async () => {
  const chunks = M.streams.streaming.chunks.map((c) => c.html);
  // chunk 0 is the shell, 1 = product fill + patch 1, 2 = recs fill + patch 2, 3 = the tail
  const t = await open("streaming", { docs: { [M.streams.streaming.url]: chunks[0] + chunks[3] } });
  const add = (html) => t.page.evaluate((h) => {
    const t = document.createElement("template");
    t.innerHTML = h;
    document.querySelector("main").append(t.content);
  }, html);
  const [fill2, patch2] = chunks[2].split(/(?=<script)/);
  const [fill1, patch1] = chunks[1].split(/(?=<script)/);
  const state = () => t.page.evaluate(() => [Async.signals.get("product.$status"), Async.signals.get("recs.$status")]);
  assert.deepEqual(await state(), ["loading", "loading"]);
  await add(patch2);                                  // seq 2 first: held
  assert.deepEqual(await state(), ["loading", "loading"]);
  assert.equal(await t.page.locator("script[async\\:patch]").count(), 0);
  await add(fill2);                                   // a fill is swapped as it arrives
  assert.deepEqual(await t.page.$$eval("[async\\:boundary=recs] li", (l) => l.map((x) => x.textContent)), ["Wrist rest", "Keycaps"]);
  assert.deepEqual(await state(), ["loading", "loading"]);
  await add(fill1 + patch1);                          // seq 1: both apply, in order
  assert.deepEqual(await state(), ["ready", "ready"]);
  assert.equal(await text(t.page, "[async\\:boundary=product] h1"), "Keyboard");
  assert.deepEqual(await t.page.$$eval("[async\\:boundary=recs] li", (l) => l.map((x) => x.textContent)), ["Wrist rest", "Keycaps"]);
  assert.equal(await t.page.locator("template[async\\:fill], script[async\\:patch]").count(), 0);
  await clean(t);
  await t.page.close();
});

test("streaming: loading -> ready and loading -> error from the product example's stream", async () => {
  for (const [key, want] of [["product", ["h1", "Keyboard", "ready"]], ["product-404", ["p", "Product sku-404 was not found", "error"]]]) {
    const s = M.streams[key];
    const t = await open(key, { docs: { [s.url]: streamed(key) } });
    assert.equal(await text(t.page, `[async\\:boundary=product] > ${want[0]}`), want[1]);
    assert.equal(await t.page.evaluate(() => Async.signals.get("product.$status")), want[2]);
    await clean(t);
    await t.page.close();
  }
});

test("streaming over real chunked HTTP: boundaries appear as they arrive (client loaded async)", async () => {
  const s = M.streams.streaming;
  const SCALE = 6;
  const server = http.createServer(async (req, res) => {
    if (req.url === "/__async/client.js") {
      res.writeHead(200, { "Content-Type": "text/javascript" });
      return res.end(fs.readFileSync(CLIENT));
    }
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": CSP });
    const t0 = Date.now();
    for (const c of s.chunks) {
      const wait = t0 + c.at * SCALE - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // the layout loads the client with defer, which waits for the whole
      // document; `async` lets it run while the stream is still open
      res.write(c.html.replace("<script src=\"/__async/client.js\" defer>", "<script src=\"/__async/client.js\" async>"));
    }
    res.end();
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const page = await browser.context.newPage();
  const seen = await watch(page);
  try {
    await page.goto(`http://127.0.0.1:${server.address().port}${s.url}`, { waitUntil: "commit" });
    await page.waitForFunction(() => {
      const h = document.querySelector("[async\\:boundary=product] h1");
      return h && h.textContent === "Keyboard";
    });
    const mid = await page.evaluate(() => ({
      state: document.readyState,
      recs: document.querySelector("[async\\:boundary=recs] > p").textContent,
      product: window.Async.signals.get("product.$status"),
    }));
    assert.deepEqual(mid, { state: "loading", recs: "Loading recommendations...", product: "ready" });
    await page.waitForFunction(() => document.querySelectorAll("[async\\:boundary=recs] li").length === 2);
    await page.waitForFunction(() => document.readyState === "complete");
    assert.equal(await page.evaluate(() => window.Async.signals.get("recs.$status")), "ready");
    assert.equal(await page.locator("template[async\\:fill], script[async\\:patch]").count(), 0);
    assert.deepEqual(seen.console, []);
    assert.deepEqual(seen.pageErrors, []);
    assert.deepEqual(await page.evaluate(() => window.__csp), []);
  } finally {
    await page.close();
    server.close();
  }
});

// ===== router =====

const NAV = () => ({ "/": M.pages["nav-home"].html, "/products/sku-1": M.pages["nav-sku1"].html });

test("router: link click fetches the route partial, swaps without reload, pushState; Back re-fetches", async () => {
  const t = await open("nav-home", { docs: NAV() });
  await t.page.evaluate(() => { window.__stay = 1; });
  await t.page.click("#nav-sku1");
  await t.page.waitForFunction(() => document.querySelector("[async\\:boundary=route] h1").textContent === "Keyboard");
  assert.equal(new URL(t.page.url()).pathname, "/products/sku-1");
  assert.equal(await t.page.title(), "Keyboard");
  assert.equal(await text(t.page, "#router-path"), "/products/sku-1");
  assert.equal(await text(t.page, "#router-pending"), "false");
  const partial = t.log.find((l) => l.kind === "partial");
  assert.equal(partial.path, "/products/sku-1");
  assert.equal(partial.headers.accept, "application/x-async-partial, application/json");
  assert.equal(partial.headers["x-async-boundary"], "route");
  await t.page.click("#nav-sku2");
  await t.page.waitForFunction(() => document.querySelector("[async\\:boundary=route] h1").textContent === "Headphones");
  assert.deepEqual(await t.page.evaluate(() => Async.signals.get("router.params")), { id: "sku-2" });
  await t.page.goBack();
  await t.page.waitForFunction(() => document.querySelector("[async\\:boundary=route] h1").textContent === "Keyboard");
  assert.equal(new URL(t.page.url()).pathname, "/products/sku-1");
  await t.page.goBack();
  await t.page.waitForFunction(() => document.querySelector("[async\\:boundary=route] h1").textContent === "Home");
  assert.equal(await text(t.page, "#router-path"), "/");
  assert.equal(await t.page.evaluate(() => window.__stay), 1, "the page was reloaded");
  assert.deepEqual(t.log.filter((l) => l.kind !== "post").map((l) => `${l.kind} ${l.path}`),
    ["document /", "partial /products/sku-1", "partial /products/sku-2", "partial /products/sku-1", "partial /"]);
  await clean(t);
  await t.page.close();
});

test("router: GET form submit and a 404 route answer are applied with router state", async () => {
  const t = await open("nav-home", { docs: NAV() });
  await t.page.click("#search-go");
  await t.page.waitForFunction(() => document.querySelector("[async\\:boundary=route] h1").textContent === "Not found: /search");
  assert.equal(new URL(t.page.url()).search, "?q=key+board");
  assert.deepEqual(await t.page.evaluate(() => Async.signals.get("router.query")), { q: "key board" });
  await t.page.click("#nav-missing");
  await t.page.waitForFunction(() => document.querySelector("[async\\:boundary=route] h1").textContent === "No product sku-9");
  await clean(t);
  await t.page.close();
});

test("router: modified clicks, target=_blank, download and external links are left to the browser", async () => {
  const t = await open("nav-home", { docs: NAV() });
  const popup = t.page.context().waitForEvent("page", { timeout: 3000 }).catch(() => null);
  await t.page.click("#nav-blank");
  const p = await popup;
  if (p) await p.close();
  await t.page.click("#nav-sku1", { modifiers: ["Control"] });
  await t.page.click("#nav-sku1", { button: "middle" });
  await t.page.click("#nav-download").catch(() => {});
  await t.page.waitForTimeout(200);
  assert.equal(t.log.filter((l) => l.kind === "partial").length, 0);
  assert.equal(new URL(t.page.url()).pathname, "/");
  await t.page.click("#nav-external");
  await t.page.waitForSelector("#elsewhere");
  assert.equal(new URL(t.page.url()).origin, "https://elsewhere.test");
  assert.equal(t.log.filter((l) => l.kind === "partial").length, 0);
  await t.page.close();
});

test("router: a failed partial fetch falls back to a full navigation", async () => {
  const t = await open("nav-home", { docs: NAV(), partial: { "/products/sku-1": "fail" } });
  await t.page.evaluate(() => { window.__stay = 1; });
  await t.page.click("#nav-sku1");
  await t.page.waitForURL(ORIGIN + "/products/sku-1");
  await ready(t.page);
  assert.equal(await t.page.evaluate(() => window.__stay), undefined);
  assert.equal(await text(t.page, "[async\\:boundary=route] h1"), "Keyboard");
  assert.deepEqual(t.log.filter((l) => l.kind !== "post").map((l) => `${l.kind} ${l.path}`),
    ["document /", "partial /products/sku-1", "document /products/sku-1"]);
  await t.page.close();
});

// ===== CSP and prefixes =====

test("CSP script-src 'self': the client and page script work, no violations (control: inline is blocked)", async () => {
  const t = await open("lab", { csp: true });
  await t.page.click("#inc");
  await t.page.waitForFunction(() => document.querySelector("#count").textContent === "1");
  await t.page.click("#bump");
  assert.equal(await text(t.page, "#count"), "6");
  await t.page.evaluate(() => Async.signals.set("count", 0));   // the state the recorded showPanel call saw
  await t.page.click("#show1");
  await t.page.waitForSelector(".panel-v1 i[data-attached=yes]", { state: "attached" });
  await clean(t);
  // control: the policy is in force, an inline script is refused and reported
  await t.page.evaluate(() => {
    const s = document.createElement("script");
    s.textContent = "window.__inline = 1";
    document.body.append(s);
  });
  await t.page.waitForFunction(() => window.__csp.length > 0);
  assert.equal(await t.page.evaluate(() => window.__inline), undefined);
  await t.page.close();
});

test("data-* prefixes: data-async-container, data-signal-text, data-class-, data-on-click", async () => {
  const t = await open("data", { mutations: true });
  assert.deepEqual(await mutations(t.page), []);
  await t.page.click("#inc");
  await t.page.waitForFunction(() => document.querySelector("#count").textContent === "1");
  assert.deepEqual(t.log.filter((l) => l.kind === "post").map((p) => p.body), exchanges("/__async/handler/increment")
    .filter((e) => e.body.signals["router.path"] === "/data").map((e) => e.body));
  await t.page.evaluate(() => Async.signals.set("hot", true));
  assert.equal(await t.page.getAttribute("#count", "class"), "hot");
  await clean(t);
  await t.page.close();
});

// ===== size =====

test("client/async.js stays within 8 KB minified + gzipped (client/size.sh)", async () => {
  const out = await new Promise((resolve) => {
    execFile("sh", [path.join(HERE, "../../client/size.sh")], (err, stdout, stderr) =>
      resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
  assert.equal(out.code, 0, out.stdout + out.stderr);
  const gz = Number(/(\d+) minified\+gzipped/.exec(out.stdout)[1]);
  assert.ok(gz > 1000 && gz <= 8192, out.stdout);
});

// ===== the end-to-end runner itself =====

test("e2e.mjs passes against the Lua-backed stand-in server (mock.mjs)", async () => {
  const shots = fs.mkdtempSync(path.join(os.tmpdir(), "async-shots-"));
  const out = await new Promise((resolve) => {
    execFile(process.execPath, [path.join(HERE, "e2e.mjs"), "--mock"], { env: { ...process.env, ASYNC_E2E_SCREENSHOTS: shots } },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
  assert.equal(out.code, 0, out.stdout + out.stderr);
  assert.match(out.stdout, /^13 passed, 0 failed, 0 skipped/m);
  assert.ok(fs.readdirSync(shots).length >= 8, "screenshots were not written");
  fs.rmSync(shots, { recursive: true, force: true });
});
