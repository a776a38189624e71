// A page script that runs before /__async/client.js (not deferred): it
// queues its declarations; the client applies them when it starts.
(window.Async = window.Async || []).push({
  handler: {
    bump(ctx) {
      ctx.signals.update("count", (c) => c + 100);
    }
  }
});
