--- Whole documents: the app's layout (or the default one) around a rendered
-- page, loading the browser client (protocol.md "The served document").
local render = require("async.ssr.render")

local tostring = tostring
local escape = require("async.html.escape")
local errors = require("async.kernel.errors")
local escape_attr, escape_text = escape.attr, escape.text

local _M = {}

-- ===== documents =====

local function default_layout(page)
  return '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">' ..
    '<meta name="viewport" content="width=device-width, initial-scale=1">' ..
    "<title>" .. escape_text(page.title or "") .. "</title>" ..
    '<script src="' .. escape_attr(page.client or "/__async/client.js") .. '" defer></script>' ..
    (page.head or "") .. "</head><body><main async:container>" .. page.body .. "</main></body></html>"
end
_M.default_layout = default_layout

function _M.layout_parts(rt, title)
  local layout = rt.opts.layout or default_layout
  local marker = "\0ASYNC_BODY\0"
  local whole = tostring(layout({ title = title or rt.opts.title, body = marker, client = rt.opts.client_url,
    runtime = rt }))
  local i = whole:find(marker, 1, true)
  if not i then errors.raise("invalid-layout", "layout must insert page.body") end
  return whole:sub(1, i - 1), whole:sub(i + #marker)
end

--- Renders `url` as a whole document in the app's layout.
function _M.render_document(self, url, opts)
  local r = render.render(self, url, opts)
  local head, tail = _M.layout_parts(self, r.title)
  r.html = head .. r.html .. tail
  return r
end

return _M
