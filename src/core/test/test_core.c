/*
 * test_core.c: tests of the C core with a tiny embedder written in C.
 * Prints one line per failed check and ends with "N passed, N failed".
 * Built with -DAC_TEST_ALLOC: check.c's allocator can fail the Nth
 * allocation, and ac_check verifies the graph's invariants.
 */
#define _POSIX_C_SOURCE 200809L   /* popen */
#include "core.h"
#include "core_int.h"
#include "check.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond) check((cond), #cond, __FILE__, __LINE__)
/* Counts one check; prints it when it failed. */
static void check(int ok, const char *what, const char *file, int line) {
  if (ok) {
    passed++;
  } else {
    failed++;
    printf("FAIL %s:%d: %s\n", file, line, what);
  }
}

/* The graph's invariants hold (ac_check); prints the first violation. */
#define CHECK_GRAPH(g) check_graph((g), __FILE__, __LINE__)
static void check_graph(const ac_graph *g, const char *file, int line) {
  char msg[200];
  if (ac_check(g, msg, sizeof msg)) {
    failed++;
    printf("FAIL %s:%d: invariant: %s\n", file, line, msg);
  } else {
    passed++;
  }
}

/* ac_sched_step as the embedder's loop sees it, with the whole job. */
enum { J_DONE, J_JOB, J_DROPPED, J_DEPTH };
static int next_job(ac_graph *g, int32_t s, ac_job *out) {
  int32_t h = ac_sched_step(g, s);
  if (h == 0) return J_DONE;
  if (h == AC_STEP_DEPTH) return J_DEPTH;
  *out = g->scheds[s & AC_SCHED_SLOT_MASK].last;
  return h == AC_STEP_DROPPED ? J_DROPPED : J_JOB;
}

/* ===== a tiny embedder: values in arrays, computeds as C functions ===== */

#define MAXN 300000
typedef long (*compute_fn)(ac_graph *g, ac_id self);
static long val[MAXN], seen_val[MAXN];
static compute_fn fn[MAXN];
static int runs[MAXN];
static ac_id arg1[MAXN], arg2[MAXN];
static ac_id active;

static long read_node(ac_graph *g, ac_id id);

/* Updates a dirty node; returns whether it changed. */
static int update(ac_graph *g, ac_id id) {
  uint32_t f = g->nodes[id].flags;
  if (AC_KIND(f) == AC_SIGNAL) {
    g->nodes[id].flags &= ~AC_DIRTY;
    int changed = seen_val[id] != val[id];
    seen_val[id] = val[id];
    return changed;
  }
  ac_id prev = active;
  active = id;
  ac_begin(g, id);
  runs[id]++;
  long v = fn[id](g, id);
  ac_end(g, id);
  active = prev;
  int changed = v != val[id] || !seen_val[id];
  val[id] = v;
  seen_val[id] = 1;
  return changed;
}

static int pull(ac_graph *g, ac_id id) {
  ac_id r = ac_pull(g, id);
  while (r > 0) r = ac_pull_resume(g, update(g, r));
  return r == AC_STALE;
}

static long read_node(ac_graph *g, ac_id id) {
  uint32_t f = g->nodes[id].flags;
  if (AC_KIND(f) == AC_SIGNAL) {
    if (f & AC_DIRTY) {
      g->nodes[id].flags &= ~AC_DIRTY;
      int changed = seen_val[id] != val[id];
      seen_val[id] = val[id];
      if (changed) ac_changed(g, id);
    }
  } else if ((f & AC_DIRTY) || ((f & AC_PENDING) && pull(g, id))) {
    if (update(g, id)) ac_changed(g, id);
  }
  if (active) ac_link(g, id, active);
  return val[id];
}

static void write_signal(ac_graph *g, ac_id id, long v) {
  if (val[id] == v) return;
  val[id] = v;
  ac_write(g, id);
}

static ac_id new_signal(ac_graph *g, long v) {
  ac_id id = ac_node_new(g, AC_SIGNAL, 0, -1);
  val[id] = seen_val[id] = v;
  runs[id] = 0;
  return id;
}

static ac_id new_computed(ac_graph *g, compute_fn f, ac_id a, ac_id b) {
  ac_id id = ac_node_new(g, AC_COMPUTED, 0, -1);
  fn[id] = f;
  arg1[id] = a;
  arg2[id] = b;
  runs[id] = 0;
  val[id] = seen_val[id] = 0;
  return id;
}

static long f_plus1(ac_graph *g, ac_id self) { return read_node(g, arg1[self]) + 1; }
static long f_sum(ac_graph *g, ac_id self) { return read_node(g, arg1[self]) + read_node(g, arg2[self]); }
static long f_parity(ac_graph *g, ac_id self) { return read_node(g, arg1[self]) % 2; }
static long f_branch(ac_graph *g, ac_id self) {
  /* reads arg2 only when arg1 is nonzero */
  return read_node(g, arg1[self]) ? read_node(g, arg2[self]) : -1;
}

/* ===== tests ===== */

static void test_diamond(void) {
  ac_graph *g = ac_new();
  ac_id a = new_signal(g, 1);
  ac_id b = new_computed(g, f_plus1, a, 0);
  ac_id c = new_computed(g, f_plus1, a, 0);
  ac_id d = new_computed(g, f_sum, b, c);
  CHECK(read_node(g, d) == 4);
  CHECK(runs[d] == 1);
  write_signal(g, a, 5);
  CHECK((g->nodes[d].flags & AC_PENDING) != 0);
  CHECK(read_node(g, d) == 12);
  CHECK(runs[d] == 2 && runs[b] == 2 && runs[c] == 2);
  CHECK(read_node(g, d) == 12 && runs[d] == 2); /* cached */
  ac_free(g);
}

static void test_cutoff(void) {
  ac_graph *g = ac_new();
  ac_id a = new_signal(g, 2);
  ac_id p = new_computed(g, f_parity, a, 0);
  ac_id q = new_computed(g, f_plus1, p, 0);
  CHECK(read_node(g, q) == 1);
  write_signal(g, a, 4); /* parity unchanged: q must not rerun */
  CHECK(read_node(g, q) == 1);
  CHECK(runs[p] == 2 && runs[q] == 1);
  ac_free(g);
}

static void test_dynamic(void) {
  ac_graph *g = ac_new();
  ac_id cond = new_signal(g, 1);
  ac_id x = new_signal(g, 10);
  ac_id c = new_computed(g, f_branch, cond, x);
  CHECK(read_node(g, c) == 10);
  CHECK(g->live_links == 2);
  write_signal(g, cond, 0);
  CHECK(read_node(g, c) == -1);
  CHECK(g->live_links == 1); /* x dropped */
  write_signal(g, x, 11);
  CHECK((g->nodes[c].flags & (AC_PENDING | AC_DIRTY)) == 0); /* no notification */
  CHECK(read_node(g, c) == -1 && runs[c] == 2);
  ac_free(g);
}

static void test_deep_chain(void) {
  ac_graph *g = ac_new();
  enum { N = 100000 };
  ac_id s = new_signal(g, 0);
  ac_id prev = s;
  ac_id ids[N];
  for (int i = 0; i < N; i++) prev = ids[i] = new_computed(g, f_plus1, prev, 0);
  /* evaluate bottom-up so the C recursion of this test embedder stays shallow */
  for (int i = 0; i < N; i++) read_node(g, ids[i]);
  CHECK(val[ids[N - 1]] == N);
  write_signal(g, s, 1); /* propagation walks 100,000 levels iteratively */
  CHECK((g->nodes[ids[N - 1]].flags & AC_PENDING) != 0);
  /* the pull walks 100,000 levels with its own stack; updates come back one by one */
  CHECK(read_node(g, ids[N - 1]) == N + 1);
  CHECK(runs[ids[0]] == 2 && runs[ids[N - 1]] == 2);
  ac_free(g);
}

