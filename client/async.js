/*
 * asyncrt browser client: /__async/client.js (docs/client.md).
 *
 * Activates pages rendered by the Lua server without re-rendering them: it
 * reads the async:snapshot state, attaches bindings and delegated command
 * events, talks to Lua handlers and server functions over HTTP, swaps
 * boundaries, receives streamed fills and patches, and runs the ssr-spa
 * router. The contract is /work/shared/spec/protocol.md; where it is silent
 * the seed framework (@async/framework) is followed.
 *
 * Caveats:
 * - No eval, no Function, no inline script: works under
 *   `Content-Security-Policy: script-src 'self'`.
 * - A numeric path segment on an array counts from 1 (`recs.1.title` is the
 *   first element), as the Lua server reads it; on an object it is a key.
 * - Activation writes a binding only when the DOM differs from the signal;
 *   content that arrives in a streamed fill is trusted as the server wrote
 *   it until its signals change.
 * - Computeds live on the server; a binding on an id the client does not
 *   know keeps the server's output.
 */
(function () {
  "use strict";
  var doc = document, win = window;

  // The path prefix the app is mounted under, read from this script's own
  // URL ("/shop" for /shop/__async/client.js, "" at the root): the
  // endpoints are under it too.
  var BASE = (function (m) { return m && m[1] || ""; })(/^(?:[a-z][\w+.-]*:\/\/[^\/]*)?(\/.*?)?\/__async\/client\.js(?:[?#].*)?$/i
    .exec(doc.currentScript && doc.currentScript.src || ""));

  // ===== ATTRIBUTE PREFIXES =====

  var P = { async: "async:", signal: "signal:", on: "on:", class: "class:" };

  // The full attribute name of kind `k` ("async", "signal", ...) and `name`.
  function A(k, name) { return P[k] + name; }

  // A CSS selector for attribute A(k, name), optionally with a value.
  function sel(k, name, v) {
    return "[" + CSS.escape(A(k, name)) + (v == null ? "" : '="' + CSS.escape(v) + '"') + "]";
  }

  // Switches to the data-* prefixes when the page's container uses them.
  function detectPrefixes() {
    if (!doc.querySelector(sel("async", "container")) && doc.querySelector("[data-async-container]")) {
      P = { async: "data-async-", signal: "data-signal-", on: "data-on-", class: "data-class-" };
    }
  }

  // A selector for a carrier element (snapshot, fill, patch): the server
  // writes these with `async:` whatever the page's prefixes, so both match.
  function carrier(tag, name) {
    return tag + sel("async", name) + (P.async == "async:" ? "" : "," + tag + "[async\\:" + name + "]");
  }

  // The value of a carrier attribute under either prefix.
  function carrierAttr(el, name) {
    return el.getAttribute(A("async", name)) || el.getAttribute("async:" + name);
  }

  // ===== ERRORS =====

  // An Error with a protocol error code and extra detail fields.
  function fail(code, message, extra) {
    var e = new Error(message);
    e.code = code;
    e.extra = extra;
    return e;
  }

  // Reports a failure: an `async:error` CustomEvent (bubbling) on `el` (or
  // the document) and console.error with the code. Never silent.
  function report(err, el) {
    var detail = Object.assign({}, err && err.extra, {
      code: (err && err.code) || "client-error",
      message: String((err && err.message) || err)
    });
    var target = el && el.isConnected ? el : doc;
    target.dispatchEvent(new CustomEvent("async:error", { bubbles: true, detail: detail }));
    console.error("[async] " + detail.code + ": " + detail.message, detail);
  }

  // ===== SIGNALS =====
  // id -> value; an async signal's value is its snapshot form
  // { value, status, loading, error, version }.

  var values = new Map(), asyncIds = new Set(), subs = new Map();
  var depth = 0, changed = new Set();
  var META = { $value: "value", $status: "status", $loading: "loading", $error: "error", $version: "version" };

  // True for a path segment that names an array index ("1", "20"; not "01").
  function isIndex(k) { return /^[1-9]\d*$/.test(k); }

  // True for an async signal's snapshot form.
  function isSnap(v) {
    return !!v && typeof v == "object" && /^(idle|loading|ready|error)$/.test(v.status) && "version" in v;
  }

  // [id, rest segments] of a path: the longest registered prefix is the id.
  function resolve(path) {
    if (values.has(path)) return [path, []];
    var segs = String(path).split(".");
    for (var i = segs.length - 1; i > 0; i--) {
      var id = segs.slice(0, i).join(".");
      if (values.has(id)) return [id, segs.slice(i)];
    }
  }

  // One step into a value: arrays by 1-based index, objects by own key.
  function step(v, k) {
    if (!v || typeof v != "object") return;
    if (Array.isArray(v) && isIndex(k)) return v[k - 1];
    return Object.prototype.hasOwnProperty.call(v, k) ? v[k] : undefined;
  }

  // Reads a path (undefined when nothing is registered under it).
  function read(path) {
    var r = resolve(path);
    if (!r) return;
    var v = values.get(r[0]), rest = r[1];
    if (asyncIds.has(r[0])) {
      var f = META[rest[0]];
      if (f) rest = rest.slice(1);
      v = f == "loading" ? v.status == "loading" : v[f || "value"];
    }
    return rest.reduce(step, v);
  }

  // Copy-on-write: v with segs[i..] set to value (containers copied, a
  // missing one made: an array for an index segment, else an object).
  function assign(v, segs, i, value) {
    if (i == segs.length) return value;
    var k = segs[i];
    var c = Array.isArray(v) ? v.slice() : v && typeof v == "object" ? Object.assign({}, v) : isIndex(k) ? [] : {};
    if (Array.isArray(c) && isIndex(k)) k -= 1;
    c[k] = assign(c[k], segs, i + 1, value);
    return c;
  }

  // Sets a signal's whole value and notifies (at the end of the batch).
  function setRoot(id, v) {
    if (isSnap(v)) asyncIds.add(id);
    else if (asyncIds.has(id)) {
      v = Object.assign({}, values.get(id), { value: v, status: "ready", loading: false, error: null });
    }
    if (values.has(id) && Object.is(values.get(id), v)) return;
    values.set(id, v);
    changed.add(id);
    if (!depth) flush();
  }

  // Writes a path; an unregistered one becomes a new signal id.
  function write(path, v) {
    var r = resolve(path);
    if (!r) return setRoot(path, v);
    var id = r[0], rest = r[1];
    if (!rest.length || (rest[0] == "$value" && rest.length == 1 && asyncIds.has(id))) return setRoot(id, v);
    if (asyncIds.has(id)) {
      if (META[rest[0]]) throw fail("signal-read-only", 'cannot write "' + path + '": async signal meta paths are read-only');
      var st = values.get(id);
      return setRoot(id, Object.assign({}, st, { value: assign(st.value, rest, 0, v) }));
    }
    setRoot(id, assign(values.get(id), rest, 0, v));
  }

  // Runs fn with notifications held until the outermost batch ends.
  function batch(fn) {
    depth++;
    try { return fn(); } finally { if (!--depth) flush(); }
  }

  // Calls the subscribers of every id changed since the last flush.
  function flush() {
    var ids = changed;
    changed = new Set();
    ids.forEach(function (id) {
      Array.from(subs.get(id) || []).forEach(function (fn) {
        try { fn(); } catch (e) { report(e); }
      });
    });
  }

  // Subscribes fn to changes of signal id; returns the unsubscribe function.
  function sub(id, fn) {
    if (!subs.has(id)) subs.set(id, new Set());
    subs.get(id).add(fn);
    return function () { var s = subs.get(id); if (s && s.delete(fn) && !s.size) subs.delete(id); };
  }

  // Applies a map path -> value (snapshot, patch or envelope) in one batch.
  function applySignals(map) {
    batch(function () { for (var k in map || {}) write(k, map[k]); });
  }

  // The handler API for signals (seed names): get, set, update, subscribe.
  var signals = {
    get: function (p) {
      if (!resolve(p)) throw fail("signal-not-registered", 'Signal "' + String(p).split(".")[0] + '" is not registered.');
      return read(p);
    },
    set: write,
    update: function (p, fn) { write(p, fn(read(p))); },
    subscribe: function (p, fn) {
      return subPath(p, function () { fn(read(p), p); });
    },
    has: function (p) { return !!resolve(p); },
    batch: batch
  };

  // Subscribes fn to every prefix of a path, so a signal registered later
  // (an envelope can add ids) still reaches the binding.
  function subPath(path, fn) {
    var segs = String(path).split("."), offs = segs.map(function (_, i) { return sub(segs.slice(0, i + 1).join("."), fn); });
    return function () { offs.forEach(function (off) { off(); }); };
  }

  // ===== BROWSER CACHE =====

  var cache = new Map();

  // ===== SNAPSHOTS =====

  var read1 = new WeakSet();

  // root and its descendants that match CSS selector `css`.
  function within(root, css) {
    return (root.matches && root.matches(css) ? [root] : []).concat(Array.from(root.querySelectorAll(css)));
  }

  // Reads every complete async:snapshot script in root once: signals and
  // the browser cache. While the document streams, a script whose JSON
  // does not parse yet is tried again later.
  function readSnapshots(root) {
    within(root, carrier('script[type="application/json"]', "snapshot")).forEach(function (s) {
      if (read1.has(s)) return;
      var data;
      try { data = JSON.parse(s.textContent); } catch (e) {
        if (doc.readyState == "loading" && !s.nextSibling) return;
        read1.add(s);
        return report(fail("invalid-snapshot", "Could not parse Async snapshot: " + e.message), s);
      }
      read1.add(s);
      applySignals(data.signals);
      var b = data.cache && data.cache.browser;
      for (var k in b || {}) cache.set(k, b[k]);
    });
  }

  // ===== ELEMENT LIFETIME =====

  var cleanups = new WeakMap(), bound = new WeakSet();

  // Runs fn when el is removed by a swap (or otherwise leaves the document).
  function onDestroy(el, fn) {
    if (!cleanups.has(el)) cleanups.set(el, []);
    cleanups.get(el).push(fn);
  }

  // Runs and drops the cleanups of node and its descendants.
  function destroy(node) {
    if (node.nodeType != 1) return;
    within(node, "*").forEach(function (el) {
      var fns = cleanups.get(el);
      cleanups.delete(el);
      bound.delete(el);
      (fns || []).forEach(function (fn) { try { fn(); } catch (e) { report(e, el); } });
    });
  }

  // ===== BINDINGS =====

  // Binds el to a signal path: apply(value) writes the DOM only where it
  // differs. `now` applies at once (client-rendered content); otherwise the
  // server's output stays until the signal changes.
  function bind(el, path, apply, now) {
    var run = function () { if (resolve(path)) apply(read(path)); };
    onDestroy(el, subPath(path, run));
    if (now) run();
  }

  // The text a value shows (JavaScript's String for scalars, "" otherwise).
  function text(v) { return v == null || typeof v == "object" ? "" : String(v); }

  // Class names of a signal:class value: a string, a list or a map name -> bool.
  function classTokens(v, out) {
    if (typeof v == "string" || typeof v == "number") {
      String(v).split(/\s+/).forEach(function (t) { if (t) out.add(t); });
    } else if (Array.isArray(v)) {
      v.forEach(function (x) { classTokens(x, out); });
    } else if (v && typeof v == "object") {
      Object.keys(v).forEach(function (k) { if (v[k]) classTokens(k, out); });
    }
    return out;
  }

  var URL_ATTR = /^(href|src|action|formaction|xlink:href|poster|cite|data|background|ping|manifest|codebase)$/;

  // An attribute value safe for its name: a URL with a scheme other than
  // http(s), mailto or tel is replaced (as the server's fill does).
  function safeAttr(name, v) {
    if (!URL_ATTR.test(name)) return v;
    var m = /^([a-z][\w+.-]*):/i.exec(v.replace(/[\0-\x20]/g, ""));
    return !m || /^(https?|mailto|tel)$/i.test(m[1]) ? v : "about:invalid#async-unsafe-url";
  }

  // Sets `attr` on el (null removes it) when it differs.
  function setAttr(el, attr, t) {
    if (el.getAttribute(attr) === t) return;
    if (t == null) el.removeAttribute(attr); else el.setAttribute(attr, t);
  }

  // The DOM property spelled `name` in lowercase (attribute names are).
  function propName(el, name) {
    if (name in el) return name;
    for (var k in el) if (k.toLowerCase() == name) return k;
    return name;
  }

  // Binds one signal:* or class:* attribute of el.
  function bindAttr(el, kind, rest, path, now) {
    var m = /^(attr|prop|class)[:-](.+)$/.exec(rest);
    if (kind == "class") m = rest ? ["", "class", rest] : null, rest = rest ? "" : "class";
    if (rest == "text") {
      bind(el, path, function (v) { v = text(v); if (el.textContent !== v) el.textContent = v; }, now);
    } else if (rest == "value") {
      listen("input"); listen("change");
      bind(el, path, function (v) { v = text(v); if (el.value !== v) el.value = v; }, now);
    } else if (rest == "class") {
      var prev, statics;
      bind(el, path, function (v) {
        var next = classTokens(v, new Set()), cl = el.classList;
        if (!statics) statics = new Set(Array.from(cl).filter(function (c) { return !next.has(c); }));
        (prev || []).forEach(function (c) { if (!next.has(c) && !statics.has(c) && cl.contains(c)) cl.remove(c); });
        next.forEach(function (c) { if (!cl.contains(c)) cl.add(c); });
        prev = next;
      }, true);
    } else if (m && m[1] == "class") {
      bind(el, path, function (v) { if (el.classList.contains(m[2]) != !!v) el.classList.toggle(m[2], !!v); }, now);
    } else if (m && /^on|^srcdoc$|html$/i.test(m[2])) {
      report(fail("unsafe-binding", "cannot bind " + m[1] + " " + m[2] + ": it would run or parse code"), el);
    } else if (m && m[1] == "attr") {
      bind(el, path, function (v) {
        setAttr(el, m[2], v == null || v === false || typeof v == "object" ? null : v === true ? "" : safeAttr(m[2], String(v)));
      }, now);
    } else if (m) {
      var prop = propName(el, m[2]);
      bind(el, path, function (v) { if (el[prop] !== v) el[prop] = v; }, now);
    } else {
      report(fail("unknown-attribute", "unknown binding attribute " + kind + ":" + rest), el);
    }
  }

  // ===== BOUNDARIES =====

  var shownOf = new WeakMap();   // boundary element -> the status its content shows

  // The <template async:STATUS="id"> child of boundary b, if any.
  function template(b, id, status) {
    return Array.from(b.children).filter(function (t) {
      return t.tagName == "TEMPLATE" && t.getAttribute(A("async", status)) == id;
    })[0];
  }

  // The status an async signal's boundary shows ("idle" shows loading).
  function statusOf(id) {
    var st = asyncIds.has(id) && values.get(id).status;
    return st == "idle" ? "loading" : st || undefined;
  }

  // An async boundary: when its signal's status differs from the one its
  // content shows, the matching template replaces the content. Until then
  // the server's HTML stays (a status first learnt later is adopted).
  function watchBoundary(b, id) {
    if (!["loading", "ready", "error"].some(function (s) { return template(b, id, s); })) return;
    shownOf.set(b, statusOf(id));
    onDestroy(b, sub(id, function () {
      var st = statusOf(id), was = shownOf.get(b);
      if (st == was) return;
      shownOf.set(b, st);
      var t = was && template(b, id, st);
      if (t) replace(b, t.content.cloneNode(true), true, true);
    }));
  }

  // Replaces the children of boundary b with fragment frag: the removed
  // nodes are cleaned up, the new ones scanned. `keep` keeps b's status
  // templates; `now` applies bindings at once (client-rendered content).
  function replace(b, frag, keep, now) {
    Array.from(b.childNodes).forEach(function (n) {
      if (keep && n.tagName == "TEMPLATE" && /^(loading|ready|error)$/.test(statusAttr(n))) return;
      destroy(n);
      n.remove();
    });
    var nodes = Array.from(frag.childNodes);
    b.append(frag);
    var life = [];
    nodes.forEach(function (n) { if (n.nodeType == 1) scan(n, now, life); });
    runLife(life);
  }

  // The status a boundary template stands for ("" when it is none).
  function statusAttr(t) {
    return ["loading", "ready", "error"].filter(function (s) { return t.hasAttribute(A("async", s)); })[0] || "";
  }

  // Swaps html into boundary `id` (an envelope's boundary/html).
  function swap(id, html) {
    var b = doc.querySelector(sel("async", "boundary", id));
    if (!b) throw fail("boundary-not-found", 'No element has ' + A("async", "boundary") + '="' + id + '"');
    var t = doc.createElement("template");
    t.innerHTML = html;
    replace(b, t.content, false, true);
  }

  // ===== SCANNING =====

  // Activates root and its descendants once: snapshots first, then
  // bindings, boundaries and events; lifecycle callbacks go to `life`.
  function scan(root, now, life) {
    readSnapshots(root);
    within(root, "*").forEach(function (el) {
      if (bound.has(el) || /^(TEMPLATE|SCRIPT)$/.test(el.tagName)) return;
      bound.add(el);
      Array.from(el.attributes).forEach(function (a) {
        var name = a.name, v = a.value.trim();
        if (name.indexOf(P.on) == 0) {
          var ev = name.slice(P.on.length);
          if (ev == "attach" || ev == "mount") life.push(function () { if (el.isConnected) run(a.value, el, null, true); });
          else if (ev == "visible") life.push(function () { if (el.isConnected) whenVisible(el, a.value); });
          else listen(ev);
        } else if (name.indexOf(P.signal) == 0) {
          bindAttr(el, "signal", name.slice(P.signal.length), v, now);
        } else if (name.indexOf(P.class) == 0) {
          bindAttr(el, "class", name.slice(P.class.length), v, now);
        } else if (name == A("async", "boundary")) {
          watchBoundary(el, v);
        }
      });
    });
  }

  // ===== LIFECYCLE =====

  var lifeReady = false, lifeQueue = [], io;

  // Runs lifecycle callbacks now, or once the page's own scripts have had
  // the chance to register browser handlers (DOMContentLoaded).
  function runLife(fns) {
    if (!lifeReady) return lifeQueue.push.apply(lifeQueue, fns);
    fns.forEach(function (fn) { fn(); });
  }

  // on:visible: runs the chain once, the first time el intersects the viewport.
  function whenVisible(el, chain) {
    io = io || new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (!e.isIntersecting || !e.target.__asyncVisible) return;
        io.unobserve(e.target);
        var c = e.target.__asyncVisible;
        e.target.__asyncVisible = null;
        run(c, e.target, null, true);
      });
    });
    el.__asyncVisible = chain;
    io.observe(el);
    onDestroy(el, function () { io.unobserve(el); el.__asyncVisible = null; });
  }

  // ===== COMMAND CHAINS =====

  var BUILTINS = /^(prevent|preventDefault|stopPropagation|stopImmediatePropagation)$/;
  var LOCALS = /^\$(value|checked|form|dataset|event|el)$/;
  var SERVER_ID = /^[^.\s();]+(\.[^.\s();]+)*$/, HANDLER_ID = /^[^.\s(),;]+(\.[^.\s(),;]+)*$/;
  var parsed = new Map();

  // Parses the arguments between parentheses; returns args or throws a reason.
  function parseArgs(inner, server) {
    if (!inner.trim()) return [];
    return inner.split(",").map(function (raw, i) {
      var a = raw.trim();
      if (!a) throw "argument " + (i + 1) + " is empty";
      if (/[\s,();]/.test(a)) throw 'bad argument "' + a + '": arguments are signal paths or event locals';
      if (a[0] != "$") return { path: a };
      if (!LOCALS.test(a)) throw 'unknown event local "' + a + '" (known: $value, $checked, $form, $dataset, $event, $el)';
      if (server && /^\$(event|el)$/.test(a)) throw a + " cannot be sent to the server";
      return { local: a };
    });
  }

  // Parses one trimmed step: `name`, `name(args)` or `server.<id>(args)`.
  function parseStep(s) {
    var open = s.indexOf("("), name = s, inner = null;
    if (open >= 0) {
      var close = s.indexOf(")", open + 1);
      name = s.slice(0, open).trim();
      if (close < 0) throw 'missing ")"';
      inner = s.slice(open + 1, close);
      if (inner.indexOf("(") >= 0) throw 'unexpected "(" inside the arguments';
      if (close != s.length - 1) throw 'unexpected text after ")"';
    }
    if (name == "server" || name.indexOf("server.") == 0) {
      var id = name.slice(7);
      if (!id) throw "a server call needs an id, as in server.products.save()";
      if (!SERVER_ID.test(id)) throw 'bad server id "' + id + '"';
      if (inner == null) throw "a server call needs parentheses, as in server." + id + "()";
      return { server: id, args: parseArgs(inner, true) };
    }
    if (name[0] == "$" || !HANDLER_ID.test(name)) throw 'bad handler name "' + name + '"';
    if (BUILTINS.test(name)) {
      if (inner && inner.trim()) throw 'built-in "' + name + '" takes no arguments';
      return { builtin: name };
    }
    return { handler: name, args: inner == null ? [] : parseArgs(inner, false) };
  }

  // Parses a whole chain before anything runs (cached per source text);
  // a malformed chain throws `invalid-handler-command`.
  function parse(src) {
    if (parsed.has(src)) return parsed.get(src);
    var n = 0, steps = src.split(";").map(function (s) { return s.trim(); }).filter(Boolean).map(function (s) {
      n++;
      try { return parseStep(s); } catch (why) {
        throw fail("invalid-handler-command", 'Invalid command chain "' + src + '": step ' + n + ' "' + s + '": ' + why);
      }
    });
    parsed.set(src, steps);
    return steps;
  }

  // Runs chain `src` for element el and event e (null for lifecycle).
  // Steps run in order; a step that returns a promise is awaited, so
  // preventDefault in a leading step still acts on the event. Failures are
  // reported on el and end the chain.
  function run(src, el, e, life) {
    try {
      return next(parse(src), 0, { el: el, event: e, life: life });
    } catch (err) { report(err, el); }
  }

  // Runs steps[i..] of a chain context (see run).
  function next(steps, i, ctx) {
    try {
      for (; i < steps.length && !ctx.stopped; i++) {
        var r = runStep(steps[i], ctx);
        if (r && typeof r.then == "function") {
          return r.then(function () { return next(steps, i + 1, ctx); }, function (err) { report(err, ctx.el); });
        }
      }
    } catch (err) { report(err, ctx.el); }
  }

  var handlers = Object.create(null);   // name -> browser handler (no inherited names)

  // Runs one parsed step.
  function runStep(s, ctx) {
    var e = ctx.event, el = ctx.el;
    if (s.builtin) {
      if (e) e[/^prevent/.test(s.builtin) ? "preventDefault" : s.builtin]();
      return;
    }
    var args = s.args.map(function (a) { return a.path ? read(a.path) : local(a.local, ctx); });
    if (s.server) {
      var sent = {};
      s.args.forEach(function (a, i) { if (a.path) sent[a.path] = args[i]; });
      return post(BASE + "/__async/server/" + encodeURIComponent(s.server), { args: args, input: input(ctx), signals: sent }, el);
    }
    var fn = handlers[s.handler];
    if (typeof fn == "function") {
      var hctx = {
        signals: signals, cache: cache, server: server, event: e, el: el, element: el, input: input(ctx),
        stop: function () { ctx.stopped = true; }
      };
      var r = fn.apply(hctx, [hctx].concat(args));
      if (ctx.life) Promise.resolve(r).then(function (f) { if (typeof f == "function") onDestroy(el, f); });
      return r;
    }
    s.args.forEach(function (a) {
      if (/^\$(event|el)$/.test(a.local)) throw fail("invalid-handler-command", a.local + " cannot be sent to the server (handler " + s.handler + " runs on the server)");
    });
    var body = { args: args, input: input(ctx) };
    return queued(function () {
      body.signals = clientSignals();
      return post(BASE + "/__async/handler/" + encodeURIComponent(s.handler), body, el, function (env) {
        if (env && env.stop) ctx.stopped = true;
      });
    });
  }

  // ===== EVENT LOCALS =====

  // The form an event concerns (the seed's rule): el itself, or the
  // submitted form.
  function formOf(ctx) {
    var el = ctx.el, e = ctx.event;
    if (el && el.tagName == "FORM") return el;
    if (e && e.type == "submit") return e.target.tagName == "FORM" ? e.target : el && el.form;
  }

  // A form's fields as a plain object (repeated names become lists).
  function formObject(form) {
    var out = {};
    new FormData(form).forEach(function (v, k) {
      out[k] = k in out ? [].concat(out[k], v) : v;
    });
    return out;
  }

  // An element's dataset as a plain object, without the protocol's own
  // attributes when the prefixes are data-* (data-on-click is not data).
  function dataset(el) {
    var out = Object.assign({}, el.dataset);
    if (P.on.indexOf("data-") == 0) {
      for (var k in out) if (/^(async|signal|on|class)[A-Z]/.test(k)) delete out[k];
    }
    return out;
  }

  // The value of event local `name` ($value, $checked, $form, ...).
  function local(name, ctx) {
    var el = ctx.el || {};
    if (name == "$event") return ctx.event;
    if (name == "$el") return ctx.el;
    if (name == "$form") { var f = formOf(ctx); return f ? formObject(f) : {}; }
    if (name == "$dataset") return dataset(el);
    return el[name.slice(1)];
  }

  // The `input` of a request (the seed's default): the form's fields, else
  // the element's value, checked and dataset.
  function input(ctx) {
    var f = formOf(ctx), el = ctx.el;
    if (f) return formObject(f);
    var out = {};
    if (!el) return out;
    if ("value" in el) out.value = el.value;
    if ("checked" in el) out.checked = el.checked;
    out.dataset = dataset(el);
    return out;
  }

  // Every client signal whose id does not start with "_".
  function clientSignals() {
    var out = {};
    values.forEach(function (v, id) { if (id[0] != "_") out[id] = v; });
    return out;
  }

  // ===== HTTP =====

  var line = Promise.resolve();

  // Runs task after every handler call queued before it (one at a time,
  // in order), whatever the earlier ones did.
  function queued(task) {
    var p = line.then(task);
    line = p.catch(function () {});
    return p;
  }

  // POSTs a JSON body to an endpoint; returns the applied answer's value.
  function post(url, body, el, peek) {
    return fetch(url, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-Async-Request": "1" }
    }).then(function (res) { return answer(res, el, peek); }, function (e) {
      throw fail("network-error", "POST " + url + " failed: " + e.message, { url: url });
    });
  }

  // Reads a response: 204 is nil, JSON is applied (an envelope) or
  // returned; anything else that is not ok is an `http-error`.
  function answer(res, el, peek) {
    if (res.status == 204) return;
    var json = /json/.test(res.headers.get("Content-Type"));
    return (json ? res.json() : res.text()).then(function (data) {
      if (!res.ok && !(json && isEnvelope(data))) {
        throw fail("http-error", res.url + " answered " + res.status, { status: res.status });
      }
      if (peek) peek(data);
      return apply(data, el);
    }, function (e) {
      throw fail("invalid-json", res.url + " answered invalid JSON: " + e.message, { status: res.status });
    });
  }

  // True for a server result envelope.
  function isEnvelope(v) { return !!v && typeof v == "object" && v.__async_server_result__ === 1; }

  // Applies an envelope in protocol order: error (throws, nothing else
  // applied), signals, cache.browser, boundary/html swap, redirect; returns
  // its value. Any other JSON value is returned unchanged.
  function apply(env, el) {
    if (!isEnvelope(env)) return env;
    if (env.error) {
      var er = env.error;
      throw fail(er.code || "server-error", er.message || "Server error", er);
    }
    applySignals(env.signals);
    var b = env.cache && env.cache.browser;
    for (var k in b || {}) cache.set(k, b[k]);
    if (env.boundary && env.html != null && env.status != 204) swap(env.boundary, env.html);
    if (typeof env.title == "string") doc.title = env.title;
    if (env.redirect) navigate(env.redirect, true);
    return env.value;
  }

  // server.products.get(id) from a browser handler: POST, returns the value.
  function ns(path) {
    return new Proxy(function () {}, {
      get: function (_, k) { return k == "then" || typeof k != "string" ? undefined : ns(path ? path + "." + k : k); },
      apply: function (_, __, args) {
        return post(BASE + "/__async/server/" + encodeURIComponent(path), { args: args, input: {}, signals: {} });
      }
    });
  }
  var server = ns("");

  // ===== DELEGATED EVENTS =====

  var listening = new Set();
  var NO_BUBBLE = /^(focus|blur|load|error|scroll|toggle|invalid|(mouse|pointer)(enter|leave)|play|pause|ended)$/;

  // Adds the one document listener for event type `type` (capture for
  // events that do not bubble).
  function listen(type) {
    if (listening.has(type)) return;
    listening.add(type);
    doc.addEventListener(type, onEvent, NO_BUBBLE.test(type));
  }

  // The delegated listener: writes signal:value back, then runs the
  // on:TYPE chain of the target and of each ancestor (until a chain stops
  // propagation), then lets the router take link clicks and GET forms.
  function onEvent(e) {
    var t = e.target.nodeType == 1 ? e.target : e.target.parentElement, attr = A("on", e.type);
    var vpath = t && /^(input|change)$/.test(e.type) && t.getAttribute(A("signal", "value"));
    if (vpath) { try { write(vpath.trim(), t.value); } catch (err) { report(err, t); } }
    for (var el = t; el && el.nodeType == 1 && !e.cancelBubble; el = NO_BUBBLE.test(e.type) ? null : el.parentElement) {
      if (el.hasAttribute(attr)) run(el.getAttribute(attr), el, e);
    }
    if (!router || e.defaultPrevented) return;
    if (e.type == "click") routeClick(e);
    if (e.type == "submit") routeSubmit(e);
  }

  // ===== ROUTER (ssr-spa) =====

  var router = null, here = location.href, navigation = null;

  // Starts the router for `container` when it holds the route boundary and
  // does not opt out (async:container="ssr" or "mpa").
  function startRouter(container) {
    if (!container || /^(ssr|mpa)$/.test(container.getAttribute(A("async", "container"))) ||
        !container.querySelector(sel("async", "boundary", "route"))) return;
    router = container;
    listen("click");
    listen("submit");
    win.addEventListener("popstate", function () {
      if (location.href.split("#")[0] != here.split("#")[0]) navigate(location.href, false);
      here = location.href;
    });
  }

  // True when a URL can be navigated to inside this page.
  function sameOrigin(u) { return u.origin == location.origin; }

  // Link clicks: same-origin, unmodified, primary button, no target or
  // download, not a jump inside this page.
  function routeClick(e) {
    var a = e.target.closest && e.target.closest("a[href]");
    if (!a || !router.contains(a) || e.button || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    if ((a.target && a.target != "_self") || a.hasAttribute("download") || /\bexternal\b/.test(a.rel)) return;
    var u = new URL(a.href, location.href);
    if (!sameOrigin(u) || (u.hash && u.href.split("#")[0] == location.href.split("#")[0])) return;
    e.preventDefault();
    navigate(u.href, true);
  }

  // GET form submits: the form's fields become the query string.
  function routeSubmit(e) {
    var f = e.target;
    if (!router.contains(f) || (f.method || "get").toLowerCase() != "get" || (f.target && f.target != "_self")) return;
    var u = new URL(f.action || location.href, location.href);
    if (!sameOrigin(u)) return;
    u.search = new URLSearchParams(new FormData(f, e.submitter)).toString();
    e.preventDefault();
    navigate(u.href, true);
  }

  // Navigates to url: fetches the route partial and applies it (boundary,
  // html, signals, title, status), then pushes the history entry. Any
  // failure to get an envelope falls back to a full page load.
  function navigate(url, push) {
    var u = new URL(url, location.href);
    if (!router || !sameOrigin(u)) return location.assign(u.href);
    if (navigation) navigation.abort();
    var ctl = navigation = new AbortController(), path = u.pathname + u.search;
    var query = {};
    u.searchParams.forEach(function (v, k) { query[k] = v; });
    applySignals({ "router.pending": true });
    return fetch(u.href, {
      signal: ctl.signal, credentials: "same-origin",
      headers: { Accept: "application/x-async-partial, application/json", "X-Async-Boundary": "route" }
    }).then(function (res) {
      return /json/.test(res.headers.get("Content-Type")) ? res.json() : null;
    }).catch(function () { return null; }).then(function (env) {
      if (ctl != navigation) return;
      navigation = null;
      if (!isEnvelope(env)) return location.assign(u.href);
      if (push) history.pushState(null, "", u.href);
      here = u.href;
      try {
        applySignals({ "router.url": path, "router.path": u.pathname, "router.query": query, "router.error": null });
        apply(Object.assign({ boundary: "route" }, env), router);
        if (push) u.hash ? (doc.getElementById(u.hash.slice(1)) || doc.body).scrollIntoView() : scrollTo(0, 0);
      } catch (err) {
        applySignals({ "router.error": { code: err.code, message: err.message } });
        report(err, router);
      } finally {
        applySignals({ "router.pending": false });
      }
    });
  }

  // ===== STREAMING RECEIVER =====

  var nextSeq = 1, held = new Map();

  // Applies the streamed carriers in the document, in document order:
  // <template async:fill> swaps as it arrives, <script async:patch> in
  // `seq` order (held until the patches before it came). Carriers are
  // removed once read. While the document is still loading, a carrier the
  // parser may still be writing is left for the next round. `end` (the
  // document has been parsed: the stream is over) reports a missing patch
  // and applies the ones held behind it.
  function receive(end) {
    var loading = doc.readyState == "loading", patches = carrier('script[type="application/json"]', "patch");
    doc.querySelectorAll(carrier("template", "fill") + "," + patches).forEach(function (c) {
      if (c.tagName == "TEMPLATE") {
        if (loading && !c.nextSibling) return;
        // the status the fill shows: its boundary's signal in the patch
        // that follows it (same chunk), else the status the client has
        var id = carrierAttr(c, "fill"), next = c.nextElementSibling, st;
        if (next && next.matches(patches)) {
          try { st = (JSON.parse(next.textContent).signals || {})[id]; } catch (e) { if (loading) return; }
        }
        c.remove();
        var b = doc.querySelector(sel("async", "boundary", id));
        if (!b) return report(fail("boundary-not-found", "Streamed fill for missing boundary " + id));
        try { replace(b, c.content, true, false); } catch (e) { report(e, b); }
        st = isSnap(st) ? st.status : statusOf(id);
        shownOf.set(b, st == "idle" ? "loading" : st);
        return;
      }
      var p;
      try { p = JSON.parse(c.textContent); } catch (e) {
        if (loading && !c.nextSibling) return;
        c.remove();
        return report(fail("invalid-patch", "Could not parse a streamed patch: " + e.message));
      }
      c.remove();
      if (typeof p.seq != "number") return applySignals(p.signals);
      held.set(p.seq, p);
      for (; held.has(nextSeq); nextSeq++) {
        applySignals(held.get(nextSeq).signals);
        held.delete(nextSeq);
      }
    });
    if (end && held.size) {
      report(fail("stream-gap", "Streamed patch " + nextSeq + " never arrived; applying the later ones"));
      Array.from(held.keys()).sort(function (a, b) { return a - b; }).forEach(function (s) {
        applySignals(held.get(s).signals);
      });
      held.clear();
    }
  }

  // ===== BOOT =====

  // The app roots: each async:container, else the body (while the
  // document streams they may not have arrived yet).
  function roots() {
    var c = Array.from(doc.querySelectorAll(sel("async", "container")));
    return c.length ? c : [doc.body || doc.documentElement];
  }

  // Activates what the document holds now: snapshots, each root, streamed
  // carriers.
  function activate() {
    readSnapshots(doc);
    var life = [];
    roots().forEach(function (c) { scan(c, doc.readyState != "loading", life); });
    runLife(life);
    receive();
  }

  // Handles nodes added later (the parser streaming the rest of the page,
  // or scripts): new elements inside a container are scanned (while the
  // page streams, as the server rendered them; later, bound at once),
  // snapshots and carriers read; elements that left the document are
  // cleaned up.
  function onMutations(records) {
    var life = [], rs = roots();
    records.forEach(function (r) {
      r.addedNodes.forEach(function (n) {
        if (n.nodeType == 1 && n.isConnected && rs.some(function (c) { return c.contains(n); })) {
          scan(n, doc.readyState != "loading", life);
        }
      });
      r.removedNodes.forEach(function (n) { if (!n.isConnected) destroy(n); });
    });
    readSnapshots(doc);
    runLife(life);
    receive();
  }

  var ready;

  // Starts the client: prefixes, activation, the router, the observer;
  // lifecycle callbacks wait for DOMContentLoaded.
  function boot() {
    detectPrefixes();
    activate();
    startRouter(roots()[0]);
    new MutationObserver(onMutations).observe(doc.documentElement, { childList: true, subtree: true });
    ready = new Promise(function (done) {
      function go() {
        if (lifeReady) return;
        lifeReady = true;
        if (!router) startRouter(roots()[0]);
        receive(true);
        runLife(lifeQueue.splice(0));
        done(win.Async);
      }
      if (doc.readyState == "complete") go();
      else { doc.addEventListener("DOMContentLoaded", go); win.addEventListener("load", go); }
    });
    win.Async.ready = ready;
  }

  // ===== PUBLIC API =====

  // Declarations a page script queued before the client ran:
  // (window.Async = window.Async || []).push({ handler: { ... } })
  var early = Array.isArray(win.Async) ? win.Async : [];

  // Async.use({ handler: { name(ctx, ...args) {} }, signal: { id: value } })
  function use(decl) {
    Object.assign(handlers, decl.handler);
    batch(function () {
      for (var k in decl.signal || {}) if (!resolve(k)) write(k, decl.signal[k]);
    });
    return win.Async;
  }

  win.Async = {
    version: "0.1.0",
    use: use,
    push: use,
    signals: signals,
    cache: cache,
    server: server,
    navigate: navigate,
    swap: swap,
    parse: parse,
    // counts for tests and debugging: live signal subscriptions
    stats: function () {
      var n = 0;
      subs.forEach(function (s) { n += s.size; });
      return { subscriptions: n, signals: values.size };
    }
  };

  early.forEach(use);
  boot();
})();
