-- The layers of lua/async (docs/architecture.md):
--   kernel <- loop <- app <- html <- ssr <- server <- transport
-- A module requires only modules of its own layer or lower ones; the loop
-- and transport kinds (manual/luv/ngx) never require each other; nothing in
-- a layer requires the facade (async, async.ngx); there is no require cycle;
-- every module loads alone in a fresh process.
local ORDER = { "kernel", "loop", "app", "html", "ssr", "server", "transport" }
local RANK = {}
for i, l in ipairs(ORDER) do RANK[l] = i end
local FACADE = { async = true, ["async.ngx"] = true }
-- alternatives of one layer: one never requires another
local KINDS = {
  ["async.loop.manual"] = "loop kind", ["async.loop.luv"] = "loop kind", ["async.loop.ngx"] = "loop kind",
  ["async.transport.luv"] = "transport", ["async.transport.ngx"] = "transport",
}

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  local ok, _, code = p:close()
  return out, (ok == true or ok == 0) and 0 or code
end

-- module name -> file, for every module of the tree
local function modules()
  local out = {}
  local list = sh("find lua/async -name '*.lua' | sort")
  for path in list:gmatch("[^\n]+") do
    local name = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
    out[#out + 1] = { name = name, path = path }
  end
  return out
end

-- the async.* modules a source requires (plain and pcall(require, ...) forms)
local function requires(src)
  local out, seen = {}, {}
  src = src:gsub("%-%-%[(=*)%[.-%]%1%]", ""):gsub("%-%-[^\n]*", "")   -- drop comments
  for _, pat in ipairs({ "require%s*%(?%s*[\"']([%w_.]+)[\"']", "pcall%(%s*require%s*,%s*[\"']([%w_.]+)[\"']" }) do
    for name in src:gmatch(pat) do
      if (name == "async" or name:match("^async%.")) and not seen[name] then
        seen[name] = true
        out[#out + 1] = name
      end
    end
  end
  return out
end

local function layer_of(name)
  if FACADE[name] then return nil end
  return name:match("^async%.([%w_]+)")
end

-- checks the import graph; returns a list of problems (empty when clean)
local function check(mods, read)
  local problems, graph, known = {}, {}, {}
  for _, m in ipairs(mods) do known[m.name] = true end
  for _, m in ipairs(mods) do
    local deps = requires(read(m.path))
    graph[m.name] = deps
    local mine = layer_of(m.name)
    for _, d in ipairs(deps) do
      if not known[d] then
        problems[#problems + 1] = m.name .. " requires " .. d .. ", which is not a module of the tree"
      elseif mine then
        local theirs = layer_of(d)
        if theirs == nil then
          problems[#problems + 1] = m.name .. " requires the facade " .. d
        elseif RANK[mine] == nil then
          problems[#problems + 1] = m.name .. " is in no layer (" .. mine .. ")"
        elseif RANK[theirs] > RANK[mine] then
          problems[#problems + 1] = "upward: " .. m.name .. " (" .. mine .. ") requires " .. d .. " (" .. theirs .. ")"
        elseif KINDS[m.name] and KINDS[m.name] == KINDS[d] then
          problems[#problems + 1] = "sideways: " .. m.name .. " requires " .. d .. " (both a " .. KINDS[d] .. ")"
        end
      end
    end
  end
  -- cycles: iterative DFS with colours
  local colour = {}
  for _, m in ipairs(mods) do
    if not colour[m.name] then
      local stack = { { m.name, 1 } }
      colour[m.name] = 1
      while #stack > 0 do
        local top = stack[#stack]
        local deps = graph[top[1]] or {}
        local d = deps[top[2]]
        if d == nil then
          colour[top[1]] = 2
          stack[#stack] = nil
        else
          top[2] = top[2] + 1
          if colour[d] == 1 then
            local path = {}
            for i = 1, #stack do path[#path + 1] = stack[i][1] end
            problems[#problems + 1] = "cycle: " .. table.concat(path, " -> ") .. " -> " .. d
          elseif colour[d] == nil and graph[d] then
            colour[d] = 1
            stack[#stack + 1] = { d, 1 }
          end
        end
      end
    end
  end
  return problems
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

describe("layering", function()
  it("the tree has a folder per layer and the facade at the top", function()
    for _, l in ipairs(ORDER) do
      local _, rc = sh("test -d lua/async/" .. l)
      assert.are.equal(0, rc, "missing lua/async/" .. l)
    end
    local out = sh("ls lua/async/*.lua")
    assert.is_truthy(out:find("^lua/async/init%.lua\n"))
    assert.is_truthy(out == "lua/async/init.lua\n" or out == "lua/async/init.lua\nlua/async/ngx.lua\n", out)
  end)

  it("no module requires upward, sideways, the facade, or in a cycle", function()
    assert.are.same({}, check(modules(), read_file))
  end)

  describe("the checker itself", function()
    local function fake(files)
      local mods = {}
      for name in pairs(files) do mods[#mods + 1] = { name = name, path = name } end
      table.sort(mods, function(a, b) return a.name < b.name end)
      return check(mods, function(p) return files[p] end)
    end

    it("finds an upward require, a lazy one included", function()
      assert.are.same({ "upward: async.kernel.graph (kernel) requires async.app.hub (app)" }, fake({
        ["async.kernel.graph"] = 'local function f() return require("async.app.hub") end',
        ["async.app.hub"] = "",
      }))
    end)

    it("finds a sideways require between loop kinds and a require of the facade", function()
      assert.are.same({ "sideways: async.loop.luv requires async.loop.ngx (both a loop kind)",
                        "async.loop.ngx requires the facade async" }, fake({
        ["async.loop.luv"] = 'local ok, n = pcall(require, "async.loop.ngx")',
        ["async.loop.ngx"] = 'require "async"',
        ["async"] = "",
      }))
    end)

    it("finds a cycle inside a layer and ignores requires in comments", function()
      assert.are.same({ "cycle: async.app.a -> async.app.b -> async.app.a" }, fake({
        ["async.app.a"] = 'require("async.app.b") -- require("async.ssr.render")',
        ["async.app.b"] = 'require("async.app.a")',
      }))
    end)
  end)

  it("every module loads alone in a fresh process", function()
    local failed = {}
    for _, m in ipairs(modules()) do
      local out, rc = sh("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' " ..
        "luajit -e 'require(\"" .. m.name .. "\")' 2>&1")
      if rc ~= 0 then failed[#failed + 1] = m.name .. ": " .. out end
    end
    assert.are.same({}, failed)
  end)

  it("modules loaded alone work: a kernel, a loop, an app, a template, a render", function()
    local script = [[
      local graph = require("async.kernel.graph")
      local s = graph.signal(2)
      local c = graph.computed(function() return s() * 10 end)
      assert(c() == 20)
      local loop = require("async.loop")
      local l = loop.set_loop(loop.manual_loop())
      local got
      local co = coroutine.create(function() loop.delay(5); got = l:now() end)
      coroutine.resume(co)
      l:advance(5)
      assert(got == 5, "delay")
      local hub = require("async.app.hub")
      local runtime = require("async.app.runtime")
      local app = hub.define_app({ signal = { n = 1 }, handler = { inc = function(self)
        self.signals:update("n", function(n) return n + 1 end) end } })
      local env = runtime.create_app(app):dispatch("inc")
      assert(env.signals.n == 2, "dispatch")
      local html = require("async.html.template")
      assert(tostring(html.html("<b>{{ x }}</b>")({ x = "<" })) == "<b>&lt;</b>")
      local ssr = require("async.ssr")
      local app2 = hub.define_app({ signal = { t = "hi" },
        partial = { p = function() return '<i signal:text="t"></i>' end },
        route = { ["/"] = hub.define_route("p") } }, { ssr = ssr })
      local out = runtime.create_app(app2):render("/", { document = false })
      assert(out.html == '<i signal:text="t">hi</i>', out.html)
      print("ok")
    ]]
    local f = assert(io.open("build/layering_alone.lua", "wb"))
    f:write(script)
    f:close()
    local out, rc = sh("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' " ..
      "luajit build/layering_alone.lua 2>&1")
    assert.are.equal("ok\n", out)
    assert.are.equal(0, rc)
  end)
end)