static void test_wide_fanout(void) {
  ac_graph *g = ac_new();
  ac_id s = new_signal(g, 0);
  int32_t sched = ac_sched_new(g, 100);
  enum { N = 1000 };
  for (int i = 0; i < N; i++) {
    ac_id e = ac_node_new(g, AC_EFFECT, 0, sched);
    ac_begin(g, e);
    ac_link(g, s, e);
    ac_end(g, e);
  }
  write_signal(g, s, 1);
  CHECK(ac_sched_size(g, sched) == N);
  write_signal(g, s, 2); /* already queued: no duplicates */
  CHECK(ac_sched_size(g, sched) == N);
  ac_job j;
  int n = 0;
  while (next_job(g, sched, &j) == J_JOB) n++;
  CHECK(n == N);
  ac_free(g);
}

static void test_dispose_order(void) {
  ac_graph *g = ac_new();
  ac_id root = ac_node_new(g, AC_SCOPE, 0, -1);
  ac_id e1 = ac_node_new(g, AC_EFFECT, root, 0);
  ac_id e11 = ac_node_new(g, AC_EFFECT, e1, 0);
  ac_id e12 = ac_node_new(g, AC_EFFECT, e1, 0);
  ac_id e2 = ac_node_new(g, AC_EFFECT, root, 0);
  int32_t n = ac_dispose(g, root, 1);
  CHECK(n == 4);
  /* children before parents, newest first */
  CHECK(n == 4 && g->out[0] == e2 && g->out[1] == e12 && g->out[2] == e11 && g->out[3] == e1);
  CHECK(g->live_nodes == 1);
  CHECK(ac_dispose(g, root, 0) == 1 && g->live_nodes == 0);
  /* a deep owner chain disposes without recursion */
  ac_id top = ac_node_new(g, AC_SCOPE, 0, -1), cur = top;
  for (int i = 0; i < 100000; i++) cur = ac_node_new(g, AC_EFFECT, cur, 0);
  CHECK(ac_dispose(g, top, 0) == 100001);
  CHECK(g->out[0] == cur && g->out[100000] == top);
  CHECK(g->live_nodes == 0 && g->live_links == 0);
  ac_free(g);
}

static void test_free_and_reuse(void) {
  ac_graph *g = ac_new();
  ac_id a = new_signal(g, 1);
  ac_id c = new_computed(g, f_plus1, a, 0);
  ac_id d = new_computed(g, f_plus1, c, 0);
  read_node(g, d);
  CHECK(g->live_links == 2);
  ac_node_free(g, d); /* c loses its last subscriber: detaches from a */
  CHECK(g->live_links == 0);
  CHECK((g->nodes[c].flags & AC_DIRTY) != 0);
  ac_id e = ac_node_new(g, AC_SIGNAL, 0, -1);
  CHECK(e == d); /* slot reused */
  for (int i = 0; i < 100000; i++) {
    ac_id x = ac_node_new(g, AC_EFFECT, 0, 0);
    ac_begin(g, x);
    ac_link(g, a, x);
    ac_end(g, x);
    ac_dispose(g, x, 0);
  }
  CHECK(g->live_nodes == 3 && g->live_links == 0);
  ac_free(g);
}

/* Free slots are handed out lowest first, and the tops come down as the
   highest slots are freed (a small graph made after a peak stays packed at
   the bottom of the arrays). */
static void test_lowest_free(void) {
  ac_graph *g = ac_new();
  enum { N = 300 };
  ac_id id[N + 1];
  for (int i = 1; i <= N; i++) {
    id[i] = ac_node_new(g, AC_SIGNAL, 0, -1);
    CHECK(id[i] == i);
  }
  ac_node_free(g, 150);
  ac_node_free(g, 10);
  ac_node_free(g, 70);
  CHECK(ac_node_new(g, AC_SIGNAL, 0, -1) == 10);
  CHECK(ac_node_new(g, AC_SIGNAL, 0, -1) == 70);
  CHECK(ac_node_new(g, AC_SIGNAL, 0, -1) == 150);
  /* the upper half freed out of order: the top comes down once the
     highest slot goes, past every free slot below it */
  for (int i = N / 2 + 1; i < N; i += 2) ac_node_free(g, i);
  CHECK(g->node_top == N + 1);
  for (int i = N / 2 + 2; i <= N; i += 2) ac_node_free(g, i);
  CHECK(g->node_top == N / 2 + 1 && g->node_peak == N + 1 && g->live_nodes == N / 2);
  CHECK_GRAPH(g);
  CHECK(ac_node_new(g, AC_SIGNAL, 0, -1) == N / 2 + 1);
  /* links: an effect reading many signals, then one reading few */
  ac_id e = ac_node_new(g, AC_EFFECT, 0, -1);
  ac_begin(g, e);
  for (int i = 1; i <= 100; i++) ac_link(g, i, e);
  ac_end(g, e);
  CHECK(g->link_top == 101);
  ac_begin(g, e);
  for (int i = 1; i <= 5; i++) ac_link(g, i, e);
  ac_end(g, e);
  CHECK(g->live_links == 5 && g->link_top == 6);
  CHECK_GRAPH(g);
  ac_free(g);
  /* a peak given back: 5000 nodes and their links, all but the first few
     freed, then trimmed; the graph goes on working */
  g = ac_new();
  ac_id src = new_signal(g, 1);
  ac_id eff = ac_node_new(g, AC_EFFECT, 0, -1);
  for (int i = 0; i < 5000; i++) new_computed(g, f_plus1, src, 0);
  ac_begin(g, eff);
  active = eff;
  for (ac_id x = 3; x < 5003; x++) read_node(g, x);
  active = 0;
  ac_end(g, eff);
  CHECK(g->node_cap >= 5000 && g->link_cap >= 10000 && g->live_links == 10000);
  ac_begin(g, eff); ac_end(g, eff);            /* drops every link */
  for (ac_id x = 3; x < 5003; x++) ac_node_free(g, x);
  CHECK(g->node_top == 3 && g->link_top == 1 && g->node_peak == 5003);
  CHECK(ac_trim(g) == AC_OK);
  CHECK(g->node_cap >= 5000 && g->link_cap == 64);   /* node ids stay in bounds */
  CHECK(g->node_peak == 3 && g->free_nodes.cap >= g->node_cap && g->free_links.cap == 64);
  CHECK_GRAPH(g);
  ac_id c2 = new_computed(g, f_plus1, src, 0);
  CHECK(c2 == 3);
  ac_begin(g, eff); ac_link(g, c2, eff); ac_end(g, eff);
  read_node(g, eff);
  write_signal(g, src, 5);
  CHECK(read_node(g, c2) == 6);
  for (int i = 0; i < 200; i++) new_signal(g, i);
  CHECK(g->node_top == 204);
  ac_begin(g, eff);
  active = eff;
  for (ac_id x = 4; x < 204; x++) read_node(g, x);  /* the link array grows again */
  active = 0;
  ac_end(g, eff);
  CHECK(g->link_cap == 256 && g->live_links == 200);
  CHECK(ac_trim(g) == AC_OK && g->link_cap == 256);  /* nothing to give back */
  CHECK_GRAPH(g);
  ac_free(g);
  /* random makes and frees against a model: always the lowest free slot */
  g = ac_new();
  enum { M = 5000 };
  static unsigned char used[M + 2];
  memset(used, 0, sizeof used);
  uint32_t r = 12345;
  int live = 0, ok = 1;
  for (int step = 0; step < 200000 && ok; step++) {
    r = r * 1103515245u + 12345u;
    int make = live == 0 || (live < M && (r >> 16) % 100 < 52);
    if (make) {
      int want = 1;
      while (used[want]) want++;
      ac_id got = ac_node_new(g, AC_SIGNAL, 0, -1);
      if (got != want) ok = 0;
      used[got] = 1;
      live++;
    } else {
      int k = (int)((r >> 8) % (uint32_t)live), i = 0;
      while (!used[++i] || k--) {}
      ac_node_free(g, i);
      used[i] = 0;
      live--;
    }
    int top = M + 1;
    while (top > 1 && !used[top - 1]) top--;
    if (g->node_top != top) ok = 0;
    if (step % 20000 == 0) CHECK_GRAPH(g);
  }
  CHECK(ok);
  CHECK_GRAPH(g);
  ac_free(g);
}

