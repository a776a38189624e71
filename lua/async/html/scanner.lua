-- async.scanner: the HTML protocol scanner (docs/rendering.md, "The scanner").
--
-- Tokenizes the HTML that partials, components and templates produce, finds
-- the protocol's attributes (async:, signal:, on:, class: or any configured
-- prefixes) and compiles the HTML once into a render plan: static chunks and
-- holes. Filling a plan is a loop that computes one string per hole and
-- concatenates it with the chunks; every value is escaped for its context.
--
--   local plan, err = scanner.compile(html, opts)   -- cached per html + prefixes
--   local out = scanner.fill(plan, function(slot) return value_of(slot.path) end)
--
-- Caveats: the tokenizer follows the HTML tokenizer for tags, attributes,
-- comments, doctype and raw text (script, style, textarea, title, xmp,
-- iframe, noembed, noframes); it does not model the script-data escape
-- states, foreign-content CDATA or table foster parenting. Tree building
-- knows void elements, the common optional end tags and `/>` in svg/math.
-- Malformed input is reported as a value (`nil, err`), never raised.

local type, tostring, pairs, ipairs, pcall = type, tostring, pairs, ipairs, pcall
local setmetatable, rawget, tonumber, schar = setmetatable, rawget, tonumber, string.char
local sfind, ssub, sbyte, slower, sgsub, smatch, sformat =
  string.find, string.sub, string.byte, string.lower, string.gsub, string.match, string.format
local concat, sort = table.concat, table.sort
local has_tnew, tnew = pcall(require, "table.new")
if not has_tnew then tnew = function() return {} end end
local floor, huge = math.floor, math.huge

local chain = require("async.app.chain")
local escape = require("async.html.escape")
local errors = require("async.kernel.errors")

local _M = { _VERSION = "0.1" }

-- ===== CONSTANTS =====

local VOID = {
  area = true, base = true, br = true, col = true, embed = true, hr = true, img = true, input = true,
  link = true, meta = true, param = true, source = true, track = true, wbr = true, keygen = true,
}
_M.VOID = VOID

-- Elements whose content is not tokenized until the matching end tag.
local RAW_TEXT = {
  script = true, style = true, textarea = true, title = true,
  xmp = true, iframe = true, noembed = true, noframes = true,
}
_M.RAW_TEXT = RAW_TEXT

-- Raw-text elements whose content is not decoded by the browser: text
-- bindings cannot be rendered safely inside them.
local UNESCAPABLE = { script = true, style = true, xmp = true, iframe = true, noembed = true, noframes = true }

-- Start tag X implicitly closes an open element of the listed names (top of stack).
local BLOCK_CLOSES_P = { p = true }
local IMPLIED_END = {
  li = { li = true }, dt = { dt = true, dd = true }, dd = { dt = true, dd = true },
  option = { option = true }, optgroup = { option = true, optgroup = true },
  tr = { tr = true, td = true, th = true }, td = { td = true, th = true }, th = { td = true, th = true },
  thead = { tbody = true, tfoot = true, tr = true, td = true, th = true },
  tbody = { thead = true, tbody = true, tfoot = true, tr = true, td = true, th = true },
  tfoot = { thead = true, tbody = true, tr = true, td = true, th = true },
  rt = { rt = true, rp = true }, rp = { rt = true, rp = true },
}
for tag in ("address article aside blockquote details div dl fieldset figcaption figure footer form "
  .. "h1 h2 h3 h4 h5 h6 header hgroup hr main menu nav ol p pre section table ul"):gmatch("%S+") do
  IMPLIED_END[tag] = BLOCK_CLOSES_P
end

local BOOLEAN_PROPS = { checked = true, selected = true, disabled = true }

-- Attributes a binding may not set: they would run or parse their value as code or HTML.
local function forbidden_attr(name)
  return ssub(name, 1, 2) == "on" or name == "srcdoc"
end

_M.UNSAFE_URL = escape.UNSAFE_URL

local DEFAULT_PREFIXES = { async = "async:", signal = "signal:", on = "on:", class = "class:" }
_M.DEFAULT_PREFIXES = DEFAULT_PREFIXES
_M.DATA_PREFIXES = { async = "data-async-", signal = "data-signal-", on = "data-on-", class = "data-class-" }

-- ===== ERRORS AND POSITIONS =====

-- Line and column (1-based, bytes) of byte pos in s.
local function position(s, pos)
  local line, lstart, p = 1, 1, 1
  while true do
    local nl = sfind(s, "\n", p, true)
    if not nl or nl >= pos then break end
    line, lstart, p = line + 1, nl + 1, nl + 1
  end
  return line, pos - lstart + 1
end
_M.position = position

local ERR_MT = {
  __tostring = function(e)
    return sformat("%s%d:%d: %s", e.source and (e.source .. ":") or "", e.line or 0, e.col or 0, e.message)
  end,
}

local function make_error(s, pos, message, source)
  if pos > #s + 1 then pos = #s + 1 end
  local line, col = position(s, pos)
  return setmetatable({ message = message, pos = pos, line = line, col = col, source = source }, ERR_MT)
end

-- ===== ESCAPING =====

-- Escaping is async.html.escape's (one module for templates and bindings);
-- these names stay for the code that used them.
local escape_text, escape_attr = escape.text, escape.attr
_M.escape_text = escape_text
_M.escape_attr = escape_attr

-- Static attribute text from the template, re-quoted with '"': character
-- references stay as written, a literal '"' (from '' or unquoted) is escaped.
local function requote(raw)
  if not sfind(raw, '"', 1, true) then return raw end
  return (sgsub(raw, '"', "&quot;"))
end

local ENTITIES = { amp = "&", lt = "<", gt = ">", quot = '"', apos = "'", nbsp = "\194\160" }

local function utf8_char(c)
  if c < 0x80 then return schar(c) end
  if c < 0x800 then return schar(0xC0 + floor(c / 64), 0x80 + c % 64) end
  if c < 0x10000 then
    return schar(0xE0 + floor(c / 4096), 0x80 + floor(c / 64) % 64, 0x80 + c % 64)
  end
  if c < 0x110000 then
    return schar(0xF0 + floor(c / 262144), 0x80 + floor(c / 4096) % 64, 0x80 + floor(c / 64) % 64,
      0x80 + c % 64)
  end
  return "\239\191\189"
end

-- Decodes the basic character references (for comparing option values only).
local function decode(s)
  if not sfind(s, "&", 1, true) then return s end
  return (sgsub(s, "&(#?)([xX]?)(%w+);", function(hash, x, body)
    if hash == "" then return ENTITIES[body] end
    local n = tonumber(body, x ~= "" and 16 or 10)
    if not n then return nil end
    return utf8_char(n)
  end))
end
_M.decode = decode

