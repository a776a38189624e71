--- The seed's server-call example: a command chain calling a server
-- function. `on:submit="preventDefault; server.greet.say($form)"` posts the
-- form's fields to `POST /__async/server/greet.say`; the function answers an
-- envelope whose `signals` the client applies to the page. It counts
-- greetings per name in the server cache (`self.cache`, a 60 s TTL).
--
--   build/asyncrt examples/server-call/app.lua   then open http://127.0.0.1:8080/
local Async = require("async")

local app = Async.define_app()

app:use({
  signal = { greeting = "Nobody greeted yet.", greeted = 0 },
  cache = { server = { greetings = Async.define_cache({ ttl = 60000 }) } },   -- keys "greetings:..."
  server = {
    ["greet.say"] = function(self, form)
      local name = type(form) == "table" and type(form.name) == "string" and form.name:match("^%s*(.-)%s*$") or ""
      if name == "" then
        return Async.result({ value = false, signals = { greeting = "Type a name first." } })
      end
      local key = "greetings:" .. name:lower()
      local n = (self.cache:get(key) or 0) + 1
      self.cache:set(key, n)
      local greeting = "Hello, " .. name .. "!"
      return Async.result({ value = greeting, signals = { greeting = greeting, greeted = n } })
    end,
  },
  partial = {
    home = function()
      return {
        title = "Server call",
        html = Async.html[[
<h1>Server call</h1>
<form on:submit="preventDefault; server.greet.say($form)">
  <label>Name <input name="name" value="Ada" autocomplete="off"></label>
  <button>Greet</button>
</form>
<p><output signal:text="greeting"></output></p>
<p>Times greeted: <span signal:text="greeted"></span> (counted in the server cache, forgotten after 60 s)</p>]] {},
      }
    end,
  },
  route = { ["/"] = Async.define_route("home") },
})

return Async.main(app)
