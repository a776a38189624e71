// The benchmark shapes of milomg/js-reactivity-benchmark, for the JS peers.
// bench/cases.lua is the same list, case by case, for asyncrt; keep the two in
// step (names, sizes, iteration counts, asserts, timing protocol).
//
// A framework adapter (frameworks.mjs) gives:
//   name, signal(v) -> {read(), write(v)}, computed(fn) -> {read()},
//   effect(fn), withBatch(fn), withBuild(fn) -> fn(), cleanup()

const now = () => performance.now();
const gc2 = () => {
  if (globalThis.gc) {
    globalThis.gc();
    globalThis.gc();
  }
};
const nextTick = () => new Promise((resolve) => setTimeout(resolve, 0));

// ---------------------------------------------------------------- asserts
let failures = [];
export function takeFailures() {
  const f = failures;
  failures = [];
  return f;
}
function check(cond, msg) {
  if (!cond) failures.push(msg);
}

// ------------------------------------------------------------ timing helpers
async function fastest(times, fn) {
  let best = Infinity;
  let result;
  for (let i = 0; i < times; i++) {
    await nextTick();
    const t0 = now();
    const r = fn();
    const t = now() - t0;
    if (t < best) {
      best = t;
      result = r;
    }
  }
  return { time: best, result };
}

// --------------------------------------------------------------- seeded PRNG
// xmur3a string hash feeding sfc32, seed "seed" (as the original's pseudoRandom).
export function pseudoRandom(seed = "seed") {
  let h = 2166136261 >>> 0;
  for (let i = 0; i < seed.length; i++) {
    let k = Math.imul(seed.charCodeAt(i), 3432918353);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 461845907);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 3864292196) | 0;
  }
  h ^= seed.length;
  const next = () => {
    h ^= h >>> 16;
    h = Math.imul(h, 2246822507);
    h ^= h >>> 13;
    h = Math.imul(h, 3266489909);
    h ^= h >>> 16;
    return h >>> 0;
  };
  let a = next();
  let b = next();
  let c = next();
  let d = next();
  return () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

// ------------------------------------------------------------------- kairo
function busy() {
  let a = 0;
  for (let i = 0; i < 100; i++) a++;
  return a;
}

function avoidablePropagation(fw) {
  const head = fw.signal(0);
  const c1 = fw.computed(() => head.read());
  const c2 = fw.computed(() => (c1.read(), 0));
  const c3 = fw.computed(() => (busy(), c2.read() + 1));
  const c4 = fw.computed(() => c3.read() + 2);
  const c5 = fw.computed(() => c4.read() + 3);
  fw.effect(() => {
    c5.read();
    busy();
  });
  return () => {
    fw.withBatch(() => head.write(1));
    check(c5.read() === 6, "avoidable: c5 != 6");
    for (let i = 0; i < 1000; i++) {
      fw.withBatch(() => head.write(i));
      check(c5.read() === 6, "avoidable: c5 != 6");
    }
  };
}

function broadPropagation(fw) {
  const head = fw.signal(0);
  let last = head;
  const counter = { count: 0 };
  for (let i = 0; i < 50; i++) {
    const current = fw.computed(() => head.read() + i);
    const current2 = fw.computed(() => current.read() + 1);
    fw.effect(() => {
      current2.read();
      counter.count++;
    });
    last = current2;
  }
  return () => {
    fw.withBatch(() => head.write(1));
    counter.count = 0;
    for (let i = 0; i < 50; i++) {
      fw.withBatch(() => head.write(i));
      check(last.read() === i + 50, "broad: last != i + 50");
    }
    check(counter.count === 50 * 50, "broad: effect count " + counter.count);
  };
}

