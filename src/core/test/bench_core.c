/*
 * bench_core.c: micro benchmark of the core's hot paths (write, propagate,
 * pull, tracking with link reuse, scheduler steps) with a minimal embedder
 * in C, so that the cost of a change to the core is measured without Lua.
 * `make bench-core`; prints ns per operation, best of 5 runs.
 */
#define _POSIX_C_SOURCE 199309L
#include "core.h"
#include "layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long *val;         /* values by node id */
static ac_id *arg;        /* computed: the node it reads */

/* Seconds on the monotonic clock. */
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Re-runs computed `id` (val = val[arg] + 1) with tracking; 1 if changed. */
static int recompute(ac_graph *g, ac_id id) {
  ac_begin(g, id);
  ac_link(g, arg[id], id);
  long v = val[arg[id]] + 1;
  ac_end(g, id);
  int changed = v != val[id];
  val[id] = v;
  return changed;
}

/* Updates a node the pull asked for: signals just clear DIRTY. */
static int update(ac_graph *g, ac_id id) {
  if (AC_KIND(g->nodes[id].flags) == AC_SIGNAL) {
    g->nodes[id].flags &= ~(uint32_t)AC_DIRTY;
    return 1;
  }
  return recompute(g, id);
}

/* Brings `id` up to date (the embedder's read, untracked). */
static void refresh(ac_graph *g, ac_id id) {
  uint32_t f = g->nodes[id].flags;
  if (f & AC_DIRTY) {
    recompute(g, id);
    return;
  }
  if (!(f & AC_PENDING)) return;
  ac_id r = ac_pull(g, id);
  while (r > 0) r = ac_pull_resume(g, update(g, r));
  if (r == AC_STALE) recompute(g, id);
}

/* A chain signal -> c1 -> ... -> cN: one write and one read of the end. */
static double bench_chain(int n, int iters) {
  ac_graph *g = ac_new();
  ac_id s = ac_node_new(g, AC_SIGNAL, 0, -1), prev = s, last = s;
  for (int i = 0; i < n; i++) {
    last = ac_node_new(g, AC_COMPUTED, 0, -1);
    arg[last] = prev;
    prev = last;
  }
  for (ac_id i = s + 1; i <= last; i++) recompute(g, i);
  double t = now();
  for (int k = 0; k < iters; k++) {
    val[s]++;
    ac_write(g, s);
    refresh(g, last);
  }
  t = now() - t;
  ac_free(g);
  return t * 1e9 / ((double)iters * n);
}

/* One signal read by `n` effects: a write queues all, a flush reruns all. */
static double bench_fanout(int n, int iters) {
  ac_graph *g = ac_new();
  int32_t sc = ac_sched_new(g, 100);
  ac_id s = ac_node_new(g, AC_SIGNAL, 0, -1);
  for (int i = 0; i < n; i++) {
    ac_id e = ac_node_new(g, AC_EFFECT, 0, sc);
    arg[e] = s;
    recompute(g, e);
  }
  double t = now();
  for (int k = 0; k < iters; k++) {
    val[s]++;
    ac_write(g, s);
    g->nodes[s].flags &= ~(uint32_t)AC_DIRTY;
    int32_t h;
    while ((h = ac_sched_step(g, sc)) != 0) {
      if (h < 0 && h > AC_STEP_DROPPED) recompute(g, -h);
    }
    ac_sched_take_one(g);
  }
  t = now() - t;
  ac_free(g);
  return t * 1e9 / ((double)iters * n);
}

/* `n` independent signal -> computed -> effect triples, one written per op. */
static double bench_triples(int n, int iters) {
  ac_graph *g = ac_new();
  int32_t sc = ac_sched_new(g, 100);
  ac_id *sig = malloc(sizeof(ac_id) * (size_t)n);
  for (int i = 0; i < n; i++) {
    sig[i] = ac_node_new(g, AC_SIGNAL, 0, -1);
    ac_id c = ac_node_new(g, AC_COMPUTED, 0, -1);
    ac_id e = ac_node_new(g, AC_EFFECT, 0, sc);
    arg[c] = sig[i];
    arg[e] = c;
    recompute(g, c);
    recompute(g, e);
  }
  double t = now();
  for (int k = 0; k < iters; k++) {
    ac_id s = sig[k % n];
    val[s]++;
    ac_write(g, s);
    int32_t h;
    while ((h = ac_sched_step(g, sc)) != 0) {
      if (h < 0 && h > AC_STEP_DROPPED) {
        refresh(g, -h);
      }
    }
    ac_sched_take_one(g);
  }
  t = now() - t;
  free(sig);
  ac_free(g);
  return t * 1e9 / iters;
}

/* Creates and disposes `n` effects reading one signal, repeatedly. */
static double bench_create(int n, int iters) {
  ac_graph *g = ac_new();
  ac_id s = ac_node_new(g, AC_SIGNAL, 0, -1);
  ac_id scope = ac_node_new(g, AC_SCOPE, 0, -1);
  double t = now();
  for (int k = 0; k < iters; k++) {
    for (int i = 0; i < n; i++) {
      ac_id e = ac_node_new(g, AC_EFFECT, scope, 0);
      arg[e] = s;
      recompute(g, e);
    }
    ac_dispose(g, scope, 1);
  }
  t = now() - t;
  ac_free(g);
  return t * 1e9 / ((double)iters * n);
}

/* Best of 5 runs of `fn`. */
static double best(double (*fn)(int, int), int n, int iters) {
  double b = 1e30;
  for (int r = 0; r < 5; r++) {
    double x = fn(n, iters);
    if (x < b) b = x;
  }
  return b;
}

int main(void) {
  val = calloc(1 << 20, sizeof *val);
  arg = calloc(1 << 20, sizeof *arg);
  printf("chain 1000, write + pull   %7.2f ns per node\n", best(bench_chain, 1000, 2000));
  printf("fanout 1000 effects        %7.2f ns per effect\n", best(bench_fanout, 1000, 2000));
  printf("triples s->c->e            %7.2f ns per write\n", best(bench_triples, 1000, 1000000));
  printf("create/dispose effects     %7.2f ns per effect\n", best(bench_create, 1000, 1000));
  free(val);
  free(arg);
  return 0;
}
