-- Time to first byte of a streamed page whose slowest boundary takes 200 ms:
-- the shell (layout head, route section with every boundary's loading
-- template, snapshot) must be written in under 5 ms; the fills follow as the
-- boundaries settle (20 ms, 80 ms, 200 ms) and the stream ends with write(nil).
--
--   build/asyncrt bench/ttfb.lua     real time on the luv loop
--   luajit bench/ttfb.lua            the manual loop (no luv): the shell's CPU time;
--                                    boundary times are virtual
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local Async = require("async")
local loop_mod = require("async.loop")

local ok_uv, uv = pcall(require, "luv")
local manual = not ok_uv
local loop = manual and Async.manual_loop() or Async.get_loop()
if manual then Async.set_loop(loop) end

local function clock_ms()
  if manual then return os.clock() * 1000 end
  return uv.hrtime() / 1e6
end

local function slow(ms, name)
  return Async.define_async(function(self)
    Async.delay(ms, self.abort)
    return { name = name }
  end)
end

local function boundary(id)
  return ('<section async:boundary="%s"><template async:loading="%s"><p>Loading %s</p></template>' ..
    '<template async:ready="%s"><h2 signal:text="%s.name"></h2></template>' ..
    '<template async:error="%s"><p signal:text="%s.$error.message"></p></template></section>\n'):gsub("%%s", id)
end

local app = Async.define_app()
app:use({
  signal = { user = slow(20, "Ada"), product = slow(80, "Keyboard"), recs = slow(200, "Keycaps") },
  partial = {
    page = function() return "<h1>Shop</h1>\n" .. boundary("user") .. boundary("product") .. boundary("recs") end,
  },
  route = { ["/"] = Async.define_route("page") },
})

local ROUNDS = tonumber(arg and arg[1] or "") or 11
local results = {}

local function one(done)
  local rt = Async.create_app(app, { env = "production" })
  local t0 = clock_ms()
  local times, bytes = {}, 0
  local co = coroutine.create(function()
    rt:render_stream("/", function(chunk)
      local t = (manual and loop:now() or clock_ms() - t0)
      if #times == 0 then t = clock_ms() - t0 end   -- the shell: real time in both modes
      times[#times + 1] = t
      if chunk then bytes = bytes + #chunk end
    end)
    done(times, bytes)
  end)
  local okr, err = coroutine.resume(co)
  if not okr then error(err, 0) end
  return co
end

local function report(times, bytes)
  results[#results + 1] = times[1]
  print(("shell %.3f ms, fills at %s ms, end at %.1f ms, %d bytes"):format(times[1],
    table.concat({ ("%.1f"):format(times[2]), ("%.1f"):format(times[3]), ("%.1f"):format(times[4]) }, ", "),
    times[#times], bytes))
end

print(("time to first byte (%s loop), slowest boundary 200 ms"):format(manual and "manual" or "luv"))
if manual then
  for _ = 1, ROUNDS do
    local co = one(report)
    while coroutine.status(co) ~= "dead" do loop:advance(1) end
  end
else
  local n = 0
  local function next_round()
    n = n + 1
    if n > ROUNDS then return end
    one(function(times, bytes) report(times, bytes); loop_mod.get_loop():defer(next_round) end)
  end
  next_round()
  uv.run()
end
-- the first round is cold: it compiles the page's plan and warms the JIT
local cold = table.remove(results, 1)
table.sort(results)
print(("shell: cold %.3f ms; warm best %.3f ms, median %.3f ms, worst %.3f ms (goal: under 5 ms)"):format(cold,
  results[1], results[math.ceil(#results / 2)], results[#results]))
