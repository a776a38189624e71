-- wrk script: alternates GET of the counter page and POST of its handler
-- (spec/serve_load_spec.lua, bench/http.sh), and counts answers that are
-- not the expected ones. Each thread alternates on its own; done() prints
--   CHECK ok=<n> bad=<n> page=<n> handler=<n>
-- and the first bad answer seen, if any.
--   wrk -t2 -c50 -d10s -s bench/wrk/mixed.lua http://127.0.0.1:PORT
-- luacheck: globals wrk setup init request response done ok_n bad_n pages_n handlers_n first_bad
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

local page, post
local i = 0
-- globals of each thread's state: done() reads them with thread:get
ok_n, bad_n, pages_n, handlers_n, first_bad = 0, 0, 0, 0, ""

local PAGE_MARK = '<strong signal:text="count">0</strong>'
local HANDLER_BODY = '{"__async_server_result__":1,"signals":{"count":2}}'

function init()
  page = wrk.format("GET", "/", { Host = "suite.test" })
  post = wrk.format("POST", "/__async/handler/increment",
    { Host = "suite.test", ["Content-Type"] = "application/json", ["X-Async-Request"] = "1" },
    '{"args":[],"signals":{"count":1}}')
end

function request()
  i = i + 1
  if i % 2 == 1 then return page end
  return post
end

function response(status, _, body)
  if status == 200 and body:find(PAGE_MARK, 1, true) then
    ok_n, pages_n = ok_n + 1, pages_n + 1
  elseif status == 200 and body == HANDLER_BODY then
    ok_n, handlers_n = ok_n + 1, handlers_n + 1
  else
    bad_n = bad_n + 1
    if first_bad == "" then first_bad = status .. " " .. body:sub(1, 200) end
  end
end

function done()
  local t = { ok = 0, bad = 0, page = 0, handler = 0 }
  local fb = ""
  for _, th in ipairs(threads) do
    t.ok = t.ok + th:get("ok_n")
    t.bad = t.bad + th:get("bad_n")
    t.page = t.page + th:get("pages_n")
    t.handler = t.handler + th:get("handlers_n")
    if fb == "" then fb = th:get("first_bad") end
  end
  io.write(string.format("CHECK ok=%d bad=%d page=%d handler=%d\n", t.ok, t.bad, t.page, t.handler))
  if fb ~= "" then io.write("FIRST_BAD ", fb, "\n") end
end