static void test_sched_phases(void) {
  ac_graph *g = ac_new();
  int32_t s = ac_sched_new(g, 100);
  ac_sched_push(g, s, AC_PHASE_POST, 1, 0, 0);
  ac_sched_push(g, s, AC_PHASE_ASYNC, 2, 0, 0);
  ac_sched_push(g, s, AC_PHASE_BINDING, 3, 0, 0);
  ac_sched_push(g, s, AC_PHASE_EFFECT, 4, 0, 0);
  ac_job j;
  int order[8], n = 0;
  while (next_job(g, s, &j) == J_JOB) {
    order[n++] = j.handle;
    if (j.handle == 4) {
      ac_sched_push(g, s, AC_PHASE_ASYNC, 5, 0, 0);   /* later phase: same pass */
      ac_sched_push(g, s, AC_PHASE_BINDING, 6, 0, 0); /* earlier phase: next pass */
    }
  }
  /* pass 1: 3, 4, 2, 5 (post waits: binding has work); pass 2: 6, then post 1 */
  int want[] = {3, 4, 2, 5, 6, 1};
  CHECK(n == 6 && memcmp(order, want, sizeof want) == 0);
  ac_free(g);
}

static void test_sched_keys_scopes(void) {
  ac_graph *g = ac_new();
  int32_t s = ac_sched_new(g, 100);
  CHECK(ac_sched_push(g, s, AC_PHASE_BINDING, 1, 7, 9) == 1);
  CHECK(ac_sched_push(g, s, AC_PHASE_BINDING, 2, 7, 9) == 0);  /* duplicate */
  CHECK(ac_sched_push(g, s, AC_PHASE_EFFECT, 3, 7, 9) == 1);   /* other phase */
  CHECK(ac_sched_push(g, s, AC_PHASE_BINDING, 4, 8, 9) == 1);  /* other scope */
  ac_sched_destroy_scope(g, s, 8);
  CHECK(ac_sched_push(g, s, AC_PHASE_BINDING, 5, 8, 1) == 0);  /* dead scope */
  ac_job j;
  int got = 0, dropped = 0, r;
  while ((r = next_job(g, s, &j)) != J_DONE) {
    if (r == J_JOB) got += j.handle;
    if (r == J_DROPPED) dropped++;
  }
  CHECK(got == 1 + 3 && dropped == 1);
  CHECK(ac_sched_push(g, s, AC_PHASE_BINDING, 6, 7, 9) == 1);  /* key free again */
  ac_sched_revive_scope(g, s, 8);
  CHECK(ac_sched_push(g, s, AC_PHASE_BINDING, 7, 8, 1) == 1);
  /* many keys: the set grows and deletes correctly */
  int added = 0;
  for (int i = 1; i <= 5000; i++) added += ac_sched_push(g, s, AC_PHASE_POST, 100 + i, 1, i) == 1;
  CHECK(added == 5000);
  int dups = 0;
  for (int i = 1; i <= 5000; i++) dups += ac_sched_push(g, s, AC_PHASE_POST, 1, 1, i) == 0;
  CHECK(dups == 5000);
  int n = 0;
  while (next_job(g, s, &j) == J_JOB) n++;
  CHECK(n == 5002);
  ac_free(g);
}

/* destroy_scope drops the waiting jobs for good: reviving before the flush
   does not bring them back, and their keys are free at once */
static void test_sched_destroy_then_revive(void) {
  ac_graph *g = ac_new();
  int32_t s = ac_sched_new(g, 100);
  CHECK(ac_sched_push(g, s, AC_PHASE_EFFECT, 1, 5, 3) == 1);
  CHECK(ac_sched_push(g, s, AC_PHASE_POST, 2, 5, 0) == 1);
  CHECK(ac_sched_push(g, s, AC_PHASE_EFFECT, 3, 6, 0) == 1);
  ac_sched_destroy_scope(g, s, 5);
  ac_sched_revive_scope(g, s, 5);
  CHECK(ac_sched_push(g, s, AC_PHASE_EFFECT, 4, 5, 3) == 1);  /* key freed by the drop */
  ac_job j;
  int got = 0, dropped = 0, r;
  while ((r = next_job(g, s, &j)) != J_DONE) {
    if (r == J_JOB) got += j.handle;
    if (r == J_DROPPED) dropped += j.handle;
  }
  CHECK(got == 3 + 4);
  CHECK(dropped == 1 + 2);
  ac_free(g);
}

/* a ring found during a pull: the sub whose dep is being evaluated is
   reported stale (so the embedder reruns it and finds the cycle) */
static void test_pull_ring(void) {
  ac_graph *g = ac_new();
  ac_id a = new_signal(g, 1);
  ac_id x = new_computed(g, f_plus1, a, 0);
  ac_id y = new_computed(g, f_plus1, x, 0);
  CHECK(read_node(g, y) == 3);
  write_signal(g, a, 2);
  ac_begin(g, x);                 /* x is being evaluated ... */
  CHECK(ac_pull(g, y) == AC_STALE); /* ... and y, which read x, is pulled */
  ac_end(g, x);
  ac_free(g);
}

static void test_sched_depth(void) {
  ac_graph *g = ac_new();
  int32_t s = ac_sched_new(g, 10);
  ac_sched_push(g, s, AC_PHASE_EFFECT, 1, 0, 0);
  ac_job j;
  int r, jobs = 0;
  while ((r = next_job(g, s, &j)) == J_JOB) {
    jobs++;
    ac_sched_push(g, s, AC_PHASE_EFFECT, 1, 0, 0); /* requeues itself forever */
  }
  CHECK(r == J_DEPTH && jobs == 10);
  CHECK(ac_sched_size(g, s) == 0);
  ac_free(g);
}

static void test_effect_owner_first(void) {
  ac_graph *g = ac_new();
  int32_t s = ac_sched_new(g, 100);
  ac_id sig = new_signal(g, 0);
  ac_id outer = ac_node_new(g, AC_EFFECT, 0, s);
  ac_id inner = ac_node_new(g, AC_EFFECT, outer, s);
  /* inner subscribes first, so it is notified first */
  ac_begin(g, inner); ac_link(g, sig, inner); ac_end(g, inner);
  ac_begin(g, outer); ac_link(g, sig, outer); ac_end(g, outer);
  write_signal(g, sig, 1);
  ac_job j;
  CHECK(next_job(g, s, &j) == J_JOB && j.handle == -outer);
  CHECK(next_job(g, s, &j) == J_JOB && j.handle == -inner);
  CHECK(next_job(g, s, &j) == J_DONE);
  ac_free(g);
}

