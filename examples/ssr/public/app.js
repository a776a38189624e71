// The browser handler of examples/ssr: on:attach="showSnapshot" prints the
// activation snapshot the server wrote into the page (the JSON the client
// activated from), pretty-printed.
(window.Async = window.Async || []).push({
  handler: {
    showSnapshot(ctx) {
      const script = document.querySelector('script[type="application/json"][async\\:snapshot]');
      ctx.el.textContent = script ? JSON.stringify(JSON.parse(script.textContent), null, 2) : "(no snapshot)";
    },
  },
});
