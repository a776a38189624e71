--- Work that may outlive its client. App code (a partial, a server
-- function, a handler) runs in a coroutine of its own, a worker, while the
-- request's coroutine waits for the first of: the worker returned, or the
-- request's abort token fired (the client went away).
--
-- Why: a wait that is aborted (`Async.delay(ms, self.abort)`) never resumes
-- its coroutine again (async.loop). Were the app code running in the
-- request's coroutine, that coroutine would stay suspended for ever and
-- nothing after it (destroying the request runtime, the access log) would
-- run. A worker can be abandoned that way; the request goes on.
local loop = require("async.loop")

local type, tostring, xpcall = type, tostring, xpcall
local traceback = debug.traceback

local _M = {}

--- The error handler of every worker: the raised value and its traceback.
function _M.failure(e)
  return { err = e, trace = traceback(type(e) == "table" and tostring(e.message or e) or tostring(e), 2) }
end
local failure = _M.failure

--- Runs fn(...) in a worker and waits (in the calling coroutine) until it
-- returns or `abort` (a token, or nil) fires. Returns "done", ok, value
-- (ok false: value is { err =, trace = }) or "aborted" (the worker is left
-- to finish, or not, on its own; whatever it returns then is dropped).
function _M.run(abort, fn, ...)
  if abort and abort.aborted then return "aborted" end
  local l = loop.get_loop()
  local st = { done = false }
  local waiter
  local function wake()
    local w = waiter
    if w then
      waiter = nil
      l:defer(w)
    end
  end
  local unlink = abort and abort:on_abort(wake)
  -- a task of its own (a coroutine; under nginx a light thread), so that
  -- its waits leave the request free to notice the abort
  local _, ok, err = loop.spawn(function(...)
    st.ok, st.value = xpcall(fn, failure, ...)
    st.done = true
    wake()
  end, ...)
  if not ok then st.done, st.ok, st.value = true, false, failure(err) end
  while not st.done and not (abort and abort.aborted) do
    loop.await(function(resume) waiter = resume end)
  end
  if unlink then unlink() end
  if st.done then return "done", st.ok, st.value end
  return "aborted"
end

return _M