static void test_tasks(void) {
  ac_graph *g = ac_new();
  ac_id a = ac_node_new(g, AC_ASYNC, 0, 0);
  uint32_t v1 = ac_task_start(g, a);
  uint32_t v2 = ac_task_start(g, a);
  CHECK(v1 == 1 && v2 == 2);
  CHECK(g->nodes[a].running == v2);
  CHECK(ac_task_commit(g, a, v1) == 0);   /* stale */
  CHECK(ac_task_commit(g, a, v2) == 1);
  CHECK(ac_task_commit(g, a, v2) == 0);   /* once */
  uint32_t v3 = ac_task_start(g, a);
  CHECK(ac_task_abort(g, a) == 1 && ac_task_commit(g, a, v3) == 0);
  /* a dependency change notifies the async node once until drained */
  ac_id s = new_signal(g, 0);
  ac_begin(g, a); ac_link(g, s, a); ac_end(g, a);
  write_signal(g, s, 1);
  write_signal(g, s, 2);
  CHECK(ac_async_drain(g) == 1 && g->out[0] == a);
  CHECK(ac_async_drain(g) == 0);
  ac_free(g);
}

/* Regression: an effect disposed while its own run is on the embedder's
   stack must not be freed under it (a render waking a request from inside
   an effect segfaulted in ac_end). */
static void test_dispose_running(void) {
  ac_graph *g = ac_new();
  ac_id s = new_signal(g, 0);
  ac_id scope = ac_node_new(g, AC_SCOPE, 0, -1);
  ac_id e = ac_node_new(g, AC_EFFECT, scope, 0);
  int32_t live = g->live_nodes;
  ac_begin(g, e);
  ac_link(g, s, e);
  CHECK(ac_dispose(g, scope, 0) == 2);         /* e and the scope are reported */
  CHECK(g->live_nodes == live - 1);            /* the scope is gone, e waits */
  CHECK((g->nodes[e].flags & (AC_DISPOSED | AC_FREE)) == AC_DISPOSED);
  ac_id child = ac_node_new(g, AC_EFFECT, e, 0); /* created by the rest of the run */
  CHECK(ac_end(g, e) == 2);
  CHECK(g->nodes[s].subs == 0);                /* what it read is dropped */
  CHECK(ac_dispose(g, e, 0) == 1 && g->out[0] == child);
  CHECK(g->live_nodes == live - 2 && (g->nodes[e].flags & AC_FREE));
  ac_free(g);
}

/* A released scheduler's handle never reaches the scheduler that reuses its
   slot: an effect of a runtime that is gone must be dropped, not misrouted. */
static void test_sched_handles(void) {
  ac_graph *g = ac_new();
  int32_t a = ac_sched_new(g, 100);
  ac_id s = new_signal(g, 0);
  ac_id e = ac_node_new(g, AC_EFFECT, 0, a);
  ac_begin(g, e); ac_link(g, s, e); ac_end(g, e);
  ac_sched_release(g, a);
  int32_t b = ac_sched_new(g, 100);
  CHECK(b != a && (b & 0xFFFFF) == (a & 0xFFFFF));   /* same slot, new generation */
  write_signal(g, s, 1);                               /* notifies e, whose scheduler is gone */
  CHECK(ac_sched_size(g, b) == 0);
  CHECK(ac_sched_push(g, a, AC_PHASE_POST, 1, 0, 0) == AC_BAD_ID);
  CHECK(ac_sched_take_one(g) == -1);
  /* many create/release cycles reuse slots instead of growing (a slot is
     retired after 2047 generations) */
  int32_t len = g->sched_len;
  for (int i = 0; i < 10000; i++) ac_sched_release(g, ac_sched_new(g, 100));
  CHECK(g->sched_len <= len + 5);
  ac_free(g);
}

static void test_sizes(void) {
  CHECK(sizeof(ac_node) <= 64);
  CHECK(sizeof(ac_edge) <= 48);
}

/* ===== the FFI declarations (lua/async/kernel/cdef.lua) ===== */

#define SIZE(T) n += snprintf(cmd + n, sizeof cmd - (size_t)n, " size:%s=%zu", #T, sizeof(T))
#define OFF(T, F) n += snprintf(cmd + n, sizeof cmd - (size_t)n, " offset:%s.%s=%zu", #T, #F, offsetof(T, F))
#define CONST(C) n += snprintf(cmd + n, sizeof cmd - (size_t)n, " const:%s=%d", #C, (int)(C))

/* The generated cdef loads under ffi.cdef, and every struct the Lua side
   reads has the C compiler's size and field offsets (run from the checkout
   root, as make test does). */
static void test_cdef(void) {
  char cmd[4096];
  int n = snprintf(cmd, sizeof cmd, "luajit src/core/test/cdef_check.lua lua/async/kernel/cdef.lua");
  SIZE(ac_node); SIZE(ac_edge); SIZE(ac_job); SIZE(ac_queue); SIZE(ac_set);
  SIZE(ac_sched); SIZE(ac_pull_frame); SIZE(ac_graph);
  OFF(ac_node, deps); OFF(ac_node, subs); OFF(ac_node, flags); OFF(ac_node, owner);
  OFF(ac_node, last_child); OFF(ac_node, sched); OFF(ac_node, version); OFF(ac_node, running);
  OFF(ac_edge, dep); OFF(ac_edge, sub); OFF(ac_edge, next_sub); OFF(ac_edge, next_dep);
  OFF(ac_job, handle); OFF(ac_job, scope); OFF(ac_job, key); OFF(ac_job, phase);
  OFF(ac_sched, pending); OFF(ac_sched, dead_scopes); OFF(ac_sched, last); OFF(ac_sched, gen);
  OFF(ac_graph, nodes); OFF(ac_graph, links); OFF(ac_graph, node_top); OFF(ac_graph, live_nodes);
  OFF(ac_graph, live_links); OFF(ac_graph, stack); OFF(ac_graph, marks); OFF(ac_graph, pull_len);
  OFF(ac_graph, async_len); OFF(ac_graph, out); OFF(ac_graph, out_len); OFF(ac_graph, scheds);
  OFF(ac_graph, sched_len); OFF(ac_graph, sched_list_len); OFF(ac_graph, retry); OFF(ac_graph, oom);
  CONST(AC_OK); CONST(AC_BAD_ID); CONST(AC_OOM); CONST(AC_DIRTY); CONST(AC_FREE); CONST(AC_RETRY);
  CONST(AC_KIND_SHIFT); CONST(AC_ASYNC); CONST(AC_SCOPE); CONST(AC_PHASE_POST); CONST(AC_NPHASES);
  CONST(AC_STALE); CONST(AC_STEP_DEPTH); CONST(AC_STEP_DROPPED); CONST(AC_SCHED_SLOT_MASK);
  snprintf(cmd + n, sizeof cmd - (size_t)n, " 2>&1");
  FILE *p = popen(cmd, "r");
  CHECK(p != NULL);
  if (!p) return;
  char line[512];
  while (fgets(line, sizeof line, p)) {
    if (strncmp(line, "cdef ok", 7) != 0) printf("  %s", line);
  }
  int rc = pclose(p);
  CHECK(rc == 0);   /* run `make` first: it generates lua/async/kernel/cdef.lua */
}

/* ===== bad ids ===== */

/* A copy of the graph's node and link arrays, to see that a call changed nothing. */
typedef struct { ac_node *nodes; ac_edge *links; int32_t node_top, link_top, live_nodes, live_links; } snap;

static snap take_snap(const ac_graph *g) {
  snap s = { malloc(sizeof(ac_node) * (size_t)g->node_top), malloc(sizeof(ac_edge) * (size_t)g->link_top),
             g->node_top, g->link_top, g->live_nodes, g->live_links };
  memcpy(s.nodes, g->nodes, sizeof(ac_node) * (size_t)g->node_top);
  memcpy(s.links, g->links, sizeof(ac_edge) * (size_t)g->link_top);
  return s;
}

