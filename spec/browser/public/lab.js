// The lab page's own script (spec/browser/apps/lab.lua): browser handlers
// registered from JavaScript, loaded after /__async/client.js.
Async.use({
  handler: {
    // adds data-step (default 1) to count, in the browser only
    bump(ctx) {
      ctx.signals.update("count", (c) => c + Number(ctx.el.dataset.step || 1));
    },
    // on:attach of the swapped panel: marks it and returns its cleanup
    panelAttach(ctx) {
      window.labAttached = (window.labAttached || 0) + 1;
      ctx.el.dataset.attached = "yes";
      return () => { window.labDetached = (window.labDetached || 0) + 1; };
    }
  }
});
