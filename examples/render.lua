--- Renders an example app in-process and prints the HTML.
--
--   luajit examples/render.lua NAME URL [--stream] [--document]
--
-- NAME is an example module (product, components, streaming, partials, ssr)
-- or a served example app as NAME/app (counter/app, streaming/app, ...: the
-- file examples/NAME/app.lua, rendered with the layout and runtime options
-- it gives Async.main).
-- The default prints rt:render(url).html (the route boundary and the
-- snapshot); --document prints rt:render_document(url).html; --stream prints
-- each chunk of rt:render_stream(url, write) with the (virtual) time it was
-- written. A manual loop drives time, so the output is the same on every run.
package.path = "./lua/?.lua;./lua/?/init.lua;./?.lua;" .. package.path
local Async = require("async")

local name, url = arg[1], arg[2]
if not name or not url then
  io.stderr:write("usage: luajit examples/render.lua NAME URL [--stream] [--document]\n")
  os.exit(2)
end
local flags = {}
for i = 3, #arg do flags[arg[i]] = true end

local loop = Async.manual_loop()
Async.set_loop(loop)

local app
local opts = { env = "development" }
if name:find("/", 1, true) then
  -- loaded, not run: Async.main returns the app; keep the options it was given
  local main = Async.main
  Async.main = function(a, o)
    o = o or {}
    opts.layout = o.layout
    for k, v in pairs(o.runtime or {}) do opts[k] = v end
    return a
  end
  app = dofile("examples/" .. name .. ".lua")
  Async.main = main
else
  app = require("examples." .. name)
end
local rt = Async.create_app(app, opts)

local co = coroutine.create(function()
  if flags["--stream"] then
    rt:render_stream(url, function(chunk)
      io.write(("<!-- %d ms -->\n"):format(loop:now()), chunk or "<!-- end -->", "\n")
    end)
  else
    local out = flags["--document"] and rt:render_document(url) or rt:render(url)
    io.write("<!-- status ", out.status, " -->\n", out.html, "\n")
  end
end)
local ok, err = coroutine.resume(co)
if not ok then error(err, 0) end
while coroutine.status(co) ~= "dead" do
  loop:advance(1)
  if loop:now() > 60000 then error("the render did not finish in 60 s of loop time", 0) end
end
