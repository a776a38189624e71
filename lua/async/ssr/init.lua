--- The ssr layer: what a runtime delegates rendering to (the hub is given
-- this table by require("async")).
local render = require("async.ssr.render")
local document = require("async.ssr.document")
local stream = require("async.ssr.stream")
local snapshot = require("async.ssr.snapshot")

return {
  render = render.render,
  render_document = document.render_document,
  render_stream = stream.render_stream,
  read_snapshot = snapshot.read_snapshot,
  run_partial = render.run_partial,
  default_layout = document.default_layout,
}
