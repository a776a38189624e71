/*
 * fuzz_core.c: libFuzzer driver of the C core (`make fuzz-core`).
 *
 * The input is a program: each op byte picks a core call, the following
 * bytes its arguments. Ids are picked among the nodes created so far (freed
 * ones included) or from a list of bad ids; scheduler handles likewise.
 * Calls are made in any order, also against the embedder protocol (a pull
 * resumed without an update, ac_end without ac_begin, a node freed under a
 * paused pull), because nothing reachable from the FFI may crash the
 * process. An op can make one of the next allocations fail. After every op
 * ac_check must hold; at the end, with memory back, ac_retry must queue
 * every deferred notification and the graph is freed (ASan checks leaks).
 *
 * Replay a crash: build/fuzz_core crash-<hash>; FUZZ_CORE_TRACE=1 prints
 * the ops.
 */
#include "core.h"
#include "layout.h"
#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The program being interpreted and the embedder's view of the graph. */
typedef struct {
  const uint8_t *p, *end;
  ac_graph *g;
  ac_id ids[256];
  int nids;
  int32_t scheds[8];
  int nscheds;
  ac_id asked;          /* the node the last pull step asked for, 0 if none */
  int trace;
} prog;

/* The next byte of the program (0 once it is used up). */
static uint8_t next(prog *P) {
  return P->p < P->end ? *P->p++ : 0;
}

/* The next 32 bits of the program. */
static int32_t next32(prog *P) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v = (v << 8) | next(P);
  return (int32_t)v;
}

/* A node id: mostly one the program created, sometimes a bad one. */
static ac_id pick(prog *P) {
  uint8_t b = next(P);
  if (b < 0xF0 && P->nids) return P->ids[b % P->nids];
  const ac_id bad[] = { 0, -1, P->g->node_top, P->g->node_top + 1, INT32_MAX, INT32_MIN,
                        50000000, -50000000, 1, 2 };
  return bad[b % (sizeof bad / sizeof bad[0])];
}

/* A scheduler handle: mostly one the program created, sometimes a bad one. */
static int32_t pick_sched(prog *P) {
  uint8_t b = next(P);
  if (b < 0xE0 && P->nscheds) return P->scheds[b % P->nscheds];
  const int32_t bad[] = { -1, 0, 1, 1 << 20, (1 << 20) | 1, INT32_MAX, INT32_MIN, -3 };
  return bad[b % (sizeof bad / sizeof bad[0])];
}

/* A scope or key: small values, and values of 2^30 and more. */
static int32_t pick_key(prog *P) {
  uint8_t b = next(P);
  switch (b >> 6) {
    case 0: return 0;
    case 1: return b & 7;
    case 2: return (1 << 30) + (b & 3);
    default: return next32(P);
  }
}

/* Remembers a new node id. */
static void add_id(prog *P, ac_id id) {
  if (id <= 0) return;
  if (P->nids < (int)(sizeof P->ids / sizeof P->ids[0])) P->ids[P->nids++] = id;
  else P->ids[id % P->nids] = id;
}

/* The embedder's update of `id`: a signal clears DIRTY, anything else is
   rerun tracked, reading up to three nodes the program picks. */
static int update(prog *P, ac_id id) {
  ac_graph *g = P->g;
  if (id <= 0 || id >= g->node_top || (g->nodes[id].flags & AC_FREE)) return 0;
  if (AC_KIND(g->nodes[id].flags) == AC_SIGNAL) {
    g->nodes[id].flags &= ~(uint32_t)AC_DIRTY;
    return next(P) & 1;
  }
  ac_begin(g, id);
  int n = next(P) % 4;
  for (int i = 0; i < n; i++) ac_link(g, pick(P), id);
  int r = ac_end(g, id);
  if (r == 2) ac_dispose(g, id, 0);
  return next(P) & 1;
}

/* Aborts with the first violated invariant. */
static void check_or_die(prog *P, int op) {
  char msg[256];
  if (ac_check(P->g, msg, sizeof msg)) {
    fprintf(stderr, "invariant broken after op %d: %s\n", op, msg);
    abort();
  }
}

