-- busted output handler for tools/run-tests.sh: `busted -o tools/busted_counts.lua`.
--
-- Writes its report to the file named by BUSTED_COUNTS (never to stdout, where
-- specs print their own lines): a first line "P F E S" (successes, failures,
-- errors, pending), then one block per failure, error and pending case. Only
-- strings are written, so no value a spec raises (a table, a userdata, a cycle)
-- can stop the report, as it stopped busted's json handler (dkjson) once.
-- Progress goes to stdout as one character per case, like busted's default.
local pretty = require("pl.pretty")

return function(options)
  local busted = require("busted")
  local handler = require("busted.outputHandlers.base")()
  local path = os.getenv("BUSTED_COUNTS")

  local function text(v)
    if v == nil then return "nil" end
    if type(v) == "string" then return v end
    local ok, s = pcall(pretty.write, v)
    return ok and s or tostring(v)
  end

  local function where(t)
    local tr = t.element and t.element.trace
    if tr and tr.short_src then return tr.short_src .. ":" .. tostring(tr.currentline) end
    return "?"
  end

  handler.testEnd = function(_, _, status)
    local c = status == "success" and "+" or status == "pending" and "." or "F"
    io.write(c); io.flush()
    return nil, true
  end

  handler.suiteEnd = function()
    io.write("\n"); io.flush()
    local out = {}
    out[#out + 1] = string.format("%d %d %d %d", #handler.successes, #handler.failures,
      #handler.errors, #handler.pendings)
    for _, k in ipairs({ "failures", "errors" }) do
      for _, t in ipairs(handler[k]) do
        out[#out + 1] = string.format("%s: %s (%s)", k, text(t.name), where(t))
        out[#out + 1] = "  " .. text(t.message):sub(1, 2000):gsub("\n", "\n  ")
        local tb = t.trace and t.trace.traceback
        if tb then out[#out + 1] = "  " .. tostring(tb):sub(1, 1500):gsub("\n", "\n  ") end
      end
    end
    for _, t in ipairs(handler.pendings) do
      out[#out + 1] = "pending: " .. text(t.name)
    end
    local s = table.concat(out, "\n") .. "\n"
    if path then
      local f = assert(io.open(path, "w"))
      f:write(s); f:close()
    else
      io.write(s); io.flush()
    end
    return nil, true
  end

  busted.subscribe({ "test", "end" }, handler.testEnd, { predicate = handler.cancelOnPending })
  busted.subscribe({ "suite", "end" }, handler.suiteEnd)
  return handler
end
