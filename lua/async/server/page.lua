--- Pages and route partials (protocol.md "SSR output", "Streaming", "Route
-- partials"; docs/endpoints.md).
--
-- A page is rendered with rt:render_stream in a coroutine of its own (the
-- renderer) while the request's coroutine waits for the first of: the
-- render finished (the page did not wait: one buffered answer with
-- Content-Length), or the shell was written and the renderer is waiting
-- for async signals (pending boundaries at shell time: the answer streams,
-- chunked, the shell first). The renderer owns the request runtime and
-- destroys it when it ends, however it ends (done, error, client gone), so
-- neither an unread stream nor a transport that never calls `stream` can
-- keep it alive; cancelling the request's abort token (the client went
-- away, or `write` failed) aborts its runs at once.
--
-- With `stream = false` a page is rendered with rt:render_document, which
-- waits for every async signal the page needs (up to `timeout`), and never
-- streams.
local loop = require("async.loop")
local abort_mod = require("async.kernel.abort")
local render = require("async.ssr.render")
local response = require("async.server.response")
local worker = require("async.server.worker")

local type, tostring, pcall, xpcall, concat = type, tostring, pcall, xpcall, table.concat

local _M = {}

local RESULT = response.RESULT
local CLOSED = render.CLOSED

local failure = worker.failure
_M.failure = failure

-- the message of a failure record
local function message_of(f)
  local e = f.err
  if type(e) == "table" and e.message ~= nil then
    return (e.code and (tostring(e.code) .. ": ") or "") .. tostring(e.message)
  end
  return tostring(e)
end
_M.message_of = message_of