function deepPropagation(fw) {
  const len = 50;
  const head = fw.signal(0);
  let current = head;
  for (let i = 0; i < len; i++) {
    const c = current;
    current = fw.computed(() => c.read() + 1);
  }
  const counter = { count: 0 };
  const tail = current;
  fw.effect(() => {
    tail.read();
    counter.count++;
  });
  const iter = 50;
  return () => {
    fw.withBatch(() => head.write(1));
    counter.count = 0;
    for (let i = 0; i < iter; i++) {
      fw.withBatch(() => head.write(i));
      check(tail.read() === len + i, "deep: tail != len + i");
    }
    check(counter.count === iter, "deep: effect count " + counter.count);
  };
}

function diamond(fw) {
  const width = 5;
  const head = fw.signal(0);
  const current = [];
  for (let i = 0; i < width; i++) {
    current.push(fw.computed(() => head.read() + 1));
  }
  const sum = fw.computed(() =>
    current.map((x) => x.read()).reduce((a, b) => a + b, 0),
  );
  const counter = { count: 0 };
  fw.effect(() => {
    sum.read();
    counter.count++;
  });
  return () => {
    fw.withBatch(() => head.write(1));
    check(sum.read() === 2 * width, "diamond: sum != 2 * width");
    counter.count = 0;
    for (let i = 0; i < 500; i++) {
      fw.withBatch(() => head.write(i));
      check(sum.read() === (i + 1) * width, "diamond: sum");
    }
    check(counter.count === 500, "diamond: effect count " + counter.count);
  };
}

function mux(fw) {
  const heads = new Array(100).fill(null).map(() => fw.signal(0));
  const m = fw.computed(() =>
    Object.fromEntries(heads.map((h) => h.read()).entries()),
  );
  const splited = heads
    .map((_, index) => fw.computed(() => m.read()[index]))
    .map((x) => fw.computed(() => x.read() + 1));
  splited.forEach((x) => {
    fw.effect(() => x.read());
  });
  return () => {
    for (let i = 0; i < 10; i++) {
      fw.withBatch(() => heads[i].write(i));
      check(splited[i].read() === i + 1, "mux: splited != i + 1");
    }
    for (let i = 0; i < 10; i++) {
      fw.withBatch(() => heads[i].write(i * 2));
      check(splited[i].read() === i * 2 + 1, "mux: splited != i * 2 + 1");
    }
  };
}

function repeatedObservers(fw) {
  const size = 30;
  const head = fw.signal(0);
  const current = fw.computed(() => {
    let result = 0;
    for (let i = 0; i < size; i++) result += head.read();
    return result;
  });
  const counter = { count: 0 };
  fw.effect(() => {
    current.read();
    counter.count++;
  });
  return () => {
    fw.withBatch(() => head.write(1));
    check(current.read() === size, "repeated: current != size");
    counter.count = 0;
    for (let i = 0; i < 100; i++) {
      fw.withBatch(() => head.write(i));
      check(current.read() === i * size, "repeated: current != i * size");
    }
    check(counter.count === 100, "repeated: effect count " + counter.count);
  };
}

function triangle(fw) {
  const width = 10;
  const head = fw.signal(0);
  let current = head;
  const list = [];
  for (let i = 0; i < width; i++) {
    const c = current;
    list.push(current);
    current = fw.computed(() => c.read() + 1);
  }
  const sum = fw.computed(() =>
    list.map((x) => x.read()).reduce((a, b) => a + b, 0),
  );
  const counter = { count: 0 };
  fw.effect(() => {
    sum.read();
    counter.count++;
  });
  return () => {
    let constant = 0;
    for (let i = 1; i <= width; i++) constant += i;
    fw.withBatch(() => head.write(1));
    check(sum.read() === constant, "triangle: sum != constant");
    counter.count = 0;
    for (let i = 0; i < 100; i++) {
      fw.withBatch(() => head.write(i));
      check(sum.read() === constant - width + i * width, "triangle: sum");
    }
    check(counter.count === 100, "triangle: effect count " + counter.count);
  };
}

