--- Drives async.server.core's handler in-process, without sockets: each
-- request runs in its own coroutine on a manual loop (time moves only when
-- the driver advances it), and a streamed answer is read by calling its
-- `stream(write)` the way a transport does.
local Async = require("async")

local _M = {}

local MAX_MS = 120000

-- a request table of the transport contract, defaults filled in
function _M.req(t)
  local target = t.target or t.path or "/"
  local path, query = target:match("^([^?]*)%??(.*)$")
  local headers = { host = "example.test" }
  for k, v in pairs(t.headers or {}) do headers[k:lower()] = v or nil end
  if t.headers and t.headers.host == false then headers.host = nil end
  return {
    method = t.method or "GET", target = target, path = t.req_path or path, query = query, version = "1.1",
    headers = headers, body = t.body or "", remote = "127.0.0.1", abort = t.abort or Async.abort_token(),
  }
end

-- resumes `co` (first resume) and advances the loop until it ends
local function drive(loop, co, ...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then error(err, 0) end
  local start = loop:now()
  while coroutine.status(co) ~= "dead" do
    loop:advance(1)
    if loop:now() - start > MAX_MS then error("request did not finish in " .. MAX_MS .. " ms of loop time", 0) end
  end
end
_M.drive = drive

--- Runs `handle(req)`; returns res, and for a streamed answer the chunks
-- `{ { at = ms, data = s }, ... }` written by `stream` (opts.write: a
-- write function to use instead; opts.no_stream: do not read it).
function _M.run(handle, loop, req, opts)
  opts = opts or {}
  local res
  drive(loop, coroutine.create(function() res = handle(req) end))
  local chunks
  if res.stream and not opts.no_stream then
    chunks = {}
    local t0 = loop:now()
    local write = opts.write or function(c)
      if c ~= nil and c ~= "" then chunks[#chunks + 1] = { at = loop:now() - t0, data = c } end
      return true
    end
    local failed
    drive(loop, coroutine.create(function()
      local ok, err = pcall(res.stream, write)
      if not ok then failed = err end
    end))
    res.stream_error = failed
  end
  return res, chunks
end

--- The body of a response: its body, or its chunks joined.
function _M.body(res, chunks)
  if res.body then return res.body end
  if not chunks then return nil end
  local out = {}
  for i, c in ipairs(chunks) do out[i] = c.data end
  return table.concat(out)
end

--- The headers as a list of "Name: value" strings (ETag and Last-Modified
-- values replaced by `norm` when given).
function _M.headers(res, norm)
  local out = {}
  for i, h in ipairs(res.headers) do
    local v = h[2]
    if norm and norm[h[1]] then v = norm[h[1]] end
    out[i] = h[1] .. ": " .. v
  end
  return out
end

return _M
