--- Content types by file extension, and which of them are worth gzipping.
local match, lower = string.match, string.lower

local _M = {}

local U = "; charset=utf-8"

-- extension -> { content type, compressible }
local TYPES = {
  html = { "text/html" .. U, true }, htm = { "text/html" .. U, true },
  css = { "text/css" .. U, true },
  js = { "text/javascript" .. U, true }, mjs = { "text/javascript" .. U, true },
  json = { "application/json" .. U, true }, map = { "application/json" .. U, true },
  webmanifest = { "application/manifest+json" .. U, true },
  txt = { "text/plain" .. U, true }, md = { "text/markdown" .. U, true }, csv = { "text/csv" .. U, true },
  xml = { "application/xml" .. U, true }, svg = { "image/svg+xml" .. U, true },
  wasm = { "application/wasm", true },
  png = { "image/png", false }, jpg = { "image/jpeg", false }, jpeg = { "image/jpeg", false },
  gif = { "image/gif", false }, webp = { "image/webp", false }, avif = { "image/avif", false },
  ico = { "image/x-icon", true },
  woff = { "font/woff", false }, woff2 = { "font/woff2", false }, ttf = { "font/ttf", true },
  otf = { "font/otf", true },
  pdf = { "application/pdf", false }, zip = { "application/zip", false }, gz = { "application/gzip", false },
  mp3 = { "audio/mpeg", false }, ogg = { "audio/ogg", false }, wav = { "audio/wav", false },
  mp4 = { "video/mp4", false }, webm = { "video/webm", false },
}
local DEFAULT = { "application/octet-stream", false }

--- content type, compressible of file name `name`.
function _M.of(name)
  local ext = match(name, "%.([%w]+)$")
  local t = ext and TYPES[lower(ext)] or DEFAULT
  return t[1], t[2]
end

_M.TYPES = TYPES

return _M