function unstable(fw) {
  const head = fw.signal(0);
  const double = fw.computed(() => head.read() * 2);
  const inverse = fw.computed(() => -head.read());
  const current = fw.computed(() => {
    let result = 0;
    for (let i = 0; i < 20; i++) {
      result += head.read() % 2 ? double.read() : inverse.read();
    }
    return result;
  });
  const counter = { count: 0 };
  fw.effect(() => {
    current.read();
    counter.count++;
  });
  return () => {
    fw.withBatch(() => head.write(1));
    check(current.read() === 40, "unstable: current != 40");
    counter.count = 0;
    for (let i = 0; i < 100; i++) {
      fw.withBatch(() => head.write(i));
    }
    check(counter.count === 100, "unstable: effect count " + counter.count);
  };
}

function kairoCase(name, make) {
  return {
    name,
    group: "kairo",
    run: async (fw) => {
      const iter = fw.withBuild(() => make(fw));
      iter();
      iter();
      await nextTick();
      iter();
      const { time } = await fastest(5, () => {
        for (let i = 0; i < 1000; i++) iter();
      });
      fw.cleanup();
      gc2();
      return time;
    },
  };
}

// ----------------------------------------------------------------- molBench
function fib(n) {
  if (n < 2) return 1;
  return fib(n - 1) + fib(n - 2);
}
function hard(n) {
  return n + fib(16);
}
const numbers = [0, 1, 2, 3, 4];

const molBench = {
  name: "molBench",
  group: "mol",
  run: async (fw) => {
    const res = [];
    const iter = fw.withBuild(() => {
      const A = fw.signal(0);
      const B = fw.signal(0);
      const C = fw.computed(() => (A.read() % 2) + (B.read() % 2));
      const D = fw.computed(() =>
        numbers.map((i) => ({ x: i + (A.read() % 2) - (B.read() % 2) })),
      );
      const E = fw.computed(() => hard(C.read() + A.read() + D.read()[0].x));
      const F = fw.computed(() => hard(D.read()[2].x || B.read()));
      const G = fw.computed(
        () => C.read() + (C.read() || E.read() % 2) + D.read()[4].x + F.read(),
      );
      fw.effect(() => res.push(hard(G.read())));
      fw.effect(() => res.push(G.read()));
      fw.effect(() => res.push(hard(F.read())));
      return (i) => {
        res.length = 0;
        fw.withBatch(() => {
          B.write(1);
          A.write(1 + i * 2);
        });
        fw.withBatch(() => {
          A.write(2 + i * 2);
          B.write(2);
        });
      };
    });
    iter(0);
    iter(1);
    await nextTick();
    iter(2);
    const { time } = await fastest(5, () => {
      for (let i = 0; i < 1e4; i++) iter(i);
    });
    fw.cleanup();
    gc2();
    return time;
  },
};

// ------------------------------------------------------------------- sBench
const COUNT = 1e6;