/* Runs one op; returns 0 when the program is used up. */
static int step(prog *P) {
  if (P->p >= P->end) return 0;
  ac_graph *g = P->g;
  int op = next(P) % 27;
  ac_id a, b;
  int32_t s;
  if (P->trace) fprintf(stderr, "op %d\n", op);
  switch (op) {
    case 0: case 1: {
      int kind = next(P) % 6;       /* 5: a bad kind */
      add_id(P, ac_node_new(g, kind, (next(P) & 1) ? pick(P) : 0, pick_sched(P)));
      break;
    }
    case 2: ac_node_free(g, pick(P)); break;
    case 3: a = pick(P); ac_dispose(g, a, next(P) & 1); break;
    case 4: ac_begin(g, pick(P)); break;
    case 5: a = pick(P); b = pick(P); ac_link(g, a, b); break;
    case 6: a = pick(P); if (ac_end(g, a) == 2) ac_dispose(g, a, 0); break;
    case 7: ac_write(g, pick(P)); break;
    case 8: ac_changed(g, pick(P)); break;
    case 9: ac_touch(g, pick(P)); break;
    case 10: ac_notify(g, pick(P)); break;
    case 11: {
      ac_id r = ac_pull(g, pick(P));
      P->asked = r > 0 ? r : 0;
      break;
    }
    case 12: {   /* resume as the protocol says: update what was asked first */
      int changed = P->asked ? update(P, P->asked) : next(P) & 1;
      ac_id r = ac_pull_resume(g, changed);
      P->asked = r > 0 ? r : 0;
      break;
    }
    case 13: {   /* resume without updating */
      ac_id r = ac_pull_resume(g, next(P) & 1);
      P->asked = r > 0 ? r : 0;
      break;
    }
    case 14: ac_pull_abort(g); P->asked = 0; break;
    case 15: {
      int32_t n = ac_async_drain(g);
      for (int32_t i = 0; i < n; i++) {
        uint32_t v = ac_task_start(g, g->out[i]);
        if (next(P) & 1) ac_task_commit(g, g->out[i], v);
      }
      break;
    }
    case 16:
      a = pick(P);
      switch (next(P) % 3) {
        case 0: ac_task_start(g, a); break;
        case 1: ac_task_abort(g, a); break;
        default: ac_task_commit(g, a, (uint32_t)next(P)); break;
      }
      break;
    case 17:
      s = ac_sched_new(g, 1 + next(P) % 4);
      if (s >= 0 && P->nscheds < 8) P->scheds[P->nscheds++] = s;
      break;
    case 18: ac_sched_release(g, pick_sched(P)); break;
    case 19: {
      s = pick_sched(P);
      int32_t phase = (int32_t)(next(P) % 7) - 1;
      int32_t handle = (next(P) & 7) ? 1 + next(P) : (int32_t)next32(P);
      int32_t scope = pick_key(P);
      ac_sched_push(g, s, phase, handle, scope, pick_key(P));
      break;
    }
    case 20: {   /* step a flush, running effects as the embedder would */
      s = pick_sched(P);
      int n = next(P) % 8;
      for (int i = 0; i < n; i++) {
        int32_t h = ac_sched_step(g, s);
        if (h == 0 || h == AC_STEP_DEPTH) break;
        if (h < 0 && h != AC_STEP_DROPPED) {
          ac_id id = -h;
          ac_id r = (g->nodes[id].flags & AC_PENDING) ? ac_pull(g, id) : AC_STALE;
          while (r > 0) r = ac_pull_resume(g, update(P, r));
          if (r == AC_STALE) {
            if (next(P) & 1) ac_dispose(g, id, 1);
            update(P, id);
          }
        }
      }
      break;
    }
    case 21: while (ac_sched_take_one(g) >= 0) {} break;
    case 22:
      s = pick_sched(P);
      switch (next(P) % 3) {
        case 0: if (ac_sched_size(g, s) & 1) ac_sched_clear(g, s); break;
        case 1: ac_sched_destroy_scope(g, s, pick_key(P)); break;
        default: ac_sched_revive_scope(g, s, pick_key(P)); break;
      }
      break;
    case 23: ac_retry(g); break;
    case 24: update(P, pick(P)); break;
    case 25: ac_alloc_reset(1 + next(P) % 8, next(P) & 1); break;   /* fail an allocation soon */
    case 26: {   /* many nodes and links at once, so the arrays grow (and can fail to) */
      int n = next(P) % 48;
      ac_id dep = pick(P);
      for (int i = 0; i < n; i++) {
        ac_id c = ac_node_new(g, AC_COMPUTED, 0, -1);
        if (c <= 0) break;
        add_id(P, c);
        ac_begin(g, c);
        ac_link(g, dep, c);
        if (i & 1) ac_link(g, P->ids[(i * 7) % P->nids], c);
        ac_end(g, c);
        dep = c;
      }
      break;
    }
    default: break;
  }
  check_or_die(P, op);
  return 1;
}

/* One program. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  prog P;
  memset(&P, 0, sizeof P);
  P.p = data;
  P.end = data + size;
  P.trace = getenv("FUZZ_CORE_TRACE") != NULL;
  ac_alloc_reset(0, 0);
  P.g = ac_new();
  if (!P.g) return 0;
  P.scheds[P.nscheds++] = ac_sched_new(P.g, 100);
  while (step(&P)) {}
  /* memory is back: every deferred notification can be queued */
  ac_alloc_reset(0, 0);
  if (ac_retry(P.g) != AC_OK || P.g->retry != 0) {
    fprintf(stderr, "ac_retry failed with memory available\n");
    abort();
  }
  check_or_die(&P, -1);
  ac_free(P.g);
  return 0;
}
