// Framework adapters for the JS peers, shaped like the ones of
// milomg/js-reactivity-benchmark. Effects are wrapped so that a value returned
// by the benchmark's effect function is never taken for a cleanup function
// (alien-signals 3 and asyncrt both treat a returned function as a cleanup).
import * as alien from "alien-signals";
import * as preact from "@preact/signals-core";

let alienScope = null;
export const alienSignals = {
  name: "alien-signals",
  signal: (initial) => {
    const s = alien.signal(initial);
    return { read: () => s(), write: (v) => s(v) };
  },
  computed: (fn) => {
    const c = alien.computed(fn);
    return { read: () => c() };
  },
  effect: (fn) => {
    alien.effect(() => {
      fn();
    });
  },
  withBatch: (fn) => {
    alien.startBatch();
    try {
      fn();
    } finally {
      alien.endBatch();
    }
  },
  withBuild: (fn) => {
    let out;
    const dispose = alien.effectScope(() => {
      out = fn();
    });
    const prev = alienScope;
    alienScope = prev ? () => (prev(), dispose()) : dispose;
    return out;
  },
  cleanup: () => {
    if (alienScope) alienScope();
    alienScope = null;
  },
};

let preactCleanups = [];
export const preactSignals = {
  name: "preact",
  signal: (initial) => {
    const s = preact.signal(initial);
    return { read: () => s.value, write: (v) => (s.value = v) };
  },
  computed: (fn) => {
    const c = preact.computed(fn);
    return { read: () => c.value };
  },
  effect: (fn) => {
    preactCleanups.push(
      preact.effect(() => {
        fn();
      }),
    );
  },
  withBatch: (fn) => preact.batch(fn),
  withBuild: (fn) => fn(),
  cleanup: () => {
    for (const c of preactCleanups) c();
    preactCleanups = [];
  },
};

export const frameworks = { alien: alienSignals, preact: preactSignals };
