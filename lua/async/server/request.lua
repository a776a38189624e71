--- Reading requests (docs/endpoints.md): percent-decoding, path segments,
-- media types, Accept and Accept-Encoding, conditional headers, cookies and
-- the same-origin rule. Pure functions over the transport's request table
-- (`req.headers` has lowercase names, repeats joined with ", "); nothing
-- here allocates per call beyond its result.
local type, tonumber, tostring, pairs, ipairs = type, tonumber, tostring, pairs, ipairs
local floor = math.floor
local find, sub, lower, gsub, gmatch, match, char =
  string.find, string.sub, string.lower, string.gsub, string.gmatch, string.match, string.char

local _M = {}

-- ===== percent-decoding =====

local function hex_byte(h) return char(tonumber(h, 16)) end

--- Decodes %XX escapes of `s`. Returns the decoded string, or nil and a
-- reason when an escape is malformed ("%zz", a lone "%"). `+` stays `+`
-- (paths are not form data).
function _M.decode(s)
  if not find(s, "%", 1, true) then return s end
  if find(s, "%%%X") or find(s, "%%%x%X") or find(s, "%%%x?$") then
    return nil, "malformed percent-encoding"
  end
  return (gsub(s, "%%(%x%x)", hex_byte))
end

--- The segments of a decoded URL path, or nil and a reason: a path must
-- start with "/", decode cleanly and hold no NUL, no control byte and no "."
-- or ".." segment. Empty segments ("//") are dropped.
function _M.segments(raw)
  if type(raw) ~= "string" or sub(raw, 1, 1) ~= "/" then return nil, "the path must start with /" end
  local segs = {}
  for seg in gmatch(raw, "[^/]+") do
    local d, why = _M.decode(seg)
    if not d then return nil, why end
    if find(d, "[%z\1-\31\127]") then return nil, "a control byte in the path" end
    if d == "." or d == ".." then return nil, 'a "." or ".." segment in the path' end
    if find(d, "/", 1, true) then return nil, "an encoded / in a path segment" end
    segs[#segs + 1] = d
  end
  return segs
end

-- ===== header values =====

--- The media type of a Content-Type value, lowercased, without parameters.
function _M.media_type(v)
  if type(v) ~= "string" then return nil end
  return lower(match(v, "^%s*([^;%s]*)") or "")
end

--- Is `v` a JSON content type (application/json or any */*+json)?
function _M.is_json_type(v)
  local t = _M.media_type(v)
  if t == nil then return false end
  return t == "application/json" or (find(t, "^[%w!#$&^_.+-]+/[%w!#$&^_.+-]+%+json$") ~= nil)
end

-- the q value of one list element's parameters ("; q=0.5"): 1 when absent
local function qvalue(params)
  local q = match(params, ";%s*[qQ]%s*=%s*([%d.]+)")
  return q and tonumber(q) or 1
end

--- `{ [token] = q }` of a comma-separated list header (Accept,
-- Accept-Encoding), tokens lowercased.
function _M.qlist(v)
  local out = {}
  if type(v) ~= "string" then return out end
  for item in gmatch(v, "[^,]+") do
    local token, params = match(item, "^%s*([^;%s]+)%s*(.*)$")
    if token then
      token = lower(token)
      local q = qvalue(params)
      if out[token] == nil or q > out[token] then out[token] = q end
    end
  end
  return out
end

--- Does the request ask for a route partial (Accept names
-- application/x-async-partial with q > 0)?
function _M.wants_partial(req)
  local q = _M.qlist(req.headers["accept"])["application/x-async-partial"]
  return q ~= nil and q > 0
end

--- Does Accept-Encoding allow gzip? (`gzip` or `x-gzip` with q > 0, or `*`
-- with q > 0 when gzip is not named.)
function _M.accepts_gzip(req)
  local l = _M.qlist(req.headers["accept-encoding"])
  local q = l["gzip"] or l["x-gzip"]
  if q == nil then q = l["*"] end
  return q ~= nil and q > 0
end

--- Does If-None-Match match one of the entity tags given (weak
-- comparison, as RFC 9110 asks for GET)? `*` matches any.
function _M.none_match(req, ...)
  local v = req.headers["if-none-match"]
  if type(v) ~= "string" then return false end
  local tags = { ... }
  for item in gmatch(v, "[^,]+") do
    local t = match(item, "^%s*(.-)%s*$")
    if t == "*" then return true end
    t = gsub(t, "^W/", "")
    for _, tag in ipairs(tags) do
      if t == gsub(tag, "^W/", "") then return true end
    end
  end
  return false
end

-- ===== HTTP dates =====

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10,
                 Nov = 11, Dec = 12 }

-- days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil)
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Seconds since the epoch of an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37
-- GMT"), or nil for anything else (the obsolete formats are not read).
function _M.parse_date(v)
  if type(v) ~= "string" then return nil end
  local d, mon, y, hh, mm, ss = match(v, "^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d or not MONTHS[mon] then return nil end
  return days_from_civil(tonumber(y), MONTHS[mon], tonumber(d)) * 86400 + tonumber(hh) * 3600 +
    tonumber(mm) * 60 + tonumber(ss)
end

--- The IMF-fixdate of `t` (seconds since the epoch).
function _M.format_date(t)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
end

-- ===== cookies =====

--- `{ name = value }` of the Cookie header (first occurrence wins; values
-- are not decoded).
function _M.cookies(req)
  local out = {}
  local v = req.headers["cookie"]
  if type(v) ~= "string" then return out end
  for pair in gmatch(v, "[^;]+") do
    local k, val = match(pair, "^%s*([^=%s]+)%s*=%s*(.-)%s*$")
    if k and out[k] == nil then
      val = match(val, '^"(.*)"$') or val
      out[k] = val
    end
  end
  return out
end

-- ===== origins =====

local DEFAULT_PORT = { http = "80", https = "443" }

-- "scheme", "host", "port" of an origin ("https://a.example:8443"), lowercased
local function split_origin(o)
  local scheme, host, port = match(lower(o), "^(%a[%w+.-]*)://(%[[%x:.]+%])(:?%d*)$")
  if not scheme then scheme, host, port = match(lower(o), "^(%a[%w+.-]*)://([^/:?#@]+)(:?%d*)$") end
  if not scheme then return nil end
  port = sub(port, 2)
  if port == "" then port = DEFAULT_PORT[scheme] end
  return scheme, host, port
end

-- "host", "port" of a Host header value; the port empty when absent
local function split_host(h)
  h = lower(match(h, "^%s*(.-)%s*$"))
  local host, port = match(h, "^(%[[%x:.]+%])(:?%d*)$")
  if not host then host, port = match(h, "^([^/:?#@%s]+)(:?%d*)$") end
  if not host then return nil end
  return host, sub(port, 2)
end

--- Is the request same-origin? True when it has no Origin header; false
-- for `Origin: null`. Otherwise its host and port must be the request's
-- (Host, or X-Forwarded-Host with `trust_proxy`; a Host without a port takes
-- the Origin scheme's default port), or the origin must be listed in
-- `origins` (exact strings such as "https://app.example"). With
-- `trust_proxy`, X-Forwarded-Proto must also equal the Origin's scheme.
-- Returns ok, reason.
function _M.same_origin(req, opts)
  local origin = req.headers["origin"]
  if origin == nil then return true end
  if type(origin) ~= "string" or find(origin, ",", 1, true) then return false, "more than one Origin" end
  origin = match(origin, "^%s*(.-)%s*$")
  if opts and opts.origins then
    for _, o in ipairs(opts.origins) do if lower(o) == lower(origin) then return true end end
  end
  if origin == "null" then return false, "Origin: null" end
  local scheme, host, port = split_origin(origin)
  if not scheme then return false, "malformed Origin" end
  local trust = opts and opts.trust_proxy
  local hv = trust and req.headers["x-forwarded-host"] or req.headers["host"]
  if type(hv) ~= "string" then return false, "no Host header to compare the Origin with" end
  hv = match(hv, "^[^,]*")   -- the first proxy's value
  local rhost, rport = split_host(hv)
  if not rhost then return false, "malformed Host" end
  if trust then
    local proto = req.headers["x-forwarded-proto"]
    if type(proto) == "string" and lower(match(proto, "^%s*([^,%s]*)")) ~= scheme then
      return false, "the Origin's scheme is not X-Forwarded-Proto"
    end
  end
  if rport == "" then rport = DEFAULT_PORT[scheme] end
  if rhost == host and rport == port then return true end
  return false, "cross-origin request from " .. origin
end

--- Approximate size of the header block (names, values, ": " and CRLF).
function _M.header_bytes(req)
  local n = #(req.method or "") + #(req.target or "") + 12
  for k, v in pairs(req.headers) do n = n + #k + #tostring(v) + 4 end
  return n
end

return _M
