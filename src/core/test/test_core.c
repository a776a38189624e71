/*
 * test_core.c: tests of the C core with a tiny embedder written in C.
 * Prints one line per failed check and ends with "N passed, N failed".
 */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond) check((cond), #cond, __FILE__, __LINE__)
static void check(int ok, const char *what, const char *file, int line) {
  if (ok) {
    passed++;
  } else {
    failed++;
    printf("FAIL %s:%d: %s\n", file, line, what);
  }
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
  while (ac_sched_next(g, sched, &j) == AC_SCHED_JOB) n++;
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

static void test_sched_phases(void) {
  ac_graph *g = ac_new();
  int32_t s = ac_sched_new(g, 100);
  ac_sched_push(g, s, AC_PHASE_POST, 1, 0, 0);
  ac_sched_push(g, s, AC_PHASE_ASYNC, 2, 0, 0);
  ac_sched_push(g, s, AC_PHASE_BINDING, 3, 0, 0);
  ac_sched_push(g, s, AC_PHASE_EFFECT, 4, 0, 0);
  ac_job j;
  int order[8], n = 0;
  while (ac_sched_next(g, s, &j) == AC_SCHED_JOB) {
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
  while ((r = ac_sched_next(g, s, &j)) != AC_SCHED_DONE) {
    if (r == AC_SCHED_JOB) got += j.handle;
    if (r == AC_SCHED_DROPPED) dropped++;
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
  while (ac_sched_next(g, s, &j) == AC_SCHED_JOB) n++;
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
  while ((r = ac_sched_next(g, s, &j)) != AC_SCHED_DONE) {
    if (r == AC_SCHED_JOB) got += j.handle;
    if (r == AC_SCHED_DROPPED) dropped += j.handle;
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
  while ((r = ac_sched_next(g, s, &j)) == AC_SCHED_JOB) {
    jobs++;
    ac_sched_push(g, s, AC_PHASE_EFFECT, 1, 0, 0); /* requeues itself forever */
  }
  CHECK(r == AC_SCHED_DEPTH && jobs == 10);
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
  CHECK(ac_sched_next(g, s, &j) == AC_SCHED_JOB && j.handle == -outer);
  CHECK(ac_sched_next(g, s, &j) == AC_SCHED_JOB && j.handle == -inner);
  CHECK(ac_sched_next(g, s, &j) == AC_SCHED_DONE);
  ac_free(g);
}

static void test_tasks(void) {
  ac_graph *g = ac_new();
  ac_id a = ac_node_new(g, AC_ASYNC, 0, 0);
  uint32_t v1 = ac_task_start(g, a);
  uint32_t v2 = ac_task_start(g, a);
  CHECK(v1 == 1 && v2 == 2);
  CHECK(!ac_task_current(g, a, v1) && ac_task_current(g, a, v2));
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
  CHECK(ac_sched_push(g, a, AC_PHASE_POST, 1, 0, 0) == 0);
  CHECK(ac_sched_take_one(g) == -1);
  /* many create/release cycles reuse slots instead of growing */
  int32_t len = g->sched_len;
  for (int i = 0; i < 10000; i++) ac_sched_release(g, ac_sched_new(g, 100));
  CHECK(g->sched_len <= len + 1);
  ac_free(g);
}

static void test_sizes(void) {
  CHECK(ac_node_size() <= 64);
  CHECK(ac_link_size() <= 48);
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
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
