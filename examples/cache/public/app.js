// The browser handler of examples/cache: reads the tip the server put in
// the browser cache (it came with the page's snapshot); no request.
(window.Async = window.Async || []).push({
  handler: {
    readTip(ctx) {
      ctx.signals.set("tip", ctx.cache.get("tip:today") || "(not in the browser cache)");
    },
  },
});