/* Is the graph exactly as in the snapshot? Frees the snapshot. */
static int same_as(const ac_graph *g, snap s) {
  int same = s.node_top == g->node_top && s.link_top == g->link_top && s.live_nodes == g->live_nodes &&
             s.live_links == g->live_links &&
             memcmp(s.nodes, g->nodes, sizeof(ac_node) * (size_t)g->node_top) == 0 &&
             memcmp(s.links, g->links, sizeof(ac_edge) * (size_t)g->link_top) == 0;
  free(s.nodes);
  free(s.links);
  return same;
}

/* Every entry point that takes a node id refuses ids out of range and freed
   slots with AC_BAD_ID, touching nothing (this crashed: `s.id = 5e7; s()`). */
static void test_bad_ids(void) {
  ac_graph *g = ac_new();
  int32_t sc = ac_sched_new(g, 100);
  ac_id s = new_signal(g, 1);
  ac_id c = new_computed(g, f_plus1, s, 0);
  ac_id e = ac_node_new(g, AC_EFFECT, 0, sc);
  ac_id a = ac_node_new(g, AC_ASYNC, 0, sc);
  read_node(g, c);
  ac_id gone = new_signal(g, 0);
  CHECK(ac_node_free(g, gone) == AC_OK);
  ac_id bad[] = { 0, -1, -5, g->node_top, g->node_top + 1, 50000000, INT32_MAX, INT32_MIN, gone };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ac_id b = bad[i];
    snap before = take_snap(g);
    int all = 1;
    all &= ac_node_free(g, b) == AC_BAD_ID;
    all &= ac_dispose(g, b, 0) == AC_BAD_ID;
    all &= ac_dispose(g, b, 1) == AC_BAD_ID;
    all &= ac_begin(g, b) == AC_BAD_ID;
    all &= ac_end(g, b) == AC_BAD_ID;
    all &= ac_link(g, b, c) == AC_BAD_ID;
    all &= ac_link(g, s, b) == AC_BAD_ID;
    all &= ac_write(g, b) == AC_BAD_ID;
    all &= ac_changed(g, b) == AC_BAD_ID;
    all &= ac_touch(g, b) == AC_BAD_ID;
    all &= ac_notify(g, b) == AC_BAD_ID;
    all &= ac_pull(g, b) == AC_BAD_ID;
    all &= ac_task_start(g, b) == 0;
    all &= ac_task_abort(g, b) == AC_BAD_ID;
    all &= ac_task_commit(g, b, 1) == AC_BAD_ID;
    if (b != 0) all &= ac_node_new(g, AC_EFFECT, b, sc) == AC_BAD_ID;
    if (!all) printf("  bad id %d accepted\n", b);
    CHECK(all);
    CHECK(same_as(g, before));
  }
  /* wrong kinds and arguments */
  CHECK(ac_node_new(g, 5, 0, -1) == AC_BAD_ID && ac_node_new(g, -1, 0, -1) == AC_BAD_ID);
  CHECK(ac_write(g, e) == AC_BAD_ID);      /* an effect has no value to write */
  CHECK(ac_notify(g, s) == AC_BAD_ID);     /* a signal does not watch */
  CHECK(ac_task_start(g, c) == 0 && ac_task_abort(g, e) == AC_BAD_ID && ac_task_commit(g, s, 1) == AC_BAD_ID);
  CHECK(ac_task_start(g, a) == 1);
  CHECK(ac_sched_push(g, sc, AC_NPHASES, 1, 0, 0) == AC_BAD_ID);
  CHECK(ac_sched_push(g, sc, -1, 1, 0, 0) == AC_BAD_ID);
  CHECK(ac_sched_push(g, sc, AC_PHASE_POST, 0, 0, 0) == AC_BAD_ID);     /* handles are > 0 */
  CHECK(ac_sched_push(g, sc, AC_PHASE_POST, -e, 0, 0) == AC_BAD_ID);    /* only the core queues nodes */
  CHECK(ac_sched_push(g, sc, AC_PHASE_POST, 1, -3, 0) == AC_BAD_ID);    /* scopes are >= 0 */
  CHECK(ac_sched_destroy_scope(g, sc, 0) == AC_BAD_ID && ac_sched_revive_scope(g, sc, -1) == AC_BAD_ID);
  CHECK(ac_sched_size(g, sc) == 0);
  CHECK_GRAPH(g);
  ac_free(g);
}

/* ===== robustness of disposal, tasks and handles ===== */

/* Disposing or freeing twice is refused and changes nothing. */
static void test_dispose_twice(void) {
  ac_graph *g = ac_new();
  ac_id s = new_signal(g, 0);
  ac_id scope = ac_node_new(g, AC_SCOPE, 0, -1);
  ac_id e = ac_node_new(g, AC_EFFECT, scope, 0);
  ac_begin(g, e); ac_link(g, s, e); ac_end(g, e);
  CHECK(ac_dispose(g, scope, 0) == 2);
  snap before = take_snap(g);
  CHECK(ac_dispose(g, scope, 0) == AC_BAD_ID && ac_dispose(g, e, 1) == AC_BAD_ID);
  CHECK(ac_node_free(g, e) == AC_BAD_ID && ac_node_free(g, scope) == AC_BAD_ID);
  CHECK(same_as(g, before));
  CHECK(ac_node_free(g, s) == AC_OK && ac_node_free(g, s) == AC_BAD_ID);
  CHECK(g->live_nodes == 0 && g->live_links == 0);
  CHECK_GRAPH(g);
  ac_free(g);
}

/* A node disposed during its run: ac_end answers 2 once, the release frees
   it, and every later call on the id is refused. */
static void test_end_after_dispose(void) {
  ac_graph *g = ac_new();
  int32_t sc = ac_sched_new(g, 100);
  ac_id s = new_signal(g, 0);
  ac_id e = ac_node_new(g, AC_EFFECT, 0, sc);
  ac_begin(g, e);
  ac_link(g, s, e);
  CHECK(ac_dispose(g, e, 0) == 1 && g->out[0] == e);
  CHECK(ac_link(g, s, e) == AC_OK);            /* the run goes on reading: nothing is recorded */
  CHECK(ac_write(g, s) == AC_OK);              /* no notification of a disposed node */
  CHECK(ac_sched_size(g, sc) == 0);
  CHECK_GRAPH(g);
  CHECK(ac_end(g, e) == 2);
  CHECK(g->nodes[s].subs == 0);
  CHECK(ac_dispose(g, e, 0) == 0);             /* the release; nothing else to report */
  CHECK(ac_end(g, e) == AC_BAD_ID && ac_dispose(g, e, 0) == AC_BAD_ID);
  /* freed during its run (ac_node_free is final): ac_end is refused */
  ac_id e2 = ac_node_new(g, AC_EFFECT, 0, sc);
  ac_begin(g, e2);
  ac_link(g, s, e2);
  CHECK(ac_node_free(g, e2) == AC_OK);
  CHECK(ac_end(g, e2) == AC_BAD_ID);
  CHECK(g->live_nodes == 1 && g->live_links == 0);
  CHECK_GRAPH(g);
  ac_free(g);
}

/* Task versions never come back to 0 ("no run"), and a task call on a node
   that is not async is refused. */
