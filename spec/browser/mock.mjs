// A stand-in for the asyncrt HTTP server, for dry runs of e2e.mjs until the
// real one exists: every answer comes from the Lua runtime through
// bridge.lua (pages streamed with rt:render_stream and replayed with their
// recorded timing, handler and server endpoints through rt:dispatch and
// rt:call, route partials through rt:render). One port per example app.
//
//   node mock.mjs            prints the URLs and serves until Ctrl-C (--defer:
//                            the client deferred even where a layout says async)
//   node e2e.mjs --mock      runs the e2e scenarios against it
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import readline from "node:readline";
import zlib from "node:zlib";
import { HERE, REPO, CLIENT } from "./harness.mjs";

const CSP = "script-src 'self'";

// Starts luajit bridge.lua; ask(request) answers one request at a time.
function startBridge() {
  const root = path.resolve(process.env.ASYNC_LUA_ROOT || REPO);
  const child = spawn("luajit", [path.join(HERE, "bridge.lua")], {
    cwd: root,
    env: { ...process.env, LUA_PATH: `${root}/lua/?.lua;${root}/lua/?/init.lua;${root}/?.lua;;`,
      LUA_CPATH: `${root}/build/?.so;;` },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const waiting = [];
  readline.createInterface({ input: child.stdout }).on("line", (line) => waiting.shift()(JSON.parse(line)));
  let line = Promise.resolve();
  return {
    ask(req) {
      const p = line.then(() => new Promise((resolve) => {
        waiting.push(resolve);
        child.stdin.write(JSON.stringify(req) + "\n");
      }));
      line = p.catch(() => {});
      return p;
    },
    close() { child.stdin.end(); },
  };
}

// Reads a request body.
function body(req) {
  return new Promise((resolve) => {
    const parts = [];
    req.on("data", (c) => parts.push(c));
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
  });
}

// Sends a JSON envelope (204: no body).
function sendJson(res, status, value) {
  if (status === 204) return res.writeHead(204).end();
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(value));
}

const errorEnvelope = (code, message) => ({ __async_server_result__: 1, error: { name: "Error", code, message } });

// Serves /__async/client.js with an ETag, 304 and gzip (protocol.md).
function sendClient(req, res) {
  const js = fs.readFileSync(CLIENT);
  const etag = `"${crypto.createHash("sha1").update(js).digest("hex").slice(0, 16)}"`;
  if (req.headers["if-none-match"] === etag) return res.writeHead(304, { ETag: etag }).end();
  const gzip = /\bgzip\b/.test(req.headers["accept-encoding"] || "");
  res.writeHead(200, { "Content-Type": "text/javascript; charset=utf-8", ETag: etag,
    ...(gzip ? { "Content-Encoding": "gzip" } : {}) });
  res.end(gzip ? zlib.gzipSync(js) : js);
}

// One app's server. opts.deferClient rewrites a layout's `async` client
// script to `defer` (docs/client.md, "Streaming and defer").
function appServer(bridge, app, opts) {
  return http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, "http://mock");
      if (url.pathname === "/__async/client.js") return sendClient(req, res);
      if (url.pathname === "/lab.js") {
        res.writeHead(200, { "Content-Type": "text/javascript" });
        return res.end(fs.readFileSync(path.join(HERE, "public/lab.js")));
      }
      // an example's files (examples/NAME/public)
      const file = app.startsWith("ex/") && req.method === "GET" && publicFile(app.slice(3), url.pathname);
      if (file) {
        res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] || "application/octet-stream" });
        return res.end(fs.readFileSync(file));
      }
      if (req.method === "POST") {
        const m = /^\/__async\/(handler|server)\/([^/]+)$/.exec(url.pathname);
        if (!m) return sendJson(res, 404, errorEnvelope("not-found", "No endpoint " + url.pathname));
        if (req.headers["x-async-request"] !== "1" || !/^application\/json/.test(req.headers["content-type"] || "")) {
          return sendJson(res, 403, errorEnvelope("forbidden", "POST needs X-Async-Request: 1 and JSON"));
        }
        let parsed;
        try { parsed = JSON.parse(await body(req)); } catch {
          return sendJson(res, 400, errorEnvelope("bad-json", "The body is not JSON"));
        }
        const r = await bridge.ask({ op: m[1], app, name: decodeURIComponent(m[2]), body: parsed });
        return sendJson(res, r.status, r.response);
      }
      if ((req.headers.accept || "").includes("application/x-async-partial")) {
        const r = await bridge.ask({ op: "partial", app, url: url.pathname + url.search });
        return sendJson(res, r.status, r.response);
      }
      const r = await bridge.ask({ op: "stream", app, url: url.pathname + url.search });
      res.writeHead(r.status, { "Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": CSP });
      const t0 = Date.now();
      for (const c of r.chunks) {
        const wait = t0 + c.at * (opts.scale || 1) - Date.now();
        if (wait > 0) await new Promise((done) => setTimeout(done, wait));
        let html = c.html;
        if (opts.deferClient) html = html.replace('<script src="/__async/client.js" async>', '<script src="/__async/client.js" defer>');
        res.write(html);
      }
      res.end();
    } catch (e) {
      if (!res.headersSent) sendJson(res, 500, errorEnvelope("mock-error", String(e)));
      else res.end();
    }
  });
}

// The files an example serves from its public/ folder, by extension.
const TYPES = { ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8" };

// examples/NAME/public/<pathname> when it is a file inside that folder.
function publicFile(name, pathname) {
  const dir = path.join(REPO, "examples", name, "public");
  const file = path.resolve(dir, "." + decodeURIComponent(pathname));
  if (!file.startsWith(dir + path.sep)) return null;
  try { return fs.statSync(file).isFile() ? file : null; } catch { return null; }
}

// scenario key -> [app (spec/browser/apps/serve.lua), path]: the served
// examples (examples/NAME/app.lua, "ex/NAME"), each on a port of its own,
// as the gallery mounts each under a prefix of its own.
const APPS = {
  counter: ["ex/counter", "/"],
  form: ["ex/server-call", "/"],
  router: ["ex/router", "/"],
  stream: ["ex/streaming", "/"],
  product: ["ex/product", "/products/sku-1"],
  product404: ["ex/product", "/products/sku-404"],
  components: ["ex/components", "/"],
  serverCall: ["ex/server-call", "/"],
  partials: ["ex/partials", "/"],
  cache: ["ex/cache", "/"],
  ssr: ["ex/ssr", "/products/123"],
};

// Starts one server per app; returns { urls: { scenario -> URL }, close() }.
export async function startMock(opts = {}) {
  const bridge = startBridge();
  const servers = {}, urls = {};
  for (const [key, [app, where]] of Object.entries(APPS)) {
    if (!servers[app]) {
      servers[app] = appServer(bridge, app, opts);
      await new Promise((r) => servers[app].listen(0, "127.0.0.1", r));
    }
    urls[key] = `http://127.0.0.1:${servers[app].address().port}${where}`;
  }
  return {
    urls,
    async close() {
      for (const s of Object.values(servers)) {
        s.closeAllConnections();
        await new Promise((r) => s.close(r));
      }
      bridge.close();
    },
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.join(HERE, "mock.mjs")) {
  const m = await startMock({ deferClient: process.argv.includes("--defer") });
  for (const [k, u] of Object.entries(m.urls)) console.log(`${k.padEnd(11)} ${u}`);
}