-- the document headers after Content-Type/Content-Length
local function doc_headers(m)
  local h = { { "Vary", "Accept" } }
  if m.csp then h[#h + 1] = { "Content-Security-Policy", m.csp } end
  return h
end

-- the answer for a page that failed to render
local function failed(m, ctx, f)
  ctx:fail(f)
  local detail = m.env == "development" and f.trace or nil   -- the traceback starts with the message
  return response.error_document(500, detail, m.csp, { { "Vary", "Accept" } })
end

-- the answer when the client went away before the head was sent
local function gone(ctx, why)
  ctx.entry.error = "closed: " .. tostring(why or "client disconnected")
  return response.new(499, nil, nil)
end

-- ===== buffered pages (stream = false) =====

local function whole(m, ctx)
  local req = ctx.req
  local rt = m:runtime(ctx, req.abort)
  local how, ok, r = worker.run(req.abort, rt.render_document, rt, ctx.url, { abort = req.abort, timeout = m.timeout })
  m:destroy(rt, ctx)
  if how == "aborted" then return gone(ctx, req.abort.reason) end
  if not ok then
    if r.err == CLOSED then return gone(ctx, req.abort and req.abort.reason) end
    return failed(m, ctx, r)
  end
  return response.new(r.status, response.HTML_TYPE, r.html, doc_headers(m))
end

-- ===== streamed pages =====

--- The page answer for GET/HEAD `ctx.url` (see the module comment).
function _M.document(m, ctx)
  if not m.stream then return whole(m, ctx) end
  local req = ctx.req
  local l = loop.get_loop()
  -- cancelled when the client goes away or a write fails; the renderer's runs stop
  local abort = abort_mod.new()
  local st = { chunks = {}, first = 1, last = 0, done = false, closed = false }
  local waiter
  local function wake()
    local w = waiter
    if w then
      waiter = nil
      l:defer(w)
    end
  end
  local function wait() loop.await(function(resume) waiter = resume end) end
  local unlink
  if req.abort then
    unlink = req.abort:on_abort(function(reason)
      pcall(abort.cancel, abort, reason)
      wake()
    end)
  end
  local rt = m:runtime(ctx, abort)
  -- the runtime is destroyed once: when the renderer ends, or on the loop's
  -- next tick after the abort fired (a renderer whose app code waits on an
  -- aborted token is never resumed, so it would never end)
  local destroyed = false
  local function destroy()
    if destroyed then return end
    destroyed = true
    m:destroy(rt, ctx)
  end
  abort:on_abort(function() l:defer(destroy) end)
  local function renderer_write(chunk)
    if st.closed then return nil, "closed" end
    if chunk ~= nil and chunk ~= "" then
      st.last = st.last + 1
      st.chunks[st.last] = chunk
    end
    wake()
    return true
  end
  -- the renderer is a task of its own (a coroutine; under nginx a light
  -- thread), so that the request can send the shell while it waits
  local _, ok, err = loop.spawn(function()
    local ok, r, err = xpcall(rt.render_stream, failure, rt, ctx.url, renderer_write,
      { abort = abort, stream_timeout = m.stream_timeout, on_head = function(h) st.head = h end })
    if not ok then st.error = r
    elseif r == nil then st.gone = err or "closed" end
    destroy()
    if unlink then unlink() end
    st.done = true
    wake()
  end)
  if not ok then   -- cannot happen (the body catches everything); never leave the runtime behind
    st.done, st.error = true, failure(err)
    destroy()
  end
  -- wait for the decision: finished, or the shell out and the renderer
  -- waiting (this coroutine runs only while the renderer waits: it is woken
  -- through the loop, never from inside the renderer)
  while not st.done and st.last == 0 do
    if abort.aborted then break end
    wait()
  end
  if not st.done and abort.aborted then
    if unlink then unlink() end
    return gone(ctx, abort.reason)
  end
  if st.done then
    if st.error then return failed(m, ctx, st.error) end
    if st.gone then return gone(ctx, st.gone) end
    return response.new(st.head and st.head.status or 200, response.HTML_TYPE, concat(st.chunks, "", st.first, st.last),
      doc_headers(m))
  end
  -- streaming: the head now, the chunks as the renderer writes them
  ctx.entry.stream = true
  local h = doc_headers(m)
  local res = response.new(st.head and st.head.status or 200, nil, nil, h)
  table.insert(res.headers, 1, { "Content-Type", response.HTML_TYPE })
  if req.method == "HEAD" then
    -- no body will be sent (the transport does not call stream for HEAD)
    pcall(abort.cancel, abort, "HEAD: no body")
    res.stream = function() end
    return res
  end
  res.stream = function(write)
    while true do
      while st.first <= st.last do
        local c = st.chunks[st.first]
        st.chunks[st.first] = nil
        st.first = st.first + 1
        local r, e = write(c)
        if r == false or (r == nil and e ~= nil) then
          st.closed = true
          ctx.entry.error = "closed: " .. tostring(e or "write failed")
          pcall(abort.cancel, abort, e or "closed")
          return
        end
      end
      if st.done then break end
      wait()
    end
    if st.gone and ctx.entry.error == nil then   -- the client went away while the renderer waited
      ctx.entry.error = "closed: " .. tostring(st.gone)
    end
    if st.error then
      -- the head is gone: the transport ends the response without its last
      -- chunk, so the client sees it incomplete
      ctx:fail(st.error)
      error("page render failed while streaming: " .. message_of(st.error), 0)
    end
  end
  return res
end

-- ===== route partials =====

local function valid_boundary(v)
  return type(v) == "string" and #v <= 128 and v:find("^[%w_.:-]+$") ~= nil
end

-- the 500 envelope of a partial that failed (message and stack in development)
local function partial_failed(m, ctx, f)
  ctx:fail(f)
  local e = response.error_value("render-failed", "Internal server error")
  if m.env == "development" then
    e.message = message_of(f)
    e.stack = f.trace
  end
  return response.envelope(500, { [RESULT] = 1, error = e }, { { "Vary", "Accept" } })
end

--- The route partial envelope for GET `ctx.url` with Accept:
-- application/x-async-partial: `{boundary, html, signals, cache, title,
-- status}`, with the route's status as the HTTP status.
function _M.partial(m, ctx)
  local req = ctx.req
  local rt = m:runtime(ctx, req.abort)
  local how, ok, r = worker.run(req.abort, rt.render, rt, ctx.url,
    { document = false, abort = req.abort, timeout = m.timeout })
  local match = how == "done" and ok and rt.router:match(ctx.rel) or nil
  m:destroy(rt, ctx)
  if how == "aborted" then return gone(ctx, req.abort.reason) end
  if not ok then
    if r.err == CLOSED then return gone(ctx, req.abort and req.abort.reason) end
    return partial_failed(m, ctx, r)
  end
  local hdr = req.headers["x-async-boundary"]
  local boundary = match and match.route.boundary or (valid_boundary(hdr) and hdr) or "route"
  local env = { [RESULT] = 1, boundary = boundary, html = r.html, signals = r.signals, cache = r.cache,
                title = r.title, status = r.status }
  local body, why = response.encode(env)
  if not body then return partial_failed(m, ctx, failure("the partial's envelope cannot be encoded: " .. why)) end
  return response.new(r.status, response.JSON_TYPE, body, { { "Vary", "Accept" }, { "Cache-Control", "no-store" } })
end

return _M