static void test_task_versions(void) {
  ac_graph *g = ac_new();
  ac_id a = ac_node_new(g, AC_ASYNC, 0, 0);
  g->nodes[a].version = UINT32_MAX;   /* as a restore could set it */
  uint32_t v = ac_task_start(g, a);
  CHECK(v == 1 && g->nodes[a].running == 1);
  CHECK(ac_task_commit(g, a, 0) == 0 && ac_task_commit(g, a, 1) == 1);
  ac_id c = ac_node_new(g, AC_COMPUTED, 0, -1);
  CHECK(ac_task_start(g, c) == 0 && g->nodes[c].version == 0);
  ac_free(g);
}

/* Every scheduler function refuses a released handle; a slot whose
   generation would wrap is retired, so an old handle never comes back. */
static void test_released_handles(void) {
  ac_graph *g = ac_new();
  int32_t a = ac_sched_new(g, 100);
  CHECK(ac_sched_push(g, a, AC_PHASE_POST, 1, 0, 5) == 1);
  CHECK(ac_sched_release(g, a) == AC_OK);
  CHECK(ac_sched_release(g, a) == AC_BAD_ID);
  CHECK(ac_sched_push(g, a, AC_PHASE_POST, 1, 0, 0) == AC_BAD_ID);
  CHECK(ac_sched_step(g, a) == 0 && ac_sched_size(g, a) == 0);
  CHECK(ac_sched_clear(g, a) == AC_BAD_ID);
  CHECK(ac_sched_destroy_scope(g, a, 1) == AC_BAD_ID && ac_sched_revive_scope(g, a, 1) == AC_BAD_ID);
  CHECK(ac_sched_take_one(g) == -1);           /* a released scheduler is off the list */
  CHECK(ac_sched_step(g, -1) == 0 && ac_sched_step(g, INT32_MAX) == 0 && ac_sched_size(g, INT32_MIN) == 0);
  /* an effect of a released scheduler is not marked queued */
  ac_id s = new_signal(g, 0);
  ac_id e = ac_node_new(g, AC_EFFECT, 0, a);
  ac_begin(g, e); ac_link(g, s, e); ac_end(g, e);
  write_signal(g, s, 1);
  CHECK((g->nodes[e].flags & (AC_QUEUED | AC_RETRY)) == 0);
  int reused = 0;
  for (int i = 0; i < 5000; i++) {
    int32_t h = ac_sched_new(g, 100);
    reused |= h == a;
    ac_sched_release(g, h);
  }
  CHECK(!reused);
  CHECK(g->sched_len == 3);   /* slots 0 and 1 retired after 2048 generations each */
  CHECK_GRAPH(g);
  ac_free(g);
}

/* Job keys of the full int32 ranges: the old 64-bit packing overlapped scope
   and key for values >= 2^30, so two different jobs were taken for one. */
static void test_job_keys_wide(void) {
  ac_graph *g = ac_new();
  int32_t sc = ac_sched_new(g, 100);
  const int32_t B = 1 << 30;
  /* (scope 0, key 2^30 + 1) and (scope 1, key 1) packed to the same key */
  CHECK(ac_sched_push(g, sc, AC_PHASE_EFFECT, 1, 0, B + 1) == 1);
  CHECK(ac_sched_push(g, sc, AC_PHASE_EFFECT, 2, 1, 1) == 1);
  /* (phase 0, scope 2^30, key 7) and (phase 1, scope 0, key 7) too */
  CHECK(ac_sched_push(g, sc, AC_PHASE_BINDING, 3, B, 7) == 1);
  CHECK(ac_sched_push(g, sc, AC_PHASE_LIFECYCLE, 4, 0, 7) == 1);
  CHECK(ac_sched_push(g, sc, AC_PHASE_BINDING, 5, INT32_MAX, INT32_MIN) == 1);
  CHECK(ac_sched_push(g, sc, AC_PHASE_BINDING, 6, INT32_MAX, INT32_MAX) == 1);
  CHECK(ac_sched_push(g, sc, AC_PHASE_BINDING, 7, INT32_MAX, -1) == 1);
  CHECK(ac_sched_push(g, sc, AC_PHASE_BINDING, 8, INT32_MAX, INT32_MIN) == 0);  /* a real duplicate */
  CHECK(ac_sched_push(g, sc, AC_PHASE_BINDING, 9, B, 7) == 0);
  CHECK_GRAPH(g);
  ac_job j;
  int sum = 0, n = 0;
  while (next_job(g, sc, &j) == J_JOB) { sum += j.handle; n++; }
  CHECK(n == 7 && sum == 1 + 2 + 3 + 4 + 5 + 6 + 7);
  CHECK(ac_sched_push(g, sc, AC_PHASE_BINDING, 10, INT32_MAX, INT32_MIN) == 1);   /* free again */
  CHECK(ac_sched_destroy_scope(g, sc, INT32_MAX) == AC_OK);
  CHECK(ac_sched_push(g, sc, AC_PHASE_BINDING, 11, INT32_MAX, 1) == 0);
  CHECK(ac_sched_push(g, sc, AC_PHASE_BINDING, 12, B, 7) == 1);
  CHECK_GRAPH(g);
  ac_free(g);
}

/* Regression (found while writing the fuzz driver): clearing a scheduler
   dropped the QUEUED mark of an effect of another scheduler that reused the
   slot of a freed effect still named in the cleared queue; that effect then
   never ran. */
static void test_clear_keeps_other_scheduler(void) {
  ac_graph *g = ac_new();
  int32_t A = ac_sched_new(g, 100), B = ac_sched_new(g, 100);
  ac_id e1 = ac_node_new(g, AC_EFFECT, 0, A);
  CHECK(ac_notify(g, e1) == AC_OK && ac_sched_size(g, A) == 1);
  CHECK(ac_node_free(g, e1) == AC_OK);
  ac_id e2 = ac_node_new(g, AC_EFFECT, 0, B);
  CHECK(e2 == e1);                             /* the slot is reused */
  CHECK(ac_notify(g, e2) == AC_OK);
  CHECK(ac_sched_clear(g, A) == AC_OK);
  CHECK((g->nodes[e2].flags & AC_QUEUED) != 0);
  CHECK(ac_sched_step(g, B) == -e2);
  CHECK_GRAPH(g);
  ac_free(g);
}

/* ===== pulls under misuse ===== */

/* A ring of computeds (links made by hand; the embedder's cycle check keeps
   it from forming through reads) does not make a pull loop forever. */
static void test_pull_ring_guard(void) {
  ac_graph *g = ac_new();
  ac_id s = new_signal(g, 0);
  ac_id x = ac_node_new(g, AC_COMPUTED, 0, -1);
  ac_id y = ac_node_new(g, AC_COMPUTED, 0, -1);
  ac_id z = ac_node_new(g, AC_COMPUTED, 0, -1);
  ac_begin(g, x); ac_link(g, s, x); ac_link(g, y, x); ac_end(g, x);
  ac_begin(g, y); ac_link(g, x, y); ac_end(g, y);
  ac_begin(g, z); ac_link(g, y, z); ac_end(g, z);
  ac_write(g, s);
  g->nodes[s].flags &= ~AC_DIRTY;   /* as if the write turned out equal */
  CHECK(ac_pull(g, z) == AC_STALE);
  CHECK(g->pull_len == 0 && g->stack_len == 0);
  /* self-loop */
  ac_id w = ac_node_new(g, AC_COMPUTED, 0, -1);
  ac_begin(g, w); ac_link(g, s, w); ac_link(g, w, w); ac_end(g, w);
  ac_write(g, s);
  g->nodes[s].flags &= ~AC_DIRTY;
  g->nodes[w].flags |= AC_PENDING;
  CHECK(ac_pull(g, w) == AC_STALE);
  CHECK_GRAPH(g);
  ac_free(g);
}

/* A node freed while a pull waits for the embedder (an effect disposed by a
   computed that effect's pull asked for): the pull is dropped, never walks
   freed links, and answers CLEAN for its node that is gone. */