function sbenchCases() {
  const cases = [];
  const empty = () => {};
  const add = (name, fnFactory, count, scount) =>
    cases.push({
      name,
      group: "sbench",
      run: async (fw) => runS(fw, fnFactory(fw), count, scount),
    });

  async function runS(fw, fn, n, scount) {
    let start = 0;
    let sources;
    gc2();
    for (let i = 0; i < 3; i++) {
      const warm = fw.withBuild(() => {
        sources = [];
        createSignalsOf(fw, scount, sources);
        return fn(n / 100, sources);
      });
      fw.withBatch(warm);
    }
    sources = null;
    fw.cleanup();
    await nextTick();
    const update = fw.withBuild(() => {
      sources = [];
      createSignalsOf(fw, scount, sources);
      for (let i = 0; i < scount; i++) {
        sources[i].read();
        sources[i].read();
        sources[i].read();
      }
      gc2();
      start = now();
      return fn(n, sources);
    });
    fw.withBatch(update);
    sources = null;
    fw.cleanup();
    const end = now();
    gc2();
    return end - start;
  }

  function createSignalsOf(fw, n, sources) {
    for (let i = 0; i < n; i++) sources[i] = fw.signal(i);
    return empty;
  }
  const eff1 = (fw, s1) => fw.effect(() => s1.read());

  add("createSignals", (fw) => (n, s) => createSignalsOf(fw, n, s), COUNT, COUNT);
  add("create0to1", (fw) => (n) => {
    for (let i = 0; i < n; i++) {
      const v = i;
      fw.effect(() => v);
    }
    return empty;
  }, COUNT, 0);
  add("create1to1", (fw) => (n, s) => {
    for (let i = 0; i < n; i++) eff1(fw, s[i]);
    return empty;
  }, COUNT, COUNT);
  add("create2to1", (fw) => (n, s) => {
    for (let i = 0; i < n; i++) {
      const a = s[i * 2];
      const b = s[i * 2 + 1];
      fw.effect(() => a.read() + b.read());
    }
    return empty;
  }, COUNT / 2, COUNT);
  add("create4to1", (fw) => (n, s) => {
    for (let i = 0; i < n; i++) {
      const a = s[i * 4];
      const b = s[i * 4 + 1];
      const c = s[i * 4 + 2];
      const d = s[i * 4 + 3];
      fw.effect(() => a.read() + b.read() + c.read() + d.read());
    }
    return empty;
  }, COUNT / 4, COUNT);
  add("create1000to1", (fw) => (n, s) => {
    for (let i = 0; i < n; i++) {
      const offset = i * 1000;
      fw.effect(() => {
        let sum = 0;
        for (let j = 0; j < 1000; j++) sum += s[offset + j].read();
        return sum;
      });
    }
    return empty;
  }, COUNT / 1000, COUNT);
  for (const k of [2, 4, 8]) {
    add("create1to" + k, (fw) => (n, s) => {
      for (let i = 0; i < n / k; i++) {
        for (let j = 0; j < k; j++) eff1(fw, s[i]);
      }
      return empty;
    }, COUNT, COUNT / k);
  }
  add("create1to1000", (fw) => (n, s) => {
    for (let i = 0; i < n / 1000; i++) {
      for (let j = 0; j < 1000; j++) eff1(fw, s[i]);
    }
    return empty;
  }, COUNT, COUNT / 1000);

  const updater = (n, s1) => () => {
    for (let i = 0; i < n; i++) s1.write(i);
  };
  add("update1to1", (fw) => (n, s) => {
    eff1(fw, s[0]);
    return updater(n, s[0]);
  }, COUNT * 4, 1);
  add("update2to1", (fw) => (n, s) => {
    const a = s[0];
    const b = s[1];
    fw.effect(() => a.read() + b.read());
    return updater(n, a);
  }, COUNT * 2, 2);
  add("update4to1", (fw) => (n, s) => {
    const a = s[0];
    const b = s[1];
    const c = s[2];
    const d = s[3];
    fw.effect(() => a.read() + b.read() + c.read() + d.read());
    return updater(n, a);
  }, COUNT, 4);
  add("update1000to1", (fw) => (n, s) => {
    fw.effect(() => {
      let sum = 0;
      for (let i = 0; i < 1000; i++) sum += s[i].read();
      return sum;
    });
    return updater(n, s[0]);
  }, COUNT / 250, 1000);
  add("update1to2", (fw) => (n, s) => {
    eff1(fw, s[0]);
    eff1(fw, s[0]);
    return updater(n, s[0]);
  }, COUNT, 1);
  add("update1to4", (fw) => (n, s) => {
    for (let j = 0; j < 4; j++) eff1(fw, s[0]);
    return updater(n, s[0]);
  }, COUNT, 1);
  add("update1to1000", (fw) => (n, s) => {
    for (let j = 0; j < 1000; j++) eff1(fw, s[0]);
    return updater(n / 10, s[0]);
  }, COUNT, 1);
  return cases;
}

