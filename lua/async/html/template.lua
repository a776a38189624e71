-- async.html: HTML templates compiled to Lua functions.
--
--   local page = html.html[[<h1 class="{{ cls }}">{{ title }}</h1>]]
--   tostring(page { title = "A & B", cls = "big" })
--   --> <h1 class="big">A &amp; B</h1>
--
-- A template is trusted code; the values in its env are not. `{{ expr }}`
-- takes a dotted path into the env (`title`, `user.name`, `items.1.title`)
-- and nothing else: no calls, no operators, so data can never run code.
--
-- Each template string is scanned once for its HTML context and compiled
-- (loadstring of generated code, cached by template string, as etlua does;
-- the cache is bounded, see cache_size)
-- into one function that joins precomputed static chunks and escaped values.
--
-- Values:
--   string            escaped (& < > " ') unless it has no special char
--   number, boolean   tostring()
--   nil               ""  (also when a container along the path is nil)
--   safe HTML         inserted raw: template results and html.raw(s)
--   array             each element rendered and concatenated (in attribute
--                     values joined with " ")
--   other table with __tostring: tostring() then escaped
--   anything else     an error naming the template line
-- Contexts: text (also inside <script>/<style> and comments: escaped),
-- quoted attribute values (escaped), unquoted attribute values
-- (`href={{ url }}` renders `href="..."`: always quoted output). An
-- expression anywhere else inside a tag (`<a {{ attrs }}>`) is a compile
-- error. In a binding attribute (name starting with `signal:`, `class:`,
-- `async:`, `on:` or a configured prefix such as `data-signal-`), a non-string
-- value goes first to the ref resolver (html.set_ref_resolver), which turns
-- a signal object into its registered id.
--
-- Errors: compile errors and render errors read "template:LINE: message"
-- (or "NAME:LINE:" with html.compile(s, { name = NAME })).

local type, error, tostring, tonumber, setmetatable, getmetatable, pcall, next, ipairs, pairs, select, rawget, rawset =
  type, error, tostring, tonumber, setmetatable, getmetatable, pcall, next, ipairs, pairs, select, rawget, rawset
local loadstring, setfenv = loadstring, setfenv
local find, gsub, sub, lower, match, format =
  string.find, string.gsub, string.sub, string.lower, string.match, string.format
local concat = table.concat
local registry = require("async.app.registry")
local errors = require("async.kernel.errors")
local array_mt = require("async.app.json").array_mt

local _M = {}

-- ===== SAFE HTML =====

-- A template result keeps its pieces: { [0] = TEMPLATE, v1, ..., vn }, where
-- TEMPLATE = { statics = { s0, ..., sn }, n = n, name = } and each vi is the
-- value of the i-th {{ }}, already escaped for its context (a string), or,
-- in text, a nested safe value (a template result, html.raw) or a LIST of
-- those and strings. Its HTML (`.html`) is the statics and values joined,
-- built on first use: the server renderer fills the plan of each template
-- (async.html.scanner, plans from the template source) without joining.
-- html.raw(s) is { html = s }.
local SAFE = {}
local LIST = {}   -- an array value in text holding safe values: { e1, ..., en }

local function node_html(v)
  if type(v) == "string" then return v end
  return tostring(v)
end

local function build_html(r, t)
  local statics, n = t.statics, t.n
  local buf = {}
  buf[1] = statics[1]
  for i = 1, n do
    local v = r[i]
    if type(v) ~= "string" then v = node_html(v) end
    buf[2 * i], buf[2 * i + 1] = v, statics[i + 1]
  end
  return concat(buf)
end

SAFE.__index = function(r, k)
  if k == "html" then
    local t = rawget(r, 0)
    if t == nil then return nil end
    local s = build_html(r, t)
    rawset(r, "html", s)
    return s
  end
  return nil
end
SAFE.__tostring = function(s) return s.html end
SAFE.__concat = function(a, b)
  local sa = getmetatable(a) == SAFE and a.html or tostring(a)
  local sb = getmetatable(b) == SAFE and b.html or tostring(b)
  return sa .. sb
end
_M.safe_mt = SAFE

LIST.__tostring = function(l)
  local parts = {}
  for i = 1, #l do parts[i] = node_html(l[i]) end
  return concat(parts)
end
_M.list_mt = LIST

-- Marks trusted HTML: inserted unescaped by templates.
local function raw(s)
  if getmetatable(s) == SAFE then return s end
  if s == nil then s = "" end
  return setmetatable({ html = tostring(s) }, SAFE)
end
_M.raw = raw

-- True when v is a safe-HTML value (a template result or html.raw).
function _M.is_safe(v)
  return getmetatable(v) == SAFE
end

-- ===== ESCAPING (async.html.escape, shared with the scanner) =====

local escape_mod = require("async.html.escape")
local escape = escape_mod.text
_M.escape = escape

-- fn(value, attr_name) -> id string or nil; by default a signal object's
-- id in the app registry that registered it
local id_of = registry.id_of
local function default_resolve(v) return id_of[v] end
local resolve_ref = default_resolve

-- Sets the hook that turns a value in a binding attribute (a signal object)
-- into its registered id; nil restores the default.
function _M.set_ref_resolver(fn)
  if fn ~= nil and type(fn) ~= "function" then
    errors.argument("html.set_ref_resolver: expected a function or nil, got " .. type(fn))
  end
  resolve_ref = fn or default_resolve
end

local function index_raw(v, key) return v[key] end

-- A template error (the library's error type, kernel/errors.lua): its
-- message names the template line ("template:3: ..."), its position the
-- line of the app that compiled or rendered the template.
local function template_error(code, name, line, msg)
  local e = errors.new(code, format("%s:%d: %s", name, line, msg))
  e.template, e.template_line = name, line
  error(errors.locate(e), 0)
end

local function render_error(name, line, msg)
  template_error("template-render", name, line, msg)
end

-- Renders any non-string value; sep joins array elements.
local function render_value(v, name, line, sep)
  local t = type(v)
  if t == "nil" then return "" end
  if t == "number" or t == "boolean" then return tostring(v) end
  if t == "string" then return escape(v) end
  if t == "table" then
    local mt = getmetatable(v)
    if mt == SAFE then return v.html end
    if mt == nil or mt == array_mt then   -- a decoded JSON array carries array_mt
      local n = #v
      if n == 0 and next(v) ~= nil then
        render_error(name, line, "cannot render a table that is not an array")
      end
      local parts = {}
      for i = 1, n do
        local e = v[i]
        if type(e) == "string" then
          parts[i] = escape(e)
        elseif getmetatable(e) == SAFE then
          parts[i] = e.html
        else
          parts[i] = render_value(e, name, line, sep)
        end
      end
      return concat(parts, sep)
    end
    if mt.__tostring then return escape(tostring(v)) end
    render_error(name, line, "cannot render a table with a metatable and no __tostring")
  end
  if t == "userdata" or t == "cdata" then
    local ok, s = pcall(tostring, v)
    if ok and type(s) == "string" then return escape(s) end
  end
  render_error(name, line, "cannot render a " .. t)
end

-- The value of a {{ }} in text: a string (escaped), or, when v is safe or
-- an array holding safe values, the safe value itself or a LIST of its
-- elements (strings escaped, safe values kept), so the renderer can fill
-- nested templates without scanning their HTML. Same HTML as render_value.
local function text_node(v, name, line)
  if getmetatable(v) == SAFE then return v end
  if type(v) == "table" then
    local mt = getmetatable(v)
    if mt == nil or mt == array_mt then
      local n = #v
      local any = false
      for i = 1, n do
        local e = v[i]
        if type(e) == "table" then any = true; break end
      end
      if any then
        if n == 0 and next(v) ~= nil then
          render_error(name, line, "cannot render a table that is not an array")
        end
        local out = {}
        for i = 1, n do
          local e = v[i]
          if type(e) == "string" then
            out[i] = escape(e)
          elseif getmetatable(e) == SAFE then
            out[i] = e
          else
            out[i] = text_node(e, name, line)
          end
        end
        return setmetatable(out, LIST)
      end
    end
  end
  return render_value(v, name, line, "")
end

-- An attribute value that may have come from safe HTML: with a quote in it,
-- it is handed over as html.raw (the renderer then reads the whole page).
local function attr_checked(s)
  if find(s, '"', 1, true) or find(s, "'", 1, true) then return setmetatable({ html = s }, SAFE) end
  return s
end

-- Runtime helpers the generated code calls (one set per template, so errors
-- can carry the template's name).
local function helpers(name)
  local h = {}

  function h.text(v, line)
    local tv = type(v)
    if tv == "string" then return escape(v) end
    if tv == "number" then return tostring(v) end
    return text_node(v, name, line)
  end

  -- the string of an attribute value (h.url joins them)
  local function attr_string(v, line)
    if type(v) == "string" then return escape(v) end
    if getmetatable(v) == SAFE then return v.html end
    return render_value(v, name, line, " ")
  end

  function h.attr(v, line)
    local tv = type(v)
    if tv == "string" then return escape(v) end
    if tv == "number" then return tostring(v) end
    return attr_checked(attr_string(v, line))
  end

  function h.bind(v, line, attr)
    local t = type(v)
    if t ~= "string" and t ~= "number" and t ~= "boolean" and t ~= "nil" and resolve_ref then
      local id = resolve_ref(v, attr)
      if id ~= nil then return escape(tostring(id)) end
    end
    if t == "function" then
      render_error(name, line, format("no id for a function in binding attribute %q", attr))
    end
    return h.attr(v, line)
  end

  -- The value of a URL attribute: static parts (template source) and values
  -- alternate, `s1, v1, s2, ..., sn`. The whole value is checked as the
  -- browser will read it (async.html.escape.url, or .srcset): an unsafe
  -- one becomes escape.UNSAFE_URL, as the scanner's signal:attr:href does.
  function h.url(line, kind, ...)
    local n = select("#", ...)
    local out, whole = {}, {}
    for i = 1, n do
      local p = select(i, ...)
      local o = i % 2 == 1 and p or attr_string(p, line)
      out[i] = o
      whole[i] = escape_mod.decode(o)
    end
    local value = concat(whole)
    local checked = kind == "srcset" and escape_mod.srcset(value) or escape_mod.url(value)
    if checked ~= value then return escape_mod.UNSAFE_URL end
    return attr_checked(concat(out))
  end

  -- A URL value s1 .. v .. s2 whose static start (s1: "/", "?", "#" or
  -- ".") leaves no room for a scheme: always safe, nothing to check.
  function h.url_rel(line, s1, v, s2)
    local tv = type(v)
    if tv == "string" then return s1 .. escape(v) .. s2 end
    if tv == "number" then return s1 .. tostring(v) .. s2 end
    return attr_checked(s1 .. attr_string(v, line) .. s2)
  end

  -- A value inside <script type="application/json">: JSON, "<" as \u003c.
  function h.json(v, line)
    if getmetatable(v) == SAFE then v = v.html end
    local ok, out = pcall(escape_mod.json, v)
    if not ok then render_error(name, line, "cannot write a value as JSON in <script>: " .. errors.message(out)) end
    return out
  end

  -- Indexes one step of a dotted path: nil stays nil, tables and userdata
  -- are indexed, anything else is an error.
  -- Indexing userdata or cdata that has no such field raises (FFI: "has no
  -- member named"); that becomes a positioned render error too.
  function h.index(v, key, line, path)
    local t = type(v)
    if t == "table" then return v[key] end
    if t == "nil" then return nil end
    if t == "userdata" or t == "cdata" then
      local ok, r = pcall(index_raw, v, key)
      if ok then return r end
      render_error(name, line, format("cannot index %s (a %s) with %q: %s", path, t, tostring(key), tostring(r)))
    end
    render_error(name, line, format("cannot index %s (a %s) with %q", path, t, tostring(key)))
  end

  -- Walks a long path (keys[2..n] through h.index); the generated code
  -- calls it instead of nesting index() calls past what Lua can parse.
  function h.walk(v, keys, line)
    for i = 2, #keys do
      if v == nil then return nil end
      local t = type(v)
      if t == "table" then
        v = v[keys[i]]
      else
        local path = tostring(keys[1])
        for j = 2, i - 1 do path = path .. "." .. tostring(keys[j]) end
        v = h.index(v, keys[i], line, path)
      end
    end
    return v
  end

  return h
end

-- ===== SCANNING =====

local BINDING_PREFIXES = { "signal:", "class:", "async:", "on:" }
local extra_prefixes = {}

local function is_binding(attr)
  attr = lower(attr)
  for i = 1, #BINDING_PREFIXES do
    local p = BINDING_PREFIXES[i]
    if sub(attr, 1, #p) == p then return true end
  end
  for i = 1, #extra_prefixes do
    local p = extra_prefixes[i]
    if sub(attr, 1, #p) == p then return true end
  end
  return false
end
_M.is_binding_attribute = is_binding

local RAWTEXT = { script = true, style = true, textarea = true, title = true }

-- Parses "{{ path }}" content into an array of keys or nil.
local function parse_path(expr)
  local keys = {}
  for seg in (expr .. "."):gmatch("([^.]*)%.") do
    if match(seg, "^[%a_][%w_]*$") then
      keys[#keys + 1] = seg
    elseif match(seg, "^%d+$") and #seg <= 15 and #keys > 0 then
      keys[#keys + 1] = tonumber(seg)
    else
      return nil
    end
  end
  return keys
end

-- Scans a template into pieces: strings (static HTML) and expression nodes
-- { keys=, path=, line=, ctx = "text" | "attr" | "bind", attr=, quote= }.
local function scan(src, name)
  local pieces = {}
  local static = {}
  local pos, len = 1, #src
  local state = "text"
  local tag, attr_name, rawtag = nil, nil, nil
  local tag_start, raw_kind, value_start = 1, nil, nil

  -- The line of position p (1-based); compile time only. Positions only
  -- grow while scanning, so lines are counted from the last call on
  -- (linear in the template, not quadratic in its expressions).
  local last_p, last_line = 1, 1
  local function line_at(p)
    if p < last_p then last_p, last_line = 1, 1 end
    local _, n = gsub(sub(src, last_p, p - 1), "\n", "")
    last_p, last_line = p, last_line + n
    return last_line
  end

  local function fail(msg, at_line)
    template_error("template-syntax", name, at_line or line_at(pos), msg)
  end

  local function flush()
    if #static > 0 then
      pieces[#pieces + 1] = concat(static)
      static = {}
    end
  end

  local function put(s)
    static[#static + 1] = s
  end

  -- The state after a start tag's ">": raw text for script, style,
  -- textarea and title (raw_kind: "script", "json" for a JSON data block,
  -- "style" or "text"), else text.
  local function enter_content()
    if not rawtag then return "text" end
    if rawtag == "script" then
      local head = sub(src, tag_start, pos)
      local t = match(head, '[%s/]type%s*=%s*"([^"]*)"') or match(head, "[%s/]type%s*=%s*'([^']*)'")
        or match(head, "[%s/]type%s*=%s*([^%s>]+)")
      raw_kind = escape_mod.json_script_type(t) and "json" or "script"
    elseif rawtag == "style" then
      raw_kind = "style"
    else
      raw_kind = "text"
    end
    return "rawtext"
  end

  -- A quoted value of a URL attribute holding {{ }}: its pieces from index
  -- `from` on become one "url" node, checked whole at render time.
  local function group_url(from)
    if not from then return end
    local kind = escape_mod.url_attribute(lower(attr_name))
    if not kind then return end
    local parts, cur, first = {}, {}, nil
    for i = from, #pieces do
      local p = pieces[i]
      if type(p) == "string" then
        cur[#cur + 1] = p
      else
        parts[#parts + 1] = concat(cur)
        cur = {}
        parts[#parts + 1] = p
        first = first or p
      end
      pieces[i] = nil
    end
    parts[#parts + 1] = concat(cur)
    if not first then
      pieces[from] = parts[1]
      return
    end
    pieces[from] = { ctx = "url", kind = kind == "srcset" and "srcset" or "url", parts = parts, line = first.line,
                     attr = attr_name }
  end

  -- Reads "{{ ... }}" at pos; returns the node and the position after "}}".
  local function read_expr(ctx)
    local close = find(src, "}}", pos + 2, true)
    if not close then fail('unclosed "{{"') end
    local body = sub(src, pos + 2, close - 1)
    local expr = match(body, "^%s*(.-)%s*$")
    local keys = parse_path(expr)
    if not keys then
      fail(format('bad expression "{{%s}}": expected a dotted path like user.name', body))
    end
    local node = { keys = keys, path = expr, line = line_at(pos), ctx = ctx, attr = attr_name }
    return node, close + 2
  end

  while pos <= len do
    local c = sub(src, pos, pos)
    local two = sub(src, pos, pos + 1)

    if two == "{{" then
      if state == "rawtext" and raw_kind == "script" then
        fail("{{ }} inside <script> is not allowed: no escaping makes a value safe in JavaScript; put it in "
          .. '<script type="application/json"> (written as JSON) or in a data- attribute')
      elseif state == "rawtext" and raw_kind == "style" then
        fail("{{ }} inside <style> is not allowed: CSS is not escaped; use a class, or a style attribute")
      elseif state == "rawtext" and raw_kind == "json" then
        flush()
        local node
        node, pos = read_expr("json")
        pieces[#pieces + 1] = node
      elseif state == "text" or state == "rawtext" or state == "comment" then
        flush()
        local node
        node, pos = read_expr("text")
        pieces[#pieces + 1] = node
      elseif state == "dq" or state == "sq" then
        flush()
        local node
        node, pos = read_expr(is_binding(attr_name) and "bind" or "attr")
        pieces[#pieces + 1] = node
      elseif state == "before_value" then
        local node
        node, pos = read_expr(is_binding(attr_name) and "bind" or "attr")
        put('"'); flush()
        local url_kind = escape_mod.url_attribute(lower(attr_name))
        if url_kind then
          node = { ctx = "url", kind = url_kind == "srcset" and "srcset" or "url", parts = { "", node, "" },
                   line = node.line, attr = attr_name }
        end
        pieces[#pieces + 1] = node
        put('"')
        local nextc = sub(src, pos, pos)
        if not (nextc == "" or nextc == ">" or nextc == "/" or find(nextc, "%s")) then
          fail(format('quote the value of attribute "%s" when it mixes text and {{ }}', attr_name), node.line)
        end
        state = "before_attr"
      elseif state == "unquoted" then
        fail(format('quote the value of attribute "%s" when it mixes text and {{ }}', attr_name))
      else
        fail("{{ }} inside a tag must be an attribute value" ..
          (tag and format(" (in <%s>)", tag) or ""))
      end
    elseif state == "text" then
      if c == "<" then
        if sub(src, pos, pos + 3) == "<!--" then
          put("<!--"); pos = pos + 4; state = "comment"
        elseif match(src, "^</?[%a]", pos) then
          local close = sub(src, pos + 1, pos + 1) == "/"
          local tname = match(src, "^</?([%w:-]+)", pos)
          put(sub(src, pos, pos + #tname + (close and 1 or 0)))
          pos = pos + #tname + 1 + (close and 1 or 0)
          tag_start = pos - #tname - 1 - (close and 1 or 0)
          tag = lower(tname)
          state = close and "endtag" or "before_attr"
          rawtag = (not close and RAWTEXT[tag]) and tag or nil
        elseif match(src, "^<[!?]", pos) then
          put(two); pos = pos + 2; state = "decl"
        else
          put(c); pos = pos + 1
        end
      else
        put(c); pos = pos + 1
      end
    elseif state == "comment" then
      if sub(src, pos, pos + 2) == "-->" then
        put("-->"); pos = pos + 3; state = "text"
      else
        put(c); pos = pos + 1
      end
    elseif state == "decl" or state == "endtag" then
      put(c); pos = pos + 1
      if c == ">" then state = "text" end
    elseif state == "rawtext" then
      if c == "<" and lower(sub(src, pos + 2, pos + 1 + #rawtag)) == rawtag and sub(src, pos + 1, pos + 1) == "/" then
        state = "text"
        rawtag = nil
      else
        put(c); pos = pos + 1
      end
    elseif state == "before_attr" then
      put(c); pos = pos + 1
      if c == ">" then
        state = enter_content()
      elseif c ~= "/" and not find(c, "%s") then
        attr_name = c
        state = "attr_name"
      end
    elseif state == "attr_name" then
      if c == "=" then
        put(c); pos = pos + 1; state = "before_value"
      elseif c == ">" or c == "/" or find(c, "%s") then
        state = "after_attr_name"
      else
        attr_name = attr_name .. c
        put(c); pos = pos + 1
      end
    elseif state == "after_attr_name" then
      if c == "=" then
        put(c); pos = pos + 1; state = "before_value"
      elseif find(c, "%s") then
        put(c); pos = pos + 1
      else
        state = "before_attr"
      end
    elseif state == "before_value" then
      put(c); pos = pos + 1
      if c == '"' then state = "dq"; flush(); value_start = #pieces + 1
      elseif c == "'" then state = "sq"; flush(); value_start = #pieces + 1
      elseif c == ">" then state = enter_content()
      elseif not find(c, "%s") then state = "unquoted" end
    elseif state == "dq" or state == "sq" then
      put(c); pos = pos + 1
      if (state == "dq" and c == '"') or (state == "sq" and c == "'") then
        static[#static] = nil   -- the closing quote goes after the value's group
        flush()
        group_url(value_start)
        put(c)
        state = "before_attr"
      end
    elseif state == "unquoted" then
      if c == ">" then
        put(c); pos = pos + 1; state = enter_content()
      elseif find(c, "%s") then
        put(c); pos = pos + 1; state = "before_attr"
      else
        put(c); pos = pos + 1
      end
    end
  end
  if state == "comment" then
    -- an unclosed comment swallows the rest; browsers do the same
    flush()
  end
  flush()
  return pieces
end

-- ===== CODE GENERATION =====

local function key_code(k)
  if type(k) == "number" then return "[" .. k .. "]" end
  return "[" .. format("%q", k) .. "]"
end

local MAX_NEST = 8 -- longer paths go through walk(), not nested index() calls

-- Lua code for the value of a path, nil-safe. A path longer than MAX_NEST
-- keys is appended to `long` and read by walk(env[k1], LONG[i], line).
local function path_code(node, long)
  local keys, line = node.keys, node.line
  local code = "env" .. key_code(keys[1])
  if #keys > MAX_NEST then
    long[#long + 1] = keys
    return format("walk(%s, LONG[%d], %d)", code, #long, line)
  end
  local sofar = tostring(keys[1])
  for i = 2, #keys do
    code = format("index(%s, %s, %d, %q)", code, type(keys[i]) == "number" and keys[i] or format("%q", keys[i]),
      line, sofar)
    sofar = sofar .. "." .. tostring(keys[i])
  end
  return code
end

-- Returns the code, the array of long paths it reads through LONG and the
-- statics (the text between the {{ }}s: n + 1 strings for n holes). The
-- function returns { [0] = TPL, v1, ..., vn } (see SAFE above).
local function generate(pieces)
  local operands, long, statics = {}, {}, {}
  local cur = {}
  for _, p in ipairs(pieces) do
    if type(p) == "string" then
      cur[#cur + 1] = p
    else
      statics[#statics + 1] = concat(cur)
      cur = {}
      if p.ctx == "text" then
        operands[#operands + 1] = format("text(%s, %d)", path_code(p, long), p.line)
      elseif p.ctx == "attr" then
        operands[#operands + 1] = format("attr(%s, %d)", path_code(p, long), p.line)
      elseif p.ctx == "json" then
        operands[#operands + 1] = format("json(%s, %d)", path_code(p, long), p.line)
      elseif p.ctx == "url" and p.kind == "url" and #p.parts == 3 and find(p.parts[1], "^[/?#.]") then
        -- a relative URL: its first byte rules out a scheme (escape.url)
        operands[#operands + 1] = format("url_rel(%d, %q, %s, %q)", p.line, p.parts[1], path_code(p.parts[2], long),
          p.parts[3])
      elseif p.ctx == "url" then
        local args = {}
        for i, part in ipairs(p.parts) do
          if i % 2 == 1 then args[i] = format("%q", part) else args[i] = path_code(part, long) end
        end
        operands[#operands + 1] = format("url(%d, %q, %s)", p.line, p.kind, concat(args, ", "))
      else
        operands[#operands + 1] = format("bind(%s, %d, %q)", path_code(p, long), p.line, p.attr)
      end
    end
  end
  statics[#statics + 1] = concat(cur)
  local body
  if #operands == 0 then
    body = "RESULT"
  else
    body = "setmetatable({ [0] = TPL, " .. concat(operands, ", ") .. " }, SAFE)"
  end
  return "local text, attr, bind, index, SAFE, setmetatable, check_env, type, walk, LONG, url, json, TPL, " ..
    "RESULT, url_rel = ...\n" ..
    "return function(env)\n" ..
    "  if type(env) ~= 'table' then env = check_env(env) end\n" ..
    -- not `return setmetatable(...)`: a trace that starts in this function
    -- cannot record that tail call ("return to lower frame")
    "  local r = " .. body .. "\n" ..
    "  return r\n" ..
    "end\n", long, statics
end

-- ===== COMPILING =====

-- Compiled templates, cached by template string in two generations: a hit
-- in the old one moves to the current one; when the current one holds
-- cache_size entries it becomes the old one (and the old one is dropped).
-- At most 2 * cache_size templates are kept, however many distinct strings
-- an app compiles (a template built from request data is a fresh string
-- per request), and the templates in use stay compiled.
_M.cache_size = 512
local compiled = { cur = {}, old = {}, n = 0 }

local function cache_get(key)
  local c = compiled
  local fn = c.cur[key]
  if fn then return fn end
  fn = c.old[key]
  if fn then
    c.old[key] = nil
    if c.n >= _M.cache_size then c.old, c.cur, c.n = c.cur, {}, 0 end
    c.cur[key], c.n = fn, c.n + 1
  end
  return fn
end

local function cache_set(key, fn)
  local c = compiled
  if c.n >= _M.cache_size then c.old, c.cur, c.n = c.cur, {}, 0 end
  c.cur[key], c.n = fn, c.n + 1
end

-- The number of compiled templates kept.
function _M.cache_count()
  local n = 0
  for _ in pairs(compiled.cur) do n = n + 1 end
  for _ in pairs(compiled.old) do n = n + 1 end
  return n
end
local EMPTY = {}

local function check_env(env)
  if env == nil then return EMPTY end
  errors.argument("template: expected an env table, got " .. type(env))
end

-- Compiles a template; returns the render function fn(env) -> safe HTML.
-- opts.name replaces "template" in error messages. Cached per string.
function _M.compile(src, opts)
  if type(src) ~= "string" then
    errors.argument("html: expected a template string, got " .. type(src))
  end
  local name = opts and opts.name or "template"
  local key = name == "template" and src or name .. "\0" .. src
  local fn = cache_get(key)
  if fn then return fn end
  local pieces = scan(src, name)
  local code, long, statics = generate(pieces)
  local chunk, err = loadstring(code, "=" .. errors.GENERATED .. name)
  if not chunk then
    errors.raise("template-internal", format("%s: internal error compiling template: %s", name, err))
  end
  setfenv(chunk, {})
  local h = helpers(name)
  -- the template as the renderer sees it; its render plans are kept here
  -- (async.html.scanner, per prefix configuration)
  local tpl = { statics = statics, n = #statics - 1, name = name }
  local result = setmetatable({ [0] = tpl, html = statics[1] }, SAFE)   -- no {{ }}: one shared result
  local render = chunk(h.text, h.attr, h.bind, h.index, SAFE, setmetatable, check_env, type, h.walk, long,
    h.url, h.json, tpl, result, h.url_rel)
  cache_set(key, render)
  return render
end

-- html.html[[...]] -> render function (the usual entry point).
function _M.html(src)
  return _M.compile(src)
end

-- Renders a template at once: html.render(src, env) -> safe HTML.
function _M.render(src, env)
  return _M.compile(src)(env)
end

-- The generated Lua of a template (for debugging and tests).
function _M.source(src)
  return (generate(scan(src, "template")))
end

-- Adds binding attribute prefixes (e.g. { "data-signal-", "data-on-" }) and
-- drops compiled templates, whose contexts depend on them.
function _M.set_binding_prefixes(list)
  if type(list) ~= "table" then
    errors.argument("html.set_binding_prefixes: expected an array of prefixes, got " .. type(list))
  end
  local copy = {}
  for i = 1, #list do copy[i] = lower(list[i]) end
  extra_prefixes = copy
  compiled = { cur = {}, old = {}, n = 0 }
end

-- Drops every compiled template.
function _M.clear_cache()
  compiled = { cur = {}, old = {}, n = 0 }
end

return _M