static void test_free_during_pull(void) {
  ac_graph *g = ac_new();
  int32_t sc = ac_sched_new(g, 100);
  ac_id s = new_signal(g, 1);
  ac_id c = new_computed(g, f_plus1, s, 0);
  ac_id e = ac_node_new(g, AC_EFFECT, 0, sc);
  ac_begin(g, e); read_node(g, c); ac_link(g, c, e); ac_end(g, e);
  write_signal(g, s, 2);
  ac_id r = ac_pull(g, e);
  CHECK(r == s);                               /* "update s first" */
  CHECK(ac_dispose(g, e, 0) == 1);             /* the update disposes e */
  CHECK(ac_pull_resume(g, 1) == AC_CLEAN);     /* e is gone: nothing to run */
  CHECK(g->pull_len == 0 && g->stack_len == 0);
  CHECK(ac_pull_resume(g, 0) == AC_STALE);     /* no pull open */
  CHECK_GRAPH(g);
  ac_free(g);
}

/* ===== out of memory ===== */

/* A link that cannot be allocated is not dropped silently: ac_link says
   AC_OOM and the run ends dirty, so an effect is queued again and reads the
   dependency next time. */
static void test_link_oom(void) {
  ac_graph *g = ac_new();
  int32_t sc = ac_sched_new(g, 100);
  ac_id s[70];
  for (int i = 0; i < 70; i++) s[i] = new_signal(g, 0);
  ac_id e = ac_node_new(g, AC_EFFECT, 0, sc);
  ac_begin(g, e);
  int ok = 1;
  for (int i = 0; i < 63; i++) ok &= ac_link(g, s[i], e) == AC_OK;   /* links 1..63 fit */
  CHECK(ok);
  ac_alloc_reset(1, 1);
  CHECK(ac_link(g, s[63], e) == AC_OOM);
  ac_alloc_reset(0, 0);
  CHECK(g->live_links == 63);
  CHECK(ac_end(g, e) == 1);                    /* again */
  CHECK((g->nodes[e].flags & (AC_DIRTY | AC_QUEUED)) == (AC_DIRTY | AC_QUEUED));
  CHECK(ac_sched_step(g, sc) == -e);
  ac_begin(g, e);
  for (int i = 0; i < 64; i++) ac_link(g, s[i], e);
  CHECK(ac_end(g, e) == 0 && g->live_links == 64);
  CHECK_GRAPH(g);
  /* a computed that lost a link stays dirty and its readers are told */
  ac_id c = ac_node_new(g, AC_COMPUTED, 0, -1);
  ac_id e2 = ac_node_new(g, AC_EFFECT, 0, sc);
  ac_begin(g, c); ac_link(g, s[0], c); ac_end(g, c);
  ac_begin(g, e2); ac_link(g, c, e2); ac_end(g, e2);
  while (ac_idset_lowest(&g->free_links) || g->link_top < g->link_cap) {   /* fill the link array */
    ac_id x = ac_node_new(g, AC_COMPUTED, 0, -1);
    ac_begin(g, x); ac_link(g, s[1], x); ac_end(g, x);
  }
  ac_begin(g, c);
  ac_link(g, s[0], c);                         /* reused: no allocation */
  ac_alloc_reset(1, 1);
  int r = ac_link(g, s[2], c);
  ac_alloc_reset(0, 0);
  CHECK(r == AC_OOM);
  CHECK(ac_end(g, c) == 1);
  CHECK((g->nodes[c].flags & AC_DIRTY) && (g->nodes[e2].flags & (AC_PENDING | AC_QUEUED)) == (AC_PENDING | AC_QUEUED));
  CHECK_GRAPH(g);
  ac_free(g);
}

/* A notification whose queue push runs out of memory is kept (AC_RETRY),
   not marked QUEUED, and queued by ac_retry once memory is back. */
static void test_notify_oom(void) {
  ac_graph *g = ac_new();
  int32_t sc = ac_sched_new(g, 100);
  ac_id s = new_signal(g, 0);
  enum { N = 40 };
  ac_id e[N];
  for (int i = 0; i < N; i++) {
    e[i] = ac_node_new(g, AC_EFFECT, 0, sc);
    ac_begin(g, e[i]); ac_link(g, s, e[i]); ac_end(g, e[i]);
  }
  ac_id a = ac_node_new(g, AC_ASYNC, 0, sc);
  ac_begin(g, a); ac_link(g, s, a); ac_end(g, a);
  ac_alloc_reset(1, 1);                        /* every allocation fails */
  CHECK(ac_write(g, s) == AC_OK);
  int queued = ac_sched_size(g, sc);
  CHECK(queued == 0 && g->retry == N + 1);     /* the queue and the async list could not grow */
  CHECK((g->nodes[e[N - 1]].flags & (AC_QUEUED | AC_RETRY | AC_PENDING)) == (AC_RETRY | AC_PENDING));
  CHECK_GRAPH(g);
  CHECK(ac_retry(g) == AC_OOM && g->retry == N - queued + 1);
  CHECK(ac_write(g, s) == AC_OK);              /* nothing queued twice */
  CHECK_GRAPH(g);
  ac_alloc_reset(0, 0);
  CHECK(ac_retry(g) == AC_OK && g->retry == 0);
  CHECK(ac_sched_size(g, sc) == N && g->async_len == 1);
  int32_t h, n = 0;
  while ((h = ac_sched_step(g, sc)) != 0) n += h < 0;
  CHECK(n == N);
  CHECK(ac_async_drain(g) == 1 && g->out[0] == a);
  CHECK_GRAPH(g);
  /* a drain that cannot grow g->out keeps the notified nodes: more entries
     than node slots (async nodes freed while notified, slots reused) */
  ac_id last = 0;
  for (int i = 0; i < 70; i++) {
    if (last) ac_node_free(g, last);
    last = ac_node_new(g, AC_ASYNC, 0, sc);
    ac_notify(g, last);
  }
  CHECK(g->async_len > g->out_cap);
  ac_alloc_reset(1, 1);
  CHECK(ac_async_drain(g) == AC_OOM && g->async_len == 70);
  CHECK_GRAPH(g);
  ac_alloc_reset(0, 0);
  CHECK(ac_async_drain(g) == 1 && g->out[0] == last && g->async_len == 0);
  CHECK_GRAPH(g);
  ac_free(g);
}

/* ===== every allocation failing in turn ===== */

static ac_id wl[200];    /* the workload's nodes, 0 when creation failed */

/* Reads `id` if it exists (the workload's computeds read through this). */
static long wl_read(ac_graph *g, ac_id id) {
  return id > 0 && !(g->nodes[id].flags & AC_FREE) ? read_node(g, id) : 0;
}
static long wl_plus1(ac_graph *g, ac_id self) { return wl_read(g, arg1[self]) + 1; }
static long wl_sum(ac_graph *g, ac_id self) { return wl_read(g, arg1[self]) + wl_read(g, arg2[self]); }
static long wl_branch(ac_graph *g, ac_id self) {
  return wl_read(g, arg1[self]) % 2 ? wl_read(g, arg2[self]) : -1;
}

/* Creates a node for the workload; 0 if the core refused. */
static ac_id wl_new(ac_graph *g, int kind, ac_id owner, int32_t sc, compute_fn f, ac_id a, ac_id b) {
  ac_id id = ac_node_new(g, kind, owner, sc);
  if (id <= 0) return 0;
  fn[id] = f;
  arg1[id] = a;
  arg2[id] = b;
  val[id] = seen_val[id] = 0;
  runs[id] = 0;
  return id;
}