// -------------------------------------------------------------------- cellx
const cellxExpected = {
  1000: [[-3, -6, -2, 2], [-2, -4, 2, 3]],
  2500: [[-3, -6, -2, 2], [-2, -4, 2, 3]],
  5000: [[2, 4, -1, -6], [-2, 1, -4, -4]],
};

function cellxOnce(fw, layers) {
  const iter = fw.withBuild(() => {
    const start = {
      prop1: fw.signal(1),
      prop2: fw.signal(2),
      prop3: fw.signal(3),
      prop4: fw.signal(4),
    };
    let layer = start;
    for (let i = layers; i > 0; i--) {
      const m = layer;
      const s = {
        prop1: fw.computed(() => m.prop2.read()),
        prop2: fw.computed(() => m.prop1.read() - m.prop3.read()),
        prop3: fw.computed(() => m.prop2.read() + m.prop4.read()),
        prop4: fw.computed(() => m.prop3.read()),
      };
      fw.effect(() => s.prop1.read());
      fw.effect(() => s.prop2.read());
      fw.effect(() => s.prop3.read());
      fw.effect(() => s.prop4.read());
      layer = s;
    }
    const end = layer;
    return () => {
      const t0 = now();
      const before = [end.prop1.read(), end.prop2.read(), end.prop3.read(), end.prop4.read()];
      fw.withBatch(() => {
        start.prop1.write(4);
        start.prop2.write(3);
        start.prop3.write(2);
        start.prop4.write(1);
      });
      const after = [end.prop1.read(), end.prop2.read(), end.prop3.read(), end.prop4.read()];
      return [now() - t0, before, after];
    };
  });
  const result = iter();
  fw.cleanup();
  gc2();
  return result;
}

function cellxCase(layers) {
  return {
    name: "cellx" + layers,
    group: "cellx",
    run: async (fw) => {
      let total = 0;
      let before;
      let after;
      for (let i = 0; i < 10; i++) {
        await nextTick();
        const [elapsed, b, a] = cellxOnce(fw, layers);
        before = b;
        after = a;
        total += elapsed;
      }
      const [eb, ea] = cellxExpected[layers];
      check(before.join() === eb.join(), `cellx${layers}: first layer ${before} expected ${eb}`);
      check(after.join() === ea.join(), `cellx${layers}: last layer ${after} expected ${ea}`);
      return total;
    },
  };
}

// ------------------------------------------------- reactively dynamic graphs
export const perfTests = [
  { width: 10, staticFraction: 1, nSources: 2, totalLayers: 5, readFraction: 0.2,
    iterations: 600000, expected: { sum: 19199968, count: 3480000 } },
  { width: 10, totalLayers: 10, staticFraction: 3 / 4, nSources: 6, readFraction: 0.2,
    iterations: 15000, expected: { sum: 302310782860, count: 1155000 } },
  { width: 1000, totalLayers: 12, staticFraction: 0.95, nSources: 4, readFraction: 1,
    iterations: 7000, expected: { sum: 29355933696000, count: 1463000 } },
  { width: 1000, totalLayers: 5, staticFraction: 1, nSources: 25, readFraction: 1,
    iterations: 3000, expected: { sum: 1171484375000, count: 732000 } },
  { width: 5, totalLayers: 500, staticFraction: 1, nSources: 3, readFraction: 1,
    iterations: 500, expected: { sum: 3.0239642676898464e241, count: 1246500 } },
  { width: 100, totalLayers: 15, staticFraction: 0.5, nSources: 6, readFraction: 1,
    iterations: 2000, expected: { sum: 15664996402790400, count: 1078000 } },
];

function percent(n) {
  return Math.round(n * 100) + "%";
}
export function makeTitle(c) {
  const dyn = c.staticFraction < 1 ? " - dyn" + percent(1 - c.staticFraction) : "";
  const read = c.readFraction < 1 ? " - lazy" + percent(1 - c.readFraction) : "";
  return `${c.nSources}-${c.width}x${c.totalLayers}${dyn}${read}`;
}

