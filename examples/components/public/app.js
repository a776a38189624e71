// Browser handlers for the lifecycle pseudo-events of examples/components:
// on:attach="attached" runs once the toggle is in the page, on:visible="seen"
// the first time it scrolls into view. No inline script: this file is
// loaded by the page's layout (CSP script-src 'self').
(window.Async = window.Async || []).push({
  handler: {
    attached(ctx) {
      ctx.el.dataset.attached = "true";
      log(ctx, `attach ${ctx.el.dataset.key}`);
      // returned: runs when the element leaves the page (a swap)
      return () => log(ctx, `destroy ${ctx.el.dataset.key}`);
    },
    seen(ctx) {
      ctx.el.dataset.visible = "true";
      log(ctx, `visible ${ctx.el.dataset.key}`);
    },
  },
});

// Appends a line to the `lifecycle` signal the page shows.
function log(ctx, line) {
  ctx.signals.update("lifecycle", (text) => (text ? `${text}\n${line}` : line));
}