-- The text a value renders as (JavaScript's String(v) for scalars), or nil.
local function to_text(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then
    if v ~= v then return "NaN" end
    if v == huge then return "Infinity" end
    if v == -huge then return "-Infinity" end
    if v == floor(v) and v > -2^53 and v < 2^53 then return sformat("%d", v) end
    return sformat("%.17g", v)
  end
  if t == "boolean" then return v and "true" or "false" end
  if t == "cdata" then return tostring(v) end
  return nil -- nil, tables, functions, JSON null (userdata)
end
_M.to_text = to_text

-- What a text hole shows of v, escaped, or nil. A number's or a boolean's
-- text (digits, ".", "-", "+", "e", NaN, Infinity, true, false) has nothing
-- to escape; a string's and a cdata's (its __tostring is user code) are.
local function hole_text(v)
  local s = to_text(v)
  if s == nil or s == "" then return nil end
  local t = type(v)
  if t == "string" or t == "cdata" then return escape_text(s) end
  return s
end

-- JavaScript truthiness (for DOM boolean properties).
local function truthy(v)
  if v == nil or v == false or v == 0 or v == "" then return false end
  if type(v) == "number" and v ~= v then return false end
  if type(v) == "userdata" then return false end -- JSON null
  return true
end

-- ===== TOKENIZER =====

local ALPHA = {}
for c = 65, 90 do ALPHA[c] = true; ALPHA[c + 32] = true end
local WS = { [32] = true, [9] = true, [10] = true, [13] = true, [12] = true }
local TAG_END = { [32] = true, [9] = true, [10] = true, [13] = true, [12] = true, [47] = true, [62] = true }
local NAME_END = { [32] = true, [9] = true, [10] = true, [13] = true, [12] = true, [47] = true, [62] = true,
                   [61] = true }

-- Reads the attributes of a tag whose name ends at p - 1. Returns the tag's
-- last byte, self-closing flag, the attribute list and the insert position,
-- or nil, pos, message.
local function read_attrs(html, p, keep)
  local attrs, na, ins = keep and {} or nil, 0, p
  while true do
    local c = sbyte(html, p)
    while WS[c] do p = p + 1; c = sbyte(html, p) end
    if not c then return nil, nil, nil, nil, "unterminated tag" end
    if c == 62 then return p, false, attrs, ins end
    if c == 47 then
      if sbyte(html, p + 1) == 62 then return p + 1, true, attrs, ins end
      p = p + 1
    else
      -- name: first byte anything but ws / >, then up to ws / > =
      local as, ae = p, p + 1
      c = sbyte(html, ae)
      while c and not NAME_END[c] do ae = ae + 1; c = sbyte(html, ae) end
      ae = ae - 1
      local attr
      if keep then
        local raw = ssub(html, as, ae)
        attr = { name = slower(raw), raw_name = raw, pos = as, stop = ae }
      end
      p = ae + 1
      local e = p
      while WS[c] do e = e + 1; c = sbyte(html, e) end
      if c == 61 then
        p = e + 1
        c = sbyte(html, p)
        while WS[c] do p = p + 1; c = sbyte(html, p) end
        if c == 34 or c == 39 then
          local close = sfind(html, c == 34 and '"' or "'", p + 1, true)
          if not close then return nil, p, nil, nil, "unterminated quoted attribute value" end
          if keep then
            attr.value, attr.quote, attr.vpos, attr.stop = ssub(html, p + 1, close - 1), c == 34 and '"' or "'",
              p + 1, close
          end
          p = close + 1
        elseif not c then
          return nil, nil, nil, nil, "unterminated tag"
        else
          local ve = p
          while c and not WS[c] and c ~= 62 do ve = ve + 1; c = sbyte(html, ve) end
          ve = ve - 1
          if keep then
            attr.value, attr.quote, attr.vpos, attr.stop = ssub(html, p, ve), "", p, ve
            if ve < p then attr.stop = p - 1 end
          end
          p = ve + 1
        end
      end
      if keep then
        na = na + 1
        attrs[na] = attr
        ins = attr.stop + 1
      else
        ins = p
      end
    end
  end
end

-- End of a tag name: whitespace, / or >.
local function name_end(html, p)
  local c = sbyte(html, p)
  while c and not TAG_END[c] do p = p + 1; c = sbyte(html, p) end
  return p - 1
end

-- Tokenizes html into an array of tokens (see docs/rendering.md, "Tokens"):
--   { type = "text", pos, stop, raw = "script"? }
--   { type = "start", pos, stop, name, raw_name, attrs = {...}, self_closing, ins }
--   { type = "end", pos, stop, name }
--   { type = "comment", pos, stop, bogus = true? }  { type = "doctype", pos, stop }
-- Returns tokens, or nil, err, partial_tokens.
local function tokenize(html)
  local toks, n = {}, 0
  local len = #html
  local i = 1
  local function fail(pos, msg)
    return nil, make_error(html, pos, msg), toks
  end
  while i <= len do
    -- the next '<' that starts markup
    local j, lt, c = i, nil, nil -- luacheck: ignore 311
    while true do
      lt = sfind(html, "<", j, true)
      if not lt then break end
      c = sbyte(html, lt + 1)
      if c and (ALPHA[c] or c == 47 or c == 33 or c == 63) then
        if c ~= 47 or sbyte(html, lt + 2) then break end
      end
      j = lt + 1
    end
    if not lt then
      n = n + 1
      toks[n] = { type = "text", pos = i, stop = len }
      break
    end
    if lt > i then
      n = n + 1
      toks[n] = { type = "text", pos = i, stop = lt - 1 }
    end
    if ALPHA[c] then
      local ne = name_end(html, lt + 1)
      local raw = ssub(html, lt + 1, ne)
      local stop, selfc, attrs, ins, msg = read_attrs(html, ne + 1, true)
      if not stop then
        return fail(selfc or lt, (msg == "unterminated tag" and ("unterminated start tag <" .. raw .. ">") or msg))
      end
      local name = slower(raw)
      n = n + 1
      toks[n] = { type = "start", pos = lt, stop = stop, name = name, raw_name = raw, attrs = attrs,
                  self_closing = selfc, ins = ins }
      i = stop + 1
      if RAW_TEXT[name] then
        local p, nl = i, #name
        local s
        while true do
          s = sfind(html, "</", p, true)
          if not s then return fail(lt, "unclosed <" .. raw .. "> (raw text runs to the end of the input)") end
          if slower(ssub(html, s + 2, s + 1 + nl)) == name then
            local nb = sbyte(html, s + 2 + nl)
            if not nb or WS[nb] or nb == 47 or nb == 62 then break end
          end
          p = s + 2
        end
        if s > i then
          n = n + 1
          toks[n] = { type = "text", pos = i, stop = s - 1, raw = name }
        end
        i = s
      end
    elseif c == 47 then -- "</"
      local c2 = sbyte(html, lt + 2)
      if ALPHA[c2] then
        local ne = name_end(html, lt + 2)
        local name = slower(ssub(html, lt + 2, ne))
        local stop, qpos, _, _, msg = read_attrs(html, ne + 1, false)
        if not stop then
          return fail(qpos or lt, msg == "unterminated tag" and ("unterminated end tag </" .. name .. ">") or msg)
        end
        n = n + 1
        toks[n] = { type = "end", pos = lt, stop = stop, name = name }
        i = stop + 1
      else -- "</>" is dropped, "</ ..." is a bogus comment
        local gt = sfind(html, ">", lt + 2, true)
        if not gt then return fail(lt, "unterminated end tag") end
        n = n + 1
        toks[n] = { type = "comment", pos = lt, stop = gt, bogus = true }
        i = gt + 1
      end
    elseif c == 33 then -- "<!"
      if ssub(html, lt + 2, lt + 3) == "--" then
        local q, stop = lt + 4, nil -- luacheck: ignore 311
        if sbyte(html, q) == 62 then
          stop = q
        elseif ssub(html, q, q + 1) == "->" then
          stop = q + 1
        else
          local _, e = sfind(html, "%-%-!?>", q)
          if not e then return fail(lt, "unterminated comment") end
          stop = e
        end
        n = n + 1
        toks[n] = { type = "comment", pos = lt, stop = stop }
        i = stop + 1
      else
        local gt = sfind(html, ">", lt + 2, true)
        local doctype = slower(ssub(html, lt + 2, lt + 8)) == "doctype"
        if not gt then return fail(lt, doctype and "unterminated doctype" or "unterminated markup declaration") end
        n = n + 1
        toks[n] = { type = doctype and "doctype" or "comment", pos = lt, stop = gt, bogus = not doctype or nil }
        i = gt + 1
      end
    else -- "<?" bogus comment
      local gt = sfind(html, ">", lt + 2, true)
      if not gt then return fail(lt, "unterminated processing instruction") end
      n = n + 1
      toks[n] = { type = "comment", pos = lt, stop = gt, bogus = true }
      i = gt + 1
    end
  end
  return toks
end

-- Public tokenizer: never raises for a string.
function _M.tokenize(html, opts)
  if type(html) ~= "string" then
    return nil, setmetatable({ message = "html must be a string, got " .. type(html), pos = 0, line = 0, col = 0 },
      ERR_MT)
  end
  local tk = opts and opts.tokenizer or tokenize
  local ok, toks, err, partial = pcall(tk, html)
  if not ok then
    return nil, setmetatable({ message = "internal scanner error: " .. tostring(toks), pos = 0, line = 0, col = 0,
      internal = true }, ERR_MT)
  end
  return toks, err, partial
end
_M._tokenize = tokenize

-- ===== PREFIX CONFIGURATION =====

local function prefix_list(v, kind)
  if type(v) == "string" then return { v } end
  if type(v) == "table" then return v end
  errors.argument("scanner: prefixes." .. kind .. " must be a string or a list of strings")
end

local configs_by_key, configs_n = {}, 0
local configs_by_table = setmetatable({}, { __mode = "k" })
_M.MAX_CONFIGS = 64 -- prefix configs kept (each with its plan cache); all dropped when more are made

local function longest_first(a, b)
  if #a[1] ~= #b[1] then return #a[1] > #b[1] end
  return a[1] < b[1]
end

-- A config: { key, list = { {prefix, kind} } longest first, first = { [byte] = true } }.
-- (No closure in here: it runs per request, and a closure would keep its
-- trace from compiling.)
local function get_config(prefixes)
  if prefixes == nil then prefixes = DEFAULT_PREFIXES end
  local cfg = configs_by_table[prefixes]
  if cfg then return cfg end
  if type(prefixes) ~= "table" then errors.argument("scanner: opts.prefixes must be a table") end
  local list, parts = {}, {}
  for _, kind in ipairs({ "async", "signal", "on", "class" }) do
    local v = prefixes[kind]
    if v == nil then v = DEFAULT_PREFIXES[kind] end
    for _, p in ipairs(prefix_list(v, kind)) do
      if type(p) ~= "string" or p == "" then errors.argument("scanner: prefixes." .. kind .. " has an empty prefix") end
      list[#list + 1] = { slower(p), kind }
    end
  end
  sort(list, longest_first)
  local first = {}
  for k, e in ipairs(list) do
    first[sbyte(e[1], 1)] = true
    parts[k] = e[2] .. "=" .. e[1]
  end
  local key = concat(parts, "\0")
  cfg = configs_by_key[key]
  if not cfg then
    if configs_n >= _M.MAX_CONFIGS then
      configs_by_key, configs_n = {}, 0
      configs_by_table = setmetatable({}, { __mode = "k" })
    end
    cfg = { key = key, list = list, first = first, cache = { cur = {}, old = {}, n = 0 } }
    configs_by_key[key] = cfg
    configs_n = configs_n + 1
  end
  configs_by_table[prefixes] = cfg
  return cfg
end

-- ===== ATTRIBUTE CLASSIFICATION =====

local function trim(s)
  return smatch(s, "^[ \t\n\r\f]*(.-)[ \t\n\r\f]*$")
end

-- "attr:NAME" or "attr-NAME" -> NAME
local function sub_name(rest, head)
  local h = #head
  if ssub(rest, 1, h) == head then
    local sep = sbyte(rest, h + 1)
    if (sep == 58 or sep == 45) and #rest > h + 1 then return ssub(rest, h + 2) end
  end
  return nil
end

-- Classifies one attribute; returns a slot table (without element info) or
-- nil, plus a warning message for protocol attributes it does not know.
local function classify(cfg, attr)
  local name = attr.name
  if not cfg.first[sbyte(name, 1)] then return nil end
  local kind, rest
  for _, e in ipairs(cfg.list) do
    local p = e[1]
    if ssub(name, 1, #p) == p then
      kind, rest = e[2], ssub(name, #p + 1)
      break
    end
  end
  if not kind then return nil end
  local value = attr.value
  local path = value and trim(value) or ""
  if kind == "signal" then
    if rest == "text" then return { kind = "text", path = path } end
    if rest == "value" then return { kind = "value", path = path } end
    if rest == "class" then return { kind = "classes", path = path } end
    local n = sub_name(rest, "attr")
    if n then return { kind = "attr", name = n, path = path } end
    n = sub_name(rest, "prop")
    if n then return { kind = "prop", name = n, path = path } end
    n = sub_name(rest, "class")
    if n then return { kind = "class", name = n, path = path } end
    return nil, "unknown signal attribute " .. attr.raw_name
  elseif kind == "class" then
    if rest == "" then return { kind = "classes", path = path } end
    return { kind = "class", name = rest, path = path }
  elseif kind == "on" then
    if rest == "" then return nil, "event attribute without an event name: " .. attr.raw_name end
    return { kind = "on", name = rest, chain = value or "" }
  else -- async
    if rest == "container" then return { kind = "container" } end
    if rest == "snapshot" then return { kind = "snapshot" } end
    if rest == "boundary" then return { kind = "boundary", id = path, path = path } end
    if rest == "loading" or rest == "ready" or rest == "error" then
      return { kind = "template", status = rest, id = path, path = path }
    end
    if rest == "fill" then return { kind = "fill", id = path } end
    if rest == "patch" then return { kind = "patch" } end
    return nil, "unknown async attribute " .. attr.raw_name
  end
end

-- ===== COMPILER =====

local PATH_KINDS = { text = true, value = true, classes = true, attr = true, prop = true, class = true }

-- Produces chunks and holes for the byte range [A, B] from the sorted edits.
local function emit(html, edits, A, B, exclude)
  local chunks, holes, nh = {}, {}, 0
  local pieces, np = {}, 0
  local cur = A
  for k = 1, #edits do
    local e = edits[k]
    local a = e.a
    if a > B then break end
    if a >= cur and e.b <= B and (not exclude or e.hole ~= exclude) then
      if a > cur then
        np = np + 1
        pieces[np] = ssub(html, cur, a - 1)
      end
      if e.hole then
        chunks[nh + 1] = concat(pieces, "", 1, np)
        np = 0
        nh = nh + 1
        holes[nh] = e.hole
      elseif e.static ~= "" then
        np = np + 1
        pieces[np] = e.static
      end
      cur = e.b + 1
    end
  end
  if cur <= B then
    np = np + 1
    pieces[np] = ssub(html, cur, B)
  end
  chunks[nh + 1] = concat(pieces, "", 1, np)
  return { chunks = chunks, holes = holes }
end

-- First edit index with a >= A (edits sorted by a).
local function lower_bound(edits, A)
  local lo, hi = 1, #edits + 1
  while lo < hi do
    local mid = floor((lo + hi) / 2)
    if edits[mid].a < A then lo = mid + 1 else hi = mid end
  end
  return lo
end

local function emit_range(html, edits, A, B, exclude)
  local from = lower_bound(edits, A)
  if from == 1 then return emit(html, edits, A, B, exclude) end
  local sub = {}
  for k = from, #edits do sub[#sub + 1] = edits[k] end
  return emit(html, sub, A, B, exclude)
end

-- True when html[a..b] is empty or whitespace only.
local function blank(html, a, b)
  if b < a then return true end
  local x = sfind(html, "[^ \t\n\r\f]", a)
  return not x or x > b
end

-- Text of an option's content for value matching: tags removed, whitespace collapsed.
local function option_text(html, a, b)
  local s = ssub(html, a, b)
  s = sgsub(s, "<[^>]*>", "")
  s = sgsub(s, "[ \t\n\r\f]+", " ")
  return decode(trim(s))
end

-- Skeleton mode (plans of template source): records where each marker
-- "\1N\2" of token tok sits: sk.at[N] = { kind = "data" | "raw" | "comment"
-- | "attr", el = the innermost open element (data) }. sk.bad says why the
-- template cannot be filled by parts.
local function sk_token(sk, html, tok, el)
  local a, b = tok.pos, tok.stop
  local p = sfind(html, "\1", a, true)
  if not p or p > b then return end
  local tt = tok.type
  local kind
  if tt == "text" then
    kind = tok.raw and "raw" or "data"
  elseif tt == "comment" and not tok.bogus then
    kind = "comment"
  elseif tt == "start" then
    kind = "attr"
  else
    sk.bad = "a {{ }} in a " .. tt
    return
  end
  while p and p <= b do
    local q = sfind(html, "\2", p, true)
    local k = tonumber(ssub(html, p + 1, q - 1))
    if kind ~= "attr" then
      -- a value right after "<", "</", "<!", "<?" or "<!-" could start markup
      local before = ssub(html, p > 3 and p - 3 or 1, p - 1)
      if sfind(before, "<[/!?]?$") or sfind(before, "<!%-$") then sk.bad = "a {{ }} right after <" end
    end
    sk.at[k] = { kind = kind, el = el or false }
    p = sfind(html, "\1", q, true)
  end
end

local function compile(html, cfg, opts)
  local toks, terr = (opts and opts.tokenizer or tokenize)(html)
  local source = opts and opts.name
  if not toks then
    terr.source = source
    return nil, terr
  end

  local slots, nslots = {}, 0
  local warnings = {}
  local edits, nedits = {}, 0
  local stack, depth = {}, 0
  local elements = 0
  -- what decides whether this HTML, inserted into other HTML, reads the same
  -- as alone (async.html.scanner "composing"): see compose_facts below
  local facts = { closes = nil, open = false, selfclosing = false }
  -- skeleton mode: the {{ }} of a template are "\1N\2" markers; sk.at[N]
  -- records where each one sits
  local sk = opts and opts.skeleton
  -- a copy of template source kept verbatim (a <template> element inside a
  -- boundary): its markers become raw markers ("\3N\2": the value's HTML as is)
  local function copy(a, b)
    local c = ssub(html, a, b)
    if sk and sfind(c, "\1", 1, true) then c = sgsub(c, "\1", "\3") end
    return c
  end

  -- incremental line:col for monotonically increasing positions
  local lc_line, lc_start, lc_at = 1, 1, 1
  local function locate(pos)
    if pos < lc_at then lc_line, lc_start, lc_at = 1, 1, 1 end
    local p = lc_at
    while true do
      local nl = sfind(html, "\n", p, true)
      if not nl or nl >= pos then break end
      lc_line, lc_start, p = lc_line + 1, nl + 1, nl + 1
    end
    lc_at = pos
    return lc_line, pos - lc_start + 1
  end
  local function warn(pos, message)
    local line, col = locate(pos)
    warnings[#warnings + 1] = { message = message, pos = pos, line = line, col = col, source = source }
  end
  local function fail(pos, message)
    return nil, make_error(html, pos, message, source)
  end
  local function add_edit(a, b, hole, static)
    nedits = nedits + 1
    edits[nedits] = { a = a, b = b, hole = hole, static = static, seq = nedits }
  end

  -- Called when an element leaves the stack; `at` is the first byte after its content.
  local function close(el, at)
    local cs, ce = el.tok.stop + 1, at - 1
    if el.content_hole then
      add_edit(cs, ce, el.content_hole)
    elseif el.boundary and el.templates then
      -- kept: the templates, with the whitespace-only gaps around them
      local h = el.boundary_hole
      local head, nh, prev = {}, 0, cs
      for _, tel in ipairs(el.templates) do
        local ta, tb = tel.tok.pos, tel.end_stop or tel.content_range[2]
        if blank(html, prev, ta - 1) then nh = nh + 1; head[nh] = ssub(html, prev, ta - 1) end
        nh = nh + 1
        head[nh] = copy(ta, tb)
        prev = tb + 1
      end
      h.head = concat(head)
      h.tail = blank(html, prev, ce) and ssub(html, prev, ce) or ""
      h.range = { cs, ce }
      h.templates, h.template_els = {}, {}
      for _, tel in ipairs(el.templates) do h.template_els[tel.template_of.status] = tel end
      add_edit(cs, ce, h)
    end
    if el.template_of then
      el.content_range = { cs, ce }
      add_edit(el.tok.pos, el.end_stop or ce, nil, copy(el.tok.pos, el.end_stop or ce))
    end
    if el.option_hole then
      local op = el.option_hole
      if op.option_value == nil then op.option_value = option_text(html, cs, ce) end
    end
  end

  local function pop_to(k, at, end_tok)
    for d = depth, k, -1 do
      local el = stack[d]
      stack[d] = nil
      if d == k and end_tok then el.end_stop = end_tok.stop end
      close(el, at)
    end
    depth = k - 1
  end

  local ntoks = #toks
  for ti = 1, ntoks do
    local tok = toks[ti]
    local tt = tok.type
    if tt == "start" then
      if sk then sk_token(sk, html, tok, false) end
      local name = tok.name
      -- optional end tags
      local closes = IMPLIED_END[name]
      while depth > 0 and closes and closes[stack[depth].name] do
        pop_to(depth, tok.pos)
      end
      if closes and depth == 0 then   -- inserted, it would close the enclosing element
        local c = facts.closes or {}
        for k in pairs(closes) do c[k] = true end
        facts.closes = c
      end
      elements = elements + 1
      local foreign = name == "svg" or name == "math" or (depth > 0 and stack[depth].foreign)
      local el = { name = name, tok = tok, idx = elements, foreign = foreign, parent = stack[depth] }
      local targets, ntargets -- attribute name -> { slots = {...} }
      local attrs = tok.attrs
      for ai = 1, #attrs do
        local attr = attrs[ai]
        local slot, wmsg = classify(cfg, attr)
        if wmsg then warn(attr.pos, wmsg) end
        if slot then
          local line, col = locate(attr.pos)
          slot.element, slot.tag, slot.attr = elements, name, attr.raw_name
          slot.pos, slot.line, slot.col, slot.source = attr.pos, line, col, source
          nslots = nslots + 1
          slots[nslots] = slot
          local k = slot.kind
          if PATH_KINDS[k] and slot.path == "" then
            warn(attr.pos, attr.raw_name .. " names no signal path")
            slot.ignored = true
          elseif k == "text" then
            if VOID[name] then
              slot.ignored = true
            elseif UNESCAPABLE[name] then
              return fail(attr.pos, attr.raw_name .. " on <" .. name .. "> cannot be rendered safely")
            else
              el.content_hole = { kind = "text", slot = slot }
            end
          elseif k == "value" and name == "textarea" then
            el.content_hole = { kind = "text", slot = slot, value = true }
          elseif k == "value" and name == "select" then
            el.select_slot = slot
          elseif k == "boundary" then
            if slot.id == "" then warn(attr.pos, attr.raw_name .. " without an id") else el.boundary = slot end
          elseif k == "template" then
            if name ~= "template" then
              warn(attr.pos, attr.raw_name .. " belongs on a <template>, not <" .. name .. ">")
            else
              el.template_of = slot
            end
          elseif k == "attr" or k == "classes" or k == "class" or k == "value"
              or (k == "prop" and BOOLEAN_PROPS[slot.name]) then
            local target = (k == "attr" or k == "prop") and slot.name
              or (k == "value" and "value") or "class"
            if k == "attr" and forbidden_attr(target) then
              return fail(attr.pos, attr.raw_name .. ": binding the " .. target
                .. " attribute is not allowed (it would run its value)")
            end
            if k == "attr" and not sfind(target, "^[%a_:][%w_:%.%-]*$") then
              return fail(attr.pos, attr.raw_name .. ": not a valid attribute name")
            end
            if not targets then targets, ntargets = {}, {} end
            local t = targets[target]
            if not t then
              t = { kind = "attr", name = target, ops = {} }
              targets[target] = t
              ntargets[#ntargets + 1] = target
            end
            t.ops[#t.ops + 1] = slot
          end
        end
      end
      -- templates owned by a boundary
      if el.template_of then
        local tslot = el.template_of
        local searched = true
        for d = depth, 1, -1 do
          local b = stack[d]
          if b.name == "template" and d < depth then searched = false; break end
          if b.boundary and b.boundary.id == tslot.id then
            searched = false
            if d == depth then
              b.templates = b.templates or {}
              if b.templates[tslot.status] then
                warn(tslot.pos, "second async:" .. tslot.status .. " template for boundary " .. tslot.id)
              else
                b.templates[tslot.status] = el
                b.templates[#b.templates + 1] = el
                tslot.boundary = b.idx
                el.owner = b
              end
            else
              warn(tslot.pos, "template for boundary " .. tslot.id .. " is not a direct child of it")
            end
            break
          end
        end
        if searched then facts.open = true end   -- inserted, it would look further out
        if not el.owner then
          warn(tslot.pos, "template " .. tslot.attr .. "=\"" .. tslot.id .. "\" has no enclosing boundary")
        end
      end
      -- options of a bound select
      if name == "option" then
        local found = false
        for d = depth, 1, -1 do
          local s = stack[d]
          if s.name == "select" or s.name == "template" then found = true end
          if s.name == "select" then
            if s.select_slot and not s.select_slot.ignored then
              if not targets then targets, ntargets = {}, {} end
              local t = targets.selected
              if not t then
                t = { kind = "attr", name = "selected", ops = {} }
                targets.selected = t
                ntargets[#ntargets + 1] = "selected"
              end
              local op = { kind = "option", slot = s.select_slot }
              for ai = 1, #attrs do
                if attrs[ai].name == "value" then op.option_value = decode(attrs[ai].value or ""); break end
              end
              t.ops[#t.ops + 1] = op
              el.option_hole = op
            end
            break
          end
          if s.name == "template" then break end
        end
        if not found then facts.open = true end
      end
      -- attribute holes
      if targets then
        for _, target in ipairs(ntargets) do
          local t = targets[target]
          local first = true
          for ai = 1, #attrs do
            local attr = attrs[ai]
            if attr.name == target then
              -- the hole covers the whitespace before the attribute
              local _, ws = sfind(ssub(html, tok.pos, attr.pos - 1), "^.-()[ \t\n\r\f]*$")
              local a = tok.pos + ws - 1
              if first then
                first = false
                t.present = true
                t.raw_name = attr.raw_name
                local v = attr.value and requote(attr.value) or ""
                t.static = v
                if target == "class" then
                  local list = {}
                  for cls in v:gmatch("[^ \t\n\r\f]+") do list[#list + 1] = cls end
                  t.static_list = list
                end
                add_edit(a, attr.stop, t)
              else
                add_edit(a, attr.stop, nil, "")
              end
            end
          end
          if first then
            t.raw_name = target
            add_edit(tok.ins, tok.ins - 1, t)
          end
          t.open = " " .. t.raw_name .. '="'
          t.url = escape.url_attribute(target) and true or nil
          if target == "class" then
            t.is_class = true
            t.static = t.static or ""
            t.static_set = {}
            for _, cls in ipairs(t.static_list or {}) do t.static_set[cls] = true end
            local only = true
            for _, op in ipairs(t.ops) do
              if op.kind == "class" then op.class_name = escape_attr(op.name) else only = false end
            end
            t.toggles_only = only
            -- one signal:class and nothing else: class_value's fast path
            if #t.ops == 1 and t.ops[1].kind == "classes" then
              t.single_classes = t.ops[1]
              t.static_joined = concat(t.static_list or {}, " ")
            end
          end
        end
      end
      -- open the element
      if el.boundary and not el.content_hole then
        el.boundary_hole = { kind = "boundary", slot = el.boundary }
      end
      if tok.self_closing and not VOID[name] and not foreign then facts.selfclosing = true end
      if VOID[name] or (tok.self_closing and foreign) then
        if el.content_hole then el.content_hole.slot.ignored = true end
        if el.template_of and el.owner then
          el.content_range, el.end_stop = { tok.stop + 1, tok.stop }, tok.stop
          add_edit(tok.pos, tok.stop, nil, copy(tok.pos, tok.stop))
        end
      else
        depth = depth + 1
        stack[depth] = el
      end
    elseif tt == "end" then
      local name = tok.name
      local matched = false
      for d = depth, 1, -1 do
        local s = stack[d]
        if s.name == name then
          pop_to(d, tok.pos, tok)
          matched = true
          break
        end
        if s.name == "template" then matched = true; break end
      end
      if not matched then facts.open = true end   -- inserted, it could close an outer element
      if sk and sfind(html, "\1", tok.pos, true) and sfind(html, "\1", tok.pos, true) <= tok.stop then
        sk.bad = "a {{ }} in an end tag"
      end
    elseif sk then
      sk_token(sk, html, tok, stack[depth] or false)
    end
  end
  if depth > 0 then facts.open = true end
  -- unclosed elements at the end of the input
  for d = depth, 1, -1 do
    local el = stack[d]
    if el.content_hole then
      return fail(el.tok.pos, "<" .. el.tok.raw_name .. "> with " .. el.content_hole.slot.attr .. " is never closed")
    end
    if el.template_of and el.owner then
      return fail(el.tok.pos, "<" .. el.tok.raw_name .. " " .. el.template_of.attr .. "> is never closed")
    end
    if el.boundary and el.templates then
      return fail(el.tok.pos, "boundary <" .. el.tok.raw_name .. "> is never closed")
    end
    close(el, #html + 1)
  end

  -- by start; enclosing ranges before enclosed ones (for the same range the
  -- element closed last is the outer one); insertions at one point in order
  sort(edits, function(x, y)
    if x.a ~= y.a then return x.a < y.a end
    if x.b ~= y.b then return x.b > y.b end
    if x.b < x.a then return x.seq < y.seq end
    return x.seq > y.seq
  end)

  -- sub-plans of boundaries: the content of each template, and the fallback
  for k = 1, nedits do
    local h = edits[k].hole
    if h and h.kind == "boundary" then
      local cs, ce = h.range[1], h.range[2]
      h.fallback = emit_range(html, edits, cs, ce, h)
      for status, tel in pairs(h.template_els) do
        h.templates[status] = emit_range(html, edits, tel.content_range[1], tel.content_range[2], h)
      end
      h.template_els = nil
    end
  end

  local main = emit(html, edits, 1, #html)
  local last = ssub(html, -2)
  if ssub(last, -1) == "<" or last == "</" then facts.open = true end
  return {
    chunks = main.chunks, holes = main.holes, slots = slots, warnings = warnings,
    elements = elements, source = source, size = #html, facts = facts,
  }
end

-- ===== PLAN CACHE =====

_M.cache_size = 512 -- plans per generation and prefix config; at most twice this are kept

local function cache_get(c, html)
  local plan = c.cur[html]
  if plan then return plan end
  plan = c.old[html]
  if plan then
    c.old[html] = nil
    if c.n >= _M.cache_size then c.old, c.cur, c.n = c.cur, {}, 0 end
    c.cur[html], c.n = plan, c.n + 1
  end
  return plan
end

local function cache_set(c, html, plan)
  if c.n >= _M.cache_size then c.old, c.cur, c.n = c.cur, {}, 0 end
  c.cur[html], c.n = plan, c.n + 1
end

-- Drops every cached plan.
function _M.cache_clear()
  for _, cfg in pairs(configs_by_key) do cfg.cache = { cur = {}, old = {}, n = 0 } end
end

-- Number of prefix configs kept.
function _M.config_count()
  return configs_n
end

-- Number of cached plans (all configs).
function _M.cache_count()
  local n = 0
  for _, cfg in pairs(configs_by_key) do
    for _ in pairs(cfg.cache.cur) do n = n + 1 end
    for _ in pairs(cfg.cache.old) do n = n + 1 end
  end
  return n
end

-- Compiles html into a render plan, or returns nil, err. Plans are cached by
-- html and prefix config (opts.cache = false skips the cache); a cached plan
-- is shared and must not be modified. opts: prefixes (or attributes), name.
-- The cached plan of html for a prefix config (from _M.config): plan, or
-- nil and err.
local function plan_for(html, cfg)
  local hit = cache_get(cfg.cache, html)
  if hit then
    if hit.failed then return nil, hit.err end
    return hit
  end
  local ok, plan, err = pcall(compile, html, cfg)
  if not ok then
    plan, err = nil, setmetatable({ message = "internal scanner error: " .. tostring(plan), pos = 0, line = 0,
      col = 0, internal = true }, ERR_MT)
  end
  cache_set(cfg.cache, html, plan or { failed = true, err = err })
  return plan, err
end
_M.plan_for = plan_for

function _M.compile(html, opts)
  if type(html) ~= "string" then
    return nil, setmetatable({ message = "html must be a string, got " .. type(html), pos = 0, line = 0, col = 0 },
      ERR_MT)
  end
  local cfg = get_config(opts and (opts.prefixes or opts.attributes))
  local use_cache = not (opts and opts.cache == false)
  if use_cache then
    local hit = cache_get(cfg.cache, html)
    if hit then
      if hit.failed then return nil, hit.err end
      return hit
    end
  end
  local ok, plan, err = pcall(compile, html, cfg, opts)
  if not ok then
    plan, err = nil, setmetatable({ message = "internal scanner error: " .. tostring(plan), pos = 0, line = 0,
      col = 0, internal = true }, ERR_MT)
  end
  if use_cache and not (opts and opts.name) then
    cache_set(cfg.cache, html, plan or { failed = true, err = err })
  end
  if not plan then return nil, err end
  return plan
end

-- ===== FILL =====

local fill

local function has_space(s)
  return sfind(s, " ", 1, true) or sfind(s, "\t", 1, true) or sfind(s, "\n", 1, true)
    or sfind(s, "\r", 1, true) or sfind(s, "\f", 1, true)
end

-- Splits a class value (string, list, map of name -> bool, nested) into
-- escaped class names appended to list; set tracks what is present.
local function add_classes(v, list, set)
  local t = type(v)
  if t == "string" then
    if not has_space(v) then
      if v ~= "" then
        v = escape_attr(v)
        if not set[v] then list[#list + 1] = v; set[v] = true end
      end
      return
    end
    for cls in v:gmatch("[^ \t\n\r\f]+") do
      cls = escape_attr(cls)
      if not set[cls] then list[#list + 1] = cls; set[cls] = true end
    end
  elseif t == "number" then
    add_classes(to_text(v), list, set)
  elseif t == "table" then
    local n = #v
    for k = 1, n do add_classes(v[k], list, set) end
    local keys
    for k, on in pairs(v) do
      if type(k) == "string" and truthy(on) then
        keys = keys or {}
        keys[#keys + 1] = k
      end
    end
    if keys then
      if #keys > 1 then sort(keys) end
      for k = 1, #keys do add_classes(keys[k], list, set) end
    end
  end
end

local function option_selected(v, want)
  if type(v) == "table" then
    for k = 1, #v do
      if to_text(v[k]) == want then return true end
    end
    return false
  end
  return to_text(v) == want
end

-- The class attribute from its static value and its bindings: an escaped
-- value, or nil when the attribute is left out.
local function class_value(h, resolve, general, vals)
  local ops = h.ops
  local present = h.present
  -- common case: static classes and class:NAME toggles that only add
  if h.toggles_only and not general then
    local v = h.static
    for k = 1, #ops do
      local slot = ops[k]
      local on = truthy(resolve(slot, vals))
      local name = slot.class_name
      if on then
        if not h.static_set[name] then v = v == "" and name or (v .. " " .. name) end
      elseif h.static_set[name] then
        return nil -- removal: take the general path
      end
    end
    if v == "" and not present then return false end
    return v
  end
  -- one signal:class whose value is one class name: no lists (the general
  -- path below gives the same string)
  local single = h.single_classes
  if single then
    local v = resolve(single, vals)
    if type(v) == "string" and not has_space(v) then
      local out = h.static_joined
      if v ~= "" then
        v = escape_attr(v)
        if not h.static_set[v] then out = out == "" and v or (out .. " " .. v) end
      end
      if out == "" and not present then return false end
      return out
    end
  end
  local list, set = {}, {}
  local sl = h.static_list
  if sl then
    for k = 1, #sl do list[k] = sl[k]; set[sl[k]] = true end
  end
  for k = 1, #ops do
    local slot = ops[k]
    local kind = slot.kind
    if kind == "attr" then
      local v = resolve(slot, vals)
      list, set = {}, {}
      if v == nil or v == false or type(v) == "userdata" then
        present = false
      else
        present = true
        add_classes(v, list, set)
      end
    elseif kind == "classes" then
      add_classes(resolve(slot, vals), list, set)
    end
  end
  for k = 1, #ops do
    local slot = ops[k]
    if slot.kind == "class" then
      local cls = slot.class_name
      if truthy(resolve(slot, vals)) then
        if not set[cls] then list[#list + 1] = cls; set[cls] = true end
      elseif set[cls] then
        set[cls] = nil
        local j = 0
        for i = 1, #list do
          if list[i] ~= cls then j = j + 1; list[j] = list[i] end
        end
        for i = #list, j + 1, -1 do list[i] = nil end
      end
    end
  end
  if #list == 0 and not present then return false end
  return concat(list, " ")
end

-- Any other attribute: an escaped value, or false when it is left out.
local function attr_value(h, resolve, vals)
  local ops = h.ops
  local value = h.present and h.static or false -- static is already attribute-safe
  for k = 1, #ops do
    local slot = ops[k]
    local kind = slot.kind
    if kind == "prop" then
      value = truthy(resolve(slot, vals)) and ""
    elseif kind == "option" then
      local want = slot.option_value
      value = want ~= nil and option_selected(resolve(slot.slot, vals), want) and ""
    else -- attr, value
      local v = resolve(slot, vals)
      if v == true and kind == "attr" then
        value = ""
      elseif type(v) == "number" and not h.url then
        value = to_text(v)   -- digits, ".", "-", "+", "e", NaN, Infinity: nothing to escape
      else
        v = (v ~= false or kind == "value") and to_text(v) or nil
        if v and h.url then v = escape.url_for(h.name, v) end
        value = v and escape_attr(v) or false
      end
    end
  end
  return value
end

-- Appends the output of plan to buf from index n; returns the new n.
local function fill_into(plan, resolve, buf, n)
  local chunks, holes = plan.chunks, plan.holes
  n = n + 1
  buf[n] = chunks[1]
  for i = 1, #holes do
    local h = holes[i]
    local kind = h.kind
    if kind == "attr" then
      local v
      if h.is_class then
        v = class_value(h, resolve)
        if v == nil then v = class_value(h, resolve, true) end
      else
        v = attr_value(h, resolve)
      end
      if v then
        buf[n + 1], buf[n + 2], buf[n + 3] = h.open, v, '"'
        n = n + 3
      end
    elseif kind == "text" then
      local v = hole_text(resolve(h.slot))
      if v then
        n = n + 1
        buf[n] = v
      end
    else -- boundary
      local status = resolve(h.slot)
      local sub = status and h.templates[status]
      if sub then
        n = n + 1
        buf[n] = h.head
        n = fill_into(sub, resolve, buf, n)
        n = n + 1
        buf[n] = h.tail
      else
        n = fill_into(h.fallback, resolve, buf, n)
      end
    end
    n = n + 1
    buf[n] = chunks[i + 1]
  end
  return n
end

-- Fills a plan: resolve(slot) returns the value of slot.path (for a boundary
-- slot: its status, "loading" | "ready" | "error"). Returns the HTML string.
fill = function(plan, resolve)
  local holes = plan.holes
  if #holes == 0 then return plan.chunks[1] end
  -- sized like the plan's last fill: no rehashing while it grows
  local buf = tnew(rawget(plan, "_fill_n") or 0, 0)
  local n = fill_into(plan, resolve, buf, 0)
  plan._fill_n = n
  return concat(buf, "", 1, n)
end
_M.fill = fill

--- fill's pieces, not joined: returns buf, n with the HTML in buf[first + 1
-- .. n] (the caller puts what goes before into buf[1 .. first] and after
-- into buf[n + 1 ...], and joins once: a page is not copied twice).
function _M.fill_pieces(plan, resolve, first, buf)
  if buf == nil then buf = tnew((rawget(plan, "_fill_n") or 0) + first + 2, 0) end
  local n = fill_into(plan, resolve, buf, first)
  plan._fill_n = n - first
  return buf, n
end

-- ===== BINDINGS =====

-- What a plan names: { signals = {path...}, handlers = {name...}, server = {id...},
-- boundaries = {id...}, chains = { {slot=, event=, chain=, steps=|err=} }, errors = {...} }.
-- Lists are unique, in document order.
function _M.bindings(plan)
  local cached = rawget(plan, "_bindings")
  if cached then return cached end
  local out = { signals = {}, handlers = {}, server = {}, boundaries = {}, chains = {}, errors = {},
                slots = plan.slots }
  local seen = { signals = {}, handlers = {}, server = {}, boundaries = {} }
  local function add(list, v)
    if not seen[list][v] then
      seen[list][v] = true
      out[list][#out[list] + 1] = v
    end
  end
  for _, slot in ipairs(plan.slots) do
    local kind = slot.kind
    if slot.dyn then   -- luacheck: ignore 542
      -- a path or chain holding {{ }}: checked per value (async.ssr.render)
    elseif PATH_KINDS[kind] then
      if slot.path ~= "" then add("signals", slot.path) end
    elseif kind == "boundary" then
      if slot.id ~= "" then add("boundaries", slot.id) end
    elseif kind == "on" then
      local steps, err = chain.parse(slot.chain)
      local rec = { slot = slot, event = slot.name, chain = slot.chain, steps = steps, err = err }
      out.chains[#out.chains + 1] = rec
      if not steps then
        out.errors[#out.errors + 1] = { message = "on:" .. slot.name .. ': ' .. tostring(err and err.message or err),
          pos = slot.pos, line = slot.line, col = slot.col, source = slot.source, slot = slot }
      else
        for _, step in ipairs(steps) do
          if step.kind == "handler" then add("handlers", step.name)
          elseif step.kind == "server" then add("server", step.id) end
          for _, arg in ipairs(step.args or {}) do
            if arg.kind == "signal" then add("signals", arg.path) end
          end
        end
      end
    end
  end
  plan._bindings = out
  return out
end

-- ===== PLANS OF TEMPLATE SOURCE (composing) =====
--
-- A template result (async.html.template: { [0] = TEMPLATE, v1, ..., vn })
-- is filled from the plan of its template's source, compiled once per
-- template: the statics joined with a marker per {{ }}. Chunks holding
-- markers become parts { "static", k, "static", -k, ... }: k emits value k
-- (a string, or a nested template result / html.raw / list filled through
-- its own plan), -k the HTML of value k as is (inside a <template> kept
-- verbatim). A binding whose path or chain holds a {{ }} gets slot.dyn (its
-- parts); the renderer builds the path per value. What would make a value
-- change how the page reads is refused (the plan is false and the renderer
-- reads the whole HTML): a {{ }} in a boundary's id, a class attribute that
-- is bound, an option value or text of a bound select, a boundary's gaps,
-- right after "<"; a nested value whose facts say it would read differently
-- where it is inserted (facts.open: an element left open, an end tag or a
-- <template async:*>/<option> looking outside it, a trailing "<";
-- facts.closes: the elements its start tags close implicitly;
-- facts.selfclosing: "/>" that would count inside svg/math).

local function split_markers(s)
  if not sfind(s, "[\1\3]") then return s end
  local out, pos, n = {}, 1, 0
  while true do
    local a, b, mark, num = sfind(s, "([\1\3])(%d+)\2", pos)
    if not a then break end
    if a > pos then n = n + 1; out[n] = ssub(s, pos, a - 1) end
    n = n + 1
    out[n] = mark == "\1" and tonumber(num) or -tonumber(num)
    pos = b + 1
  end
  if pos <= #s then n = n + 1; out[n] = ssub(s, pos) end
  return out
end

local function has_marker(s)
  return type(s) == "string" and sfind(s, "\1", 1, true) ~= nil
end

-- Turns the chunks of a skeleton plan (and of its boundaries' sub-plans)
-- into parts; returns false when a marker sits where a value would change
-- the plan.
local function partify(plan)
  local chunks = plan.chunks
  for i = 1, #chunks do chunks[i] = split_markers(chunks[i]) end
  for _, h in ipairs(plan.holes) do
    if h.kind == "boundary" then
      h.head, h.tail = split_markers(h.head), split_markers(h.tail)
      if not partify(h.fallback) then return false end
      for _, sub in pairs(h.templates) do
        if not partify(sub) then return false end
      end
    elseif h.kind == "attr" then
      if h.is_class and has_marker(h.static) then return false end
      for _, op in ipairs(h.ops) do
        if op.kind == "option" and has_marker(op.option_value) then return false end
      end
    end
  end
  return true
end

local WS_BYTE = WS

local function template_plan_build(t, cfg)
  local statics, n = t.statics, t.n
  local parts = { statics[1] }
  for i = 1, n + 1 do
    if sfind(statics[i], "[\1\2\3]") then return false end
  end
  for i = 1, n do
    parts[2 * i] = "\1" .. i .. "\2"
    parts[2 * i + 1] = statics[i + 1]
  end
  local skel = concat(parts)
  local sk = { at = {} }
  local ok, plan = pcall(compile, skel, cfg, { skeleton = sk })
  if not ok or not plan or sk.bad then return false end
  local at = sk.at
  for k = 1, n do
    local a = at[k]
    if not a then return false end
    local el = a.el
    if a.kind == "data" and el and el.boundary and el.templates then return false end   -- a boundary's gaps
  end
  if not partify(plan) then return false end
  local dyn = {}
  for _, slot in ipairs(plan.slots) do
    local kind = slot.kind
    if kind == "on" then
      if has_marker(slot.chain) then slot.dyn = split_markers(slot.chain); dyn[#dyn + 1] = slot end
    elseif PATH_KINDS[kind] then
      if has_marker(slot.path) then
        local d = split_markers(slot.path)
        if type(d) == "string" then d = { d } end
        d.trim = true
        slot.dyn = d
        dyn[#dyn + 1] = slot
      end
    elseif has_marker(slot.id) or has_marker(slot.path) then
      return false   -- a boundary, template or fill id
    end
  end
  plan.at, plan.dyn, plan.template = at, dyn, t
  return plan
end

--- The plan of a template (a template result's [0]) for the prefix config
-- of opts (as compile), or false when its values could change how the page
-- reads (the renderer then reads the joined HTML). Built once per template
-- and config.
function _M.template_plan(t, opts_or_cfg)
  local plans = t.plans
  if plans == nil then
    plans = setmetatable({}, { __mode = "k" })
    t.plans = plans
  end
  local cfg = opts_or_cfg
  if cfg == nil or cfg.list == nil then cfg = get_config(opts_or_cfg) end
  local p = plans[cfg]
  if p == nil then
    p = template_plan_build(t, cfg)
    plans[cfg] = p
  end
  return p
end
_M.config = get_config

-- The path (or chain) of a dynamic slot for the values of one template result.
local function dyn_string(d, vals)
  local n = #d
  local a = d[1]
  if type(a) == "number" then a = vals[a] end
  local s
  if n == 1 then
    s = a
  else
    local b = d[2]
    if type(b) == "number" then b = vals[b] end
    if n == 2 then
      s = a .. b
    else
      local c = d[3]
      if type(c) == "number" then c = vals[c] end
      if n == 3 then
        s = a .. b .. c
      else
        local buf = { a, b, c }
        for i = 4, n do
          local x = d[i]
          if type(x) == "number" then x = vals[x] end
          buf[i] = x
        end
        s = concat(buf)
      end
    end
  end
  if d.trim and (WS_BYTE[sbyte(s, 1)] or WS_BYTE[sbyte(s, -1)]) then s = trim(s) end
  return s
end
_M.dyn_string = dyn_string

local fill_parts_into, emit_node

-- Appends chunk c (a string or parts) with the values vals.
local function emit_parts(c, vals, cx, buf, n)
  if type(c) == "string" then
    n = n + 1
    buf[n] = c
    return n
  end
  for i = 1, #c do
    local p = c[i]
    if type(p) == "string" then
      n = n + 1
      buf[n] = p
    elseif p > 0 then
      local v = vals[p]
      if type(v) == "string" then
        n = n + 1
        buf[n] = v
      else
        n = emit_node(v, cx, buf, n)
      end
    else
      local v = vals[-p]
      n = n + 1
      buf[n] = type(v) == "string" and v or tostring(v)
    end
  end
  return n
end

-- Appends a plan of template source filled with the values of one result.
fill_parts_into = function(plan, vals, cx, buf, n)
  local chunks, holes = plan.chunks, plan.holes
  local resolve = cx.resolve
  n = emit_parts(chunks[1], vals, cx, buf, n)
  for i = 1, #holes do
    local h = holes[i]
    local kind = h.kind
    if kind == "attr" then
      local v
      if h.is_class then
        v = class_value(h, resolve, nil, vals)
        if v == nil then v = class_value(h, resolve, true, vals) end
      else
        v = attr_value(h, resolve, vals)
      end
      if v then
        buf[n + 1], buf[n + 2], buf[n + 3] = h.open, v, '"'
        n = n + 3
      end
    elseif kind == "text" then
      local v = hole_text(resolve(h.slot, vals))
      if v then
        n = n + 1
        buf[n] = v
      end
    else -- boundary
      local status = resolve(h.slot, vals)
      local sub = status and h.templates[status]
      if sub then
        n = emit_parts(h.head, vals, cx, buf, n)
        n = fill_parts_into(sub, vals, cx, buf, n)
        n = emit_parts(h.tail, vals, cx, buf, n)
      else
        n = fill_parts_into(h.fallback, vals, cx, buf, n)
      end
    end
    n = emit_parts(chunks[i + 1], vals, cx, buf, n)
  end
  return n
end

-- Appends a node: a template result, html.raw (its plan from cx.raw_plan),
-- or a list of nodes and strings.
emit_node = function(v, cx, buf, n)
  local t = rawget(v, 0)
  if t then return fill_parts_into(t.plans[cx.cfg], v, cx, buf, n) end
  local h = rawget(v, "html")
  if h then return fill_into(plan_for(h, cx.cfg), cx.resolve, buf, n) end
  for i = 1, #v do
    local e = v[i]
    if type(e) == "string" then
      n = n + 1
      buf[n] = e
    else
      n = emit_node(e, cx, buf, n)
    end
  end
  return n
end

--- Fills a node (see emit_node) whose plans the caller has checked: cx =
-- { cfg = (from _M.config), resolve = fn(slot, vals) }; size: a guess of
-- the number of pieces; buf: a buffer to fill (else a new one). Not joined
-- (as fill_pieces): returns buf, n with the HTML in buf[first + 1 .. n].
function _M.fill_node_pieces(node, cx, size, first, buf)
  if buf == nil then buf = tnew((size or 0) + first + 2, 0) end
  return buf, emit_node(node, cx, buf, first)
end

_M._compile_raw = compile
_M._get_config = get_config
return _M