function makeRow(fw, sources, counter, staticFraction, nSources, random) {
  return sources.map((_, myDex) => {
    const mySources = [];
    for (let sourceDex = 0; sourceDex < nSources; sourceDex++) {
      mySources.push(sources[(myDex + sourceDex) % sources.length]);
    }
    if (random() < staticFraction) {
      return fw.computed(() => {
        counter.count++;
        let sum = 0;
        for (const src of mySources) sum += src.read();
        return sum;
      });
    }
    const first = mySources[0];
    const tail = mySources.slice(1);
    return fw.computed(() => {
      counter.count++;
      let sum = first.read();
      const shouldDrop = sum & 0x1;
      const dropDex = sum % tail.length;
      for (let i = 0; i < tail.length; i++) {
        if (shouldDrop && i === dropDex) continue;
        sum += tail[i].read();
      }
      return sum;
    });
  });
}

function makeGraph(fw, config) {
  const { width, totalLayers, staticFraction, nSources, readFraction } = config;
  return fw.withBuild(() => {
    const sources = new Array(width).fill(0).map((_, i) => fw.signal(i));
    const counter = { count: 0 };
    let prevRow = sources;
    const random = pseudoRandom();
    const rows = [];
    for (let l = 0; l < totalLayers - 1; l++) {
      const row = makeRow(fw, prevRow, counter, staticFraction, nSources, random);
      rows.push(row);
      prevRow = row;
    }
    const rand = pseudoRandom();
    const leaves = rows[rows.length - 1];
    const skipCount = Math.round(leaves.length * (1 - readFraction));
    const readLeaves = leaves.slice();
    for (let i = 0; i < skipCount; i++) {
      readLeaves.splice(Math.floor(rand() * readLeaves.length), 1);
    }
    fw.effect(() => {
      for (const leaf of readLeaves) leaf.read();
    });
    return { graph: { sources, layers: rows, readLeaves }, counter };
  });
}

function runGraph(fw, graph, iterations) {
  const { sources, readLeaves } = graph;
  for (let i = 0; i < iterations; i++) {
    fw.withBatch(() => {
      const sourceDex = i % sources.length;
      sources[sourceDex].write(i + sourceDex);
    });
    for (const leaf of readLeaves) leaf.read();
  }
  return readLeaves.reduce((total, leaf) => leaf.read() + total, 0);
}

function dynamicCase(config) {
  return {
    name: makeTitle(config),
    group: "dynamic",
    run: async (fw) => {
      const { graph, counter } = makeGraph(fw, config);
      const runOnce = () => runGraph(fw, graph, config.iterations);
      runOnce();
      runOnce();
      runOnce();
      const { time, result } = await fastest(5, () => {
        counter.count = 0;
        const sum = runOnce();
        return { sum, count: counter.count };
      });
      fw.cleanup();
      gc2();
      const name = makeTitle(config);
      check(result.sum === config.expected.sum,
        `${name}: sum ${result.sum} expected ${config.expected.sum}`);
      // all three frameworks here are pull-lazy, so counts are checked always
      check(result.count === config.expected.count,
        `${name}: count ${result.count} expected ${config.expected.count}`);
      return time;
    },
  };
}

// --------------------------------------------------------------- the list
export const cases = [
  kairoCase("avoidablePropagation", avoidablePropagation),
  kairoCase("broadPropagation", broadPropagation),
  kairoCase("deepPropagation", deepPropagation),
  kairoCase("diamond", diamond),
  kairoCase("mux", mux),
  kairoCase("repeatedObservers", repeatedObservers),
  kairoCase("triangle", triangle),
  kairoCase("unstable", unstable),
  molBench,
  ...sbenchCases(),
  cellxCase(1000),
  cellxCase(2500),
  cellxCase(5000),
  ...perfTests.map(dynamicCase),
];
