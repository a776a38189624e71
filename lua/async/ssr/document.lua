--- Whole documents: the app's layout (or the default one) around a rendered
-- page, loading the browser client (protocol.md "The served document").
local render = require("async.ssr.render")

local tostring, type = tostring, type
local escape = require("async.html.escape")
local errors = require("async.kernel.errors")
local escape_attr, escape_text = escape.attr, escape.text

local _M = {}

-- ===== documents =====

-- How a page loads the client (docs/client.md "Streaming and defer"):
-- `defer` on a whole page (protocol.md); `async` on a streamed one
-- (page.stream), since a deferred script runs only once the whole document
-- has been parsed, so no fill would show before the stream's end.
function _M.client_tag(page)
  return '<script src="' .. escape_attr(page.client or "/__async/client.js") .. '" ' ..
    (page.stream and "async" or "defer") .. "></script>"
end

-- The default layout. page.head (the runtime's `head` option: trusted HTML,
-- or a function(page) returning it) goes into <head> after the client's
-- script: stylesheets, page scripts.
local function default_layout(page)
  local head = page.head
  if type(head) == "function" then head = head(page) end
  return '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">' ..
    '<meta name="viewport" content="width=device-width, initial-scale=1">' ..
    "<title>" .. escape_text(page.title or "") .. "</title>" .. _M.client_tag(page) ..
    tostring(head or "") .. "</head><body><main async:container>" .. page.body .. "</main></body></html>"
end
_M.default_layout = default_layout

--- The layout's document around a marker, split there. `stream`: the page
-- streams (pending boundaries at shell time), given to the layout as
-- page.stream.
function _M.layout_parts(rt, title, stream)
  local layout = rt.opts.layout or default_layout
  local marker = "\0ASYNC_BODY\0"
  local whole = tostring(layout({ title = title or rt.opts.title, body = marker, client = rt.opts.client_url,
    head = rt.opts.head, stream = stream or nil, runtime = rt }))
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