/* Runs a queued effect as an embedder would: skip if clean, dispose its
   children, rerun it tracked; the first effect creates a child each run. */
static void wl_run_effect(ac_graph *g, ac_id id, int32_t sc) {
  uint32_t f = g->nodes[id].flags;
  if (f & AC_FREE) return;
  if (!(f & AC_DIRTY) && (!(f & AC_PENDING) || !pull(g, id))) return;
  ac_dispose(g, id, 1);
  ac_id prev = active;
  active = id;
  ac_begin(g, id);
  runs[id]++;
  if (fn[id]) fn[id](g, id);
  if (id == wl[8]) {
    ac_id child = wl_new(g, AC_EFFECT, id, sc, wl_sum, wl[2], wl[3]);
    if (child) ac_notify(g, child);
  }
  int r = ac_end(g, id);
  active = prev;
  if (r == 2) ac_dispose(g, id, 0);
}

/* Flushes the scheduler, running effects; embedder jobs are just taken. */
static void wl_flush(ac_graph *g, int32_t sc) {
  ac_retry(g);
  int32_t h;
  while ((h = ac_sched_step(g, sc)) != 0) {
    if (h < 0 && h > AC_STEP_DROPPED) wl_run_effect(g, -h, sc);
  }
  while (ac_sched_take_one(g) >= 0) {}
  int32_t n = ac_async_drain(g);
  for (int32_t i = 0; i < n; i++) {
    ac_id a = g->out[i];
    uint32_t v = ac_task_start(g, a);
    ac_task_commit(g, a, v);
    ac_touch(g, a);
  }
}

/* A scripted workload touching every allocating path: node, link, queue,
   key set, scope set, async list, pull frames and stack, scheduler slots. */
static void workload(ac_graph *g, int checks) {
  memset(wl, 0, sizeof wl);
  int32_t sc = ac_sched_new(g, 100);
  if (checks) CHECK_GRAPH(g);
  for (int i = 0; i < 4; i++) wl[i] = wl_new(g, AC_SIGNAL, 0, -1, NULL, 0, 0);
  wl[4] = wl_new(g, AC_COMPUTED, 0, -1, wl_plus1, wl[0], 0);
  wl[5] = wl_new(g, AC_COMPUTED, 0, -1, wl_sum, wl[4], wl[1]);
  wl[6] = wl_new(g, AC_COMPUTED, 0, -1, wl_branch, wl[2], wl[5]);
  wl[7] = wl_new(g, AC_SCOPE, 0, -1, NULL, 0, 0);
  wl[8] = wl_new(g, AC_EFFECT, wl[7], sc, wl_sum, wl[6], wl[5]);
  wl[9] = wl_new(g, AC_EFFECT, wl[7], sc, wl_plus1, wl[0], 0);
  wl[10] = wl_new(g, AC_ASYNC, 0, sc, wl_sum, wl[1], wl[4]);
  /* enough nodes, links and queued effects to grow every array */
  for (int i = 20; i < 100; i++) wl[i] = wl_new(g, AC_COMPUTED, 0, -1, wl_sum, wl[i - 1], wl[0]);
  wl[100] = wl_new(g, AC_EFFECT, wl[7], sc, wl_plus1, wl[99], 0);
  for (int i = 101; i < 130; i++) wl[i] = wl_new(g, AC_EFFECT, 0, sc, wl_plus1, wl[1], 0);
  for (int i = 8; i < 130; i++) if (i == 8 || i == 9 || i >= 100) if (wl[i]) ac_notify(g, wl[i]);
  if (wl[10]) {
    ac_id prev = active;
    active = wl[10];
    ac_begin(g, wl[10]);
    fn[wl[10]](g, wl[10]);
    ac_end(g, wl[10]);
    active = prev;
  }
  wl_flush(g, sc);
  if (checks) CHECK_GRAPH(g);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 4; i++) if (wl[i]) write_signal(g, wl[i], val[wl[i]] + 1 + i);
    if (checks) CHECK_GRAPH(g);
    for (int k = 1; k <= 20; k++) ac_sched_push(g, sc, k % AC_NPHASES, 100 + k, (1 << 30) + round, k);
    ac_sched_destroy_scope(g, sc, (1 << 30) + 1);
    wl_flush(g, sc);
    ac_sched_revive_scope(g, sc, (1 << 30) + 1);
    if (wl[6]) wl_read(g, wl[6]);
    if (checks) CHECK_GRAPH(g);
  }
  int32_t sc2 = ac_sched_new(g, 100);
  ac_sched_push(g, sc2, AC_PHASE_POST, 1, 0, 0);
  ac_sched_release(g, sc2);
  if (wl[8]) ac_dispose(g, wl[8], 1);
  if (wl[7]) ac_dispose(g, wl[7], 0);
  if (wl[5]) ac_node_free(g, wl[5]);
  for (int i = 101; i < 130; i += 2) if (wl[i]) ac_dispose(g, wl[i], 0);
  for (int i = 0; i < 4; i++) if (wl[i]) write_signal(g, wl[i], val[wl[i]] + 1);
  wl_flush(g, sc);
  if (checks) CHECK_GRAPH(g);
}

/* Fails allocation 1, 2, 3, ... of the workload in turn (then also every
   allocation after it): each call either succeeds or fails with the graph
   consistent, and once memory is back the deferred notifications go out. */
static void test_oom_every_allocation(void) {
  ac_alloc_reset(0, 0);
  ac_free(ac_new());
  long in_new = ac_alloc_count;   /* a run failing one of these has no graph */
  ac_alloc_reset(0, 0);
  ac_graph *g0 = ac_new();
  workload(g0, 1);
  long total = ac_alloc_count;
  CHECK(runs[wl[8]] >= 3 && runs[wl[100]] >= 2 && runs[wl[101]] >= 4);   /* the effects did run */
  ac_free(g0);
  CHECK(total > 20);
  printf("oom test: %ld allocations in the workload\n", total);
  int broken = 0, runs_done = 0;
  for (int after = 0; after <= 1; after++) {
    for (long n = 1; n <= total + 1; n++) {
      ac_alloc_reset(n, after);
      ac_graph *g = ac_new();
      if (!g) continue;   /* the graph itself did not fit */
      workload(g, 0);
      char msg[200];
      if (ac_check(g, msg, sizeof msg)) {
        if (!broken++) printf("FAIL oom at allocation %ld%s: %s\n", n, after ? "+" : "", msg);
      }
      ac_alloc_reset(0, 0);
      if (ac_retry(g) != AC_OK || g->retry != 0) broken++;
      if (ac_check(g, msg, sizeof msg)) broken++;
      runs_done++;
      ac_free(g);
    }
  }
  CHECK(broken == 0);
  CHECK(runs_done == 2 * (total + 1 - in_new));
  ac_alloc_reset(0, 0);
}

int main(void) {
  test_sizes();
  test_diamond();
  test_cutoff();
  test_dynamic();
  test_deep_chain();
  test_wide_fanout();
  test_dispose_order();
  test_free_and_reuse();
  test_sched_phases();
  test_sched_keys_scopes();
  test_sched_depth();
  test_sched_destroy_then_revive();
  test_pull_ring();
  test_effect_owner_first();
  test_tasks();
  test_dispose_running();
  test_sched_handles();
  test_cdef();
  test_bad_ids();
  test_dispose_twice();
  test_end_after_dispose();
  test_task_versions();
  test_released_handles();
  test_job_keys_wide();
  test_clear_keeps_other_scheduler();
  test_pull_ring_guard();
  test_free_during_pull();
  test_link_oom();
  test_notify_oom();
  test_oom_every_allocation();
  test_lowest_free();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
