--- async.html.escape: the one place that escapes values for their HTML
-- context (protocol.md "Safety rules", docs/rendering.md "Escaping"). The
-- templates (async.html.template) and the scanner's bindings
-- (async.html.scanner) both escape through it, so a value is treated the
-- same whichever way it reaches the page.
--
--   text(s)        HTML text: & < > " ' escaped (also right for RCDATA:
--                  <textarea>, <title>)
--   attr(s)        a quoted attribute value: the same five characters
--   url(s)         a URL attribute value (href, src, action, formaction,
--                  xlink:href, poster, cite, data, background, ping,
--                  manifest, codebase): http, https, mailto, tel and
--                  relative URLs pass; any other scheme (javascript:,
--                  data:, vbscript:, ...) becomes UNSAFE_URL. Not escaped:
--                  pass the result through attr().
--   srcset(s)      a srcset value: every candidate's URL checked as url();
--                  one unsafe candidate makes the whole value UNSAFE_URL
--   json(v)        a value as JSON inside <script type="application/json">:
--                  every "<" written \u003c (so no "</script>" or "<!--"
--                  can appear), U+2028/2029 escaped
--   url_attribute(name)   true for the attribute names url() guards
--
-- What has no safe escaping is refused by the template compiler instead:
-- `{{ }}` in a <script> that is not JSON, and in <style> (see
-- docs/rendering.md).
local json = require("async.app.json")
local errors = require("async.kernel.errors")

local type, tonumber = type, tonumber
local find, gsub, match, lower, char = string.find, string.gsub, string.match, string.lower, string.char
local floor = math.floor

local _M = {}

-- ===== HTML TEXT AND ATTRIBUTES =====

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

-- True when s has one of & < > " ' (plain finds: LuaJIT compiles them, ~14x
-- faster than one pattern find on short strings).
local function has_special(s)
  return find(s, "&", 1, true) or find(s, "<", 1, true) or find(s, ">", 1, true)
    or find(s, '"', 1, true) or find(s, "'", 1, true)
end

--- HTML text content: & < > escaped, and " ' too, so text stays inert even
-- where a browser would disagree with us about the context.
local function text(s)
  if not has_special(s) then return s end
  return (gsub(s, "[&<>\"']", ESC))
end
_M.text = text

--- A double- or single-quoted attribute value: & < > " ' escaped.
_M.attr = text

--- The pattern of the characters text() and attr() escape.
_M.SPECIAL = "[&<>\"']"

-- ===== CHARACTER REFERENCES (to check static URL text as a browser reads it) =====

local ENTITIES = { amp = "&", lt = "<", gt = ">", quot = '"', apos = "'", nbsp = "\194\160", colon = ":",
                   tab = "\t", newline = "\n" }

local function utf8_char(c)
  if c < 0x80 then return char(c) end
  if c < 0x800 then return char(0xC0 + floor(c / 64), 0x80 + c % 64) end
  if c < 0x10000 then
    return char(0xE0 + floor(c / 4096), 0x80 + floor(c / 64) % 64, 0x80 + c % 64)
  end
  if c < 0x110000 then
    return char(0xF0 + floor(c / 262144), 0x80 + floor(c / 4096) % 64, 0x80 + floor(c / 64) % 64,
      0x80 + c % 64)
  end
  return "\239\191\189"
end

--- Decodes the basic character references (`&amp;`, `&#58;`, `&#x3a;`,
-- `&colon;`, ...); unknown ones stay as written.
local function decode(s)
  if not find(s, "&", 1, true) then return s end
  return (gsub(s, "&(#?)([xX]?)(%w+);?", function(hash, x, body)
    if hash == "" then return ENTITIES[body] end
    local n = tonumber(body, x ~= "" and 16 or 10)
    if not n then return nil end
    return utf8_char(n)
  end))
end
_M.decode = decode

-- ===== URLS =====

_M.UNSAFE_URL = "about:invalid#async-unsafe-url"

local URL_ATTRS = {
  href = true, src = true, action = true, formaction = true, ["xlink:href"] = true, poster = true,
  cite = true, data = true, background = true, ping = true, manifest = true, codebase = true,
}
_M.URL_ATTRS = URL_ATTRS

local SAFE_SCHEMES = { http = true, https = true, mailto = true, tel = true }
_M.SAFE_SCHEMES = SAFE_SCHEMES

--- Is `name` (lower case) an attribute whose value is a URL? "srcset"
-- answers "srcset".
function _M.url_attribute(name)
  if URL_ATTRS[name] then return true end
  if name == "srcset" or name == "imagesrcset" then return "srcset" end
  return false
end

--- Is s a URL with a safe scheme, or no scheme (relative)? Browsers drop
-- ASCII whitespace and control characters inside a scheme ("java\tscript:"),
-- so they are dropped before the scheme is read.
local function safe(s)
  if not find(s, ":", 1, true) then return true end -- no scheme
  local u = gsub(s, "[%z\1-\32]", "")
  local scheme = match(u, "^([%a][%w+.%-]*):")
  if not scheme then return true end   -- ":" after "/", "?" or "#": relative
  return SAFE_SCHEMES[lower(scheme)] == true
end
_M.is_safe_url = safe

--- s when its scheme is safe (or it has none), else UNSAFE_URL.
function _M.url(s)
  if safe(s) then return s end
  return _M.UNSAFE_URL
end

--- A srcset value: "url [descriptor], url [descriptor], ..."; every URL
-- checked. s when all are safe, else UNSAFE_URL.
function _M.srcset(s)
  for candidate in (s .. ","):gmatch("([^,]*),") do
    local u = match(candidate, "^[%s]*(%S*)")
    if u and u ~= "" and not safe(u) then return _M.UNSAFE_URL end
  end
  return s
end

--- The value of URL attribute `name` made safe (not attribute-escaped).
function _M.url_for(name, s)
  local kind = _M.url_attribute(name)
  if kind == "srcset" then return _M.srcset(s) end
  if kind then return _M.url(s) end
  return s
end

-- ===== JSON IN <script> =====

--- v as JSON safe inside <script type="application/json">: "<" as \u003c,
-- U+2028/2029 escaped. nil is `null`. Raises on values JSON cannot hold.
function _M.json(v)
  if type(v) == "string" or type(v) == "table" or type(v) == "number" or type(v) == "boolean" or v == nil
     or v == json.null then
    return json.encode(v, { script = true })
  end
  errors.raise("json-encode", "cannot encode a " .. type(v) .. " as JSON")
end

--- Is a <script> of this type attribute value a JSON data block (not run)?
function _M.json_script_type(t)
  if type(t) ~= "string" then return false end
  t = lower(match(t, "^%s*(.-)%s*$"))
  return t == "application/json" or match(t, "^application/[%w.-]+%+json$") ~= nil
end

return _M
