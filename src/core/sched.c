/*
 * sched.c: the phased scheduler.
 *
 * A flush walks the phases binding -> lifecycle -> effect -> async -> post in
 * passes. Within a pass a phase runs the jobs it had when the phase began;
 * jobs queued into a later phase run in the same pass, jobs queued into the
 * current or an earlier phase in the next one. `post` runs only when no
 * earlier phase has work. Keyed jobs are deduplicated on (phase, scope, key)
 * while pending; jobs of destroyed scopes are dropped. The flush is a step
 * machine: ac_sched_next hands out one job at a time.
 */
#include "core_int.h"

#include <stdlib.h>
#include <string.h>

/* ===== a set of nonzero uint64 keys (linear probing) ===== */

static uint32_t set_hash(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return (uint32_t)k;
}

/* Finds the slot of `k`, or the empty slot where it would go. */
static int32_t set_slot(const ac_set *s, uint64_t k) {
  uint32_t mask = (uint32_t)s->cap - 1, i = set_hash(k) & mask;
  while (s->slots[i] && s->slots[i] != k) i = (i + 1) & mask;
  return (int32_t)i;
}

/* Is `k` in the set? */
static int set_has(const ac_set *s, uint64_t k) {
  return s->cap && s->slots[set_slot(s, k)] == k;
}

/* Adds `k`; returns 1 if added, 0 if present, AC_OOM (set unchanged). */
static int set_add(ac_graph *g, ac_set *s, uint64_t k) {
  if ((s->count + 1) * 2 > s->cap) {
    int32_t ncap = s->cap ? s->cap * 2 : 16;
    uint64_t *ns = ncap > INT32_MAX / 2 ? NULL : AC_CALLOC((size_t)ncap, sizeof *ns);
    if (!ns) {
      g->oom++;
      return AC_OOM;
    }
    ac_set old = *s;
    s->slots = ns;
    s->cap = ncap;
    for (int32_t i = 0; i < old.cap; i++)
      if (old.slots[i]) s->slots[set_slot(s, old.slots[i])] = old.slots[i];
    free(old.slots);
  }
  int32_t i = set_slot(s, k);
  if (s->slots[i] == k) return 0;
  s->slots[i] = k;
  s->count++;
  return 1;
}

/* Removes `k` (backward-shift deletion keeps probe chains intact). */
static void set_del(ac_set *s, uint64_t k) {
  if (!s->cap) return;
  uint32_t mask = (uint32_t)s->cap - 1;
  uint32_t i = (uint32_t)set_slot(s, k);
  if (s->slots[i] != k) return;
  s->slots[i] = 0;
  s->count--;
  for (uint32_t j = (i + 1) & mask; s->slots[j]; j = (j + 1) & mask) {
    uint32_t home = set_hash(s->slots[j]) & mask;
    /* move slots[j] into the hole at i when its home is not in (i, j] */
    if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
      s->slots[i] = s->slots[j];
      s->slots[j] = 0;
      i = j;
    }
  }
}

/* Frees a set's memory. */
static void set_free(ac_set *s) {
  free(s->slots);
  memset(s, 0, sizeof *s);
}

/* The key of a keyed job in its phase's pending set: scope and key side by
   side, so no two (scope, key) pairs of the full int32 ranges share one (the
   phase picks the set). Nonzero because key is. */
static uint64_t job_key(int32_t scope, int32_t key) {
  return ((uint64_t)(uint32_t)scope << 32) | (uint64_t)(uint32_t)key;
}

/* The key of a scope in the dead-scope set (nonzero). */
static uint64_t scope_key(int32_t scope) {
  return (uint64_t)(uint32_t)scope | (1ULL << 63);
}

/* ===== scheduler lifetime ===== */

/* A scheduler handle is (generation << 20) | slot: a released slot gets a new
   generation, so a stale handle (an effect of a runtime that is gone) can
   never reach the scheduler that reuses the slot. A slot whose generation
   would wrap around is retired instead of reused. */
#define SCHED_GEN_MASK 0x7FF

/* The scheduler of handle `h`, or NULL if it was released or never existed. */
static ac_sched *sched_of(ac_graph *g, int32_t h) {
  if (h < 0) return NULL;
  int32_t i = h & AC_SCHED_SLOT_MASK;
  if (i >= g->sched_len) return NULL;
  ac_sched *s = &g->scheds[i];
  if (!s->in_use || s->gen != ((uint32_t)h >> AC_SCHED_SLOT_BITS)) return NULL;
  return s;
}

/* Creates a scheduler; returns its handle or AC_OOM. Released slots are
   reused through a free list. The list of schedulers with work gets room for
   every slot here, so queueing a job never has to grow it. */
int32_t ac_sched_new(ac_graph *g, int32_t max_depth) {
  int32_t i;
  if (g->sched_free) {
    i = g->sched_free - 1;
    g->sched_free = g->scheds[i].next_free;
  } else {
    if (g->sched_len > AC_SCHED_SLOT_MASK) return AC_OOM;
    if (g->sched_len == g->sched_cap &&
        !ac_grow(g, (void **)&g->scheds, &g->sched_cap, g->sched_len + 1, sizeof(ac_sched)))
      return AC_OOM;
    if (g->sched_list_cap <= g->sched_len &&
        !ac_grow(g, (void **)&g->sched_list, &g->sched_list_cap, g->sched_len + 1, sizeof(int32_t)))
      return AC_OOM;
    i = g->sched_len++;
  }
  ac_sched *s = &g->scheds[i];
  uint32_t gen = s->gen;
  memset(s, 0, sizeof *s);
  s->gen = gen;
  s->in_use = 1;
  s->max_depth = max_depth > 0 ? max_depth : 100;
  return (int32_t)((gen << AC_SCHED_SLOT_BITS) | (uint32_t)i);
}

/* Frees the memory of the scheduler in slot i (queued jobs are dropped). */
static void sched_free_slot(ac_graph *g, int32_t i) {
  ac_sched *s = &g->scheds[i];
  for (int p = 0; p < AC_NPHASES; p++) {
    free(s->q[p].jobs);
    set_free(&s->pending[p]);
  }
  set_free(&s->dead_scopes);
  uint32_t gen = (s->gen + 1) & SCHED_GEN_MASK;
  int listed = s->listed;
  memset(s, 0, sizeof *s);
  s->gen = gen;
  if (listed) { /* drop it from the list of schedulers with work */
    for (int32_t k = 0; k < g->sched_list_len; k++)
      if ((g->sched_list[k] & AC_SCHED_SLOT_MASK) == i) {
        g->sched_list[k] = g->sched_list[--g->sched_list_len];
        break;
      }
  }
  if (gen == 0) return;   /* every generation used: retire the slot */
  s->next_free = g->sched_free;
  g->sched_free = i + 1;
}

/* Releases a scheduler; its handle becomes invalid and its slot reusable. */
int ac_sched_release(ac_graph *g, int32_t si) {
  if (!sched_of(g, si)) return AC_BAD_ID;
  sched_free_slot(g, si & AC_SCHED_SLOT_MASK);
  return AC_OK;
}

/* Frees every scheduler (graph teardown). */
void ac_sched_free_all(ac_graph *g) {
  for (int32_t i = 0; i < g->sched_len; i++)
    if (g->scheds[i].in_use) sched_free_slot(g, i);
}

/* ===== queues ===== */

/* Appends a job to phase `phase` of `s` (handle si): 1 if queued, 0 if
   dropped (dead scope, duplicate key), AC_OOM with nothing changed. */
static int push(ac_graph *g, ac_sched *s, int32_t si, int32_t phase, int32_t handle,
                int32_t scope, int32_t key) {
  if (scope && set_has(&s->dead_scopes, scope_key(scope))) return 0;
  if (key) {
    int r = set_add(g, &s->pending[phase], job_key(scope, key));
    if (r <= 0) return r;
  }
  ac_queue *q = &s->q[phase];
  if (q->len == q->cap) {
    if (q->head > 0 && q->head >= q->cap / 2) {
      memmove(q->jobs, q->jobs + q->head, (size_t)(q->len - q->head) * sizeof(ac_job));
      if (s->flushing && s->phase == phase) s->phase_end -= q->head;
      q->len -= q->head;
      q->head = 0;
    } else if (!ac_grow(g, (void **)&q->jobs, &q->cap, q->len + 1, sizeof(ac_job))) {
      if (key) set_del(&s->pending[phase], job_key(scope, key));
      return AC_OOM;
    }
  }
  ac_job *j = &q->jobs[q->len++];
  j->handle = handle;
  j->scope = scope;
  j->key = key;
  j->phase = phase;
  if (!s->listed) {
    /* never full: ac_sched_new keeps room for every slot */
    s->listed = 1;
    g->sched_list[g->sched_list_len++] = si;
  }
  return 1;
}

/* Queues an embedder job; see core.h. */
int ac_sched_push(ac_graph *g, int32_t si, int32_t phase, int32_t handle, int32_t scope, int32_t key) {
  ac_sched *s = sched_of(g, si);
  if (!s || phase < 0 || phase >= AC_NPHASES || handle <= 0 || scope < 0) return AC_BAD_ID;
  return push(g, s, si, phase, handle, scope, key);
}

/* Queues the effect `id` into the effect phase of scheduler si: 1 if queued,
   0 if the scheduler is gone, AC_OOM. */
int ac_sched_queue_node(ac_graph *g, int32_t si, ac_id id) {
  ac_sched *s = sched_of(g, si);
  if (!s) return 0;
  return push(g, s, si, AC_PHASE_EFFECT, -id, 0, 0);
}

/* Jobs waiting in all phases of `s`. */
static int32_t sched_size(const ac_sched *s) {
  int32_t n = 0;
  for (int p = 0; p < AC_NPHASES; p++) n += s->q[p].len - s->q[p].head;
  return n;
}

/* Jobs waiting in all phases. */
int32_t ac_sched_size(ac_graph *g, int32_t si) {
  ac_sched *s = sched_of(g, si);
  return s ? sched_size(s) : 0;
}

/* Jobs of a queue not handed out yet. */
static int32_t waiting(const ac_queue *q) { return q->len - q->head; }

/* Drops every waiting job of `s` (handle si). Effects lose their queued
   mark; a job of a freed effect whose slot now holds an effect of another
   scheduler leaves that one alone. */
static void sched_clear(ac_graph *g, ac_sched *s, int32_t si) {
  for (int p = 0; p < AC_NPHASES; p++) {
    ac_queue *q = &s->q[p];
    for (int32_t i = q->head; i < q->len; i++) {
      int32_t h = q->jobs[i].handle;
      if (h < 0 && -h < g->node_top && g->nodes[-h].sched == si) g->nodes[-h].flags &= ~AC_QUEUED;
    }
    q->head = q->len = 0;
    set_free(&s->pending[p]);
  }
  s->flushing = 0;
}

/* Drops every waiting job; see core.h. */
int ac_sched_clear(ac_graph *g, int32_t si) {
  ac_sched *s = sched_of(g, si);
  if (!s) return AC_BAD_ID;
  sched_clear(g, s, si);
  return AC_OK;
}

/* Marks `scope` dead and drops its waiting jobs for good: they are marked
   (scope negated) so that a flush hands them out as AC_STEP_DROPPED (the
   embedder frees their slots) even if the scope is revived before the next
   flush; their keys are free at once. */
int ac_sched_destroy_scope(ac_graph *g, int32_t si, int32_t scope) {
  ac_sched *s = sched_of(g, si);
  if (!s || scope <= 0) return AC_BAD_ID;
  if (set_add(g, &s->dead_scopes, scope_key(scope)) < 0) return AC_OOM;
  for (int p = 0; p < AC_NPHASES; p++) {
    ac_queue *q = &s->q[p];
    for (int32_t i = q->head; i < q->len; i++) {
      ac_job *j = &q->jobs[i];
      if (j->scope != scope) continue;
      if (j->key) set_del(&s->pending[p], job_key(j->scope, j->key));
      j->key = 0;
      j->scope = -scope;
    }
  }
  return AC_OK;
}

/* Lets a destroyed scope queue jobs again. */
int ac_sched_revive_scope(ac_graph *g, int32_t si, int32_t scope) {
  ac_sched *s = sched_of(g, si);
  if (!s || scope <= 0) return AC_BAD_ID;
  set_del(&s->dead_scopes, scope_key(scope));
  return AC_OK;
}

/* Takes one scheduler that received jobs. */
int32_t ac_sched_take_one(ac_graph *g) {
  if (g->sched_list_len == 0) return -1;
  int32_t si = g->sched_list[--g->sched_list_len];
  g->scheds[si & AC_SCHED_SLOT_MASK].listed = 0;
  return si;
}

/* ===== the flush step machine ===== */

/* For an effect job: the outermost queued owner in the same scheduler, so an
   outer effect runs before the effects it owns. 0 if none. */
static ac_id queued_owner(ac_graph *g, ac_id id, int32_t si) {
  ac_id found = 0;
  for (ac_id o = g->nodes[id].owner; o; o = g->nodes[o].owner) {
    uint32_t f = g->nodes[o].flags;
    if ((f & (AC_QUEUED | AC_DISPOSED)) == AC_QUEUED && AC_KIND(f) == AC_EFFECT && g->nodes[o].sched == si)
      found = o;
  }
  return found;
}

/* Starts the next pass: 0 when nothing waits, -1 past max_depth. */
static int next_pass(ac_sched *s) {
  if (sched_size(s) == 0) return 0;
  if (++s->passes > s->max_depth) return -1;
  s->phase = 0;
  s->phase_end = s->q[0].len;
  return 1;
}

enum { JOB_DONE, JOB_READY, JOB_DROPPED, JOB_DEPTH };

/* Hands out the next job of the flush of `s` (handle si) in `out`. */
static int sched_next(ac_graph *g, ac_sched *s, int32_t si, ac_job *out) {
  if (!s->flushing) {
    s->passes = 0;
    int r = next_pass(s);
    if (r == 0) return JOB_DONE;
    if (r < 0) {
      sched_clear(g, s, si);
      return JOB_DEPTH;
    }
    s->flushing = 1;
  }
  for (;;) {
    ac_queue *q = &s->q[s->phase];
    if (q->head < s->phase_end) {
      ac_job *j = &q->jobs[q->head];
      if (j->handle < 0) {
        ac_id id = -j->handle;   /* the core queued it: handle > INT32_MIN */
        uint32_t f = id < g->node_top ? g->nodes[id].flags : AC_FREE;
        if ((f & (AC_QUEUED | AC_DISPOSED | AC_FREE)) != AC_QUEUED || g->nodes[id].sched != si) {
          q->head++;
          continue;
        }
        ac_id owner = queued_owner(g, id, si);
        if (owner) {
          g->nodes[owner].flags &= ~AC_QUEUED;
          out->handle = -owner;
          out->scope = 0;
          out->key = 0;
          out->phase = s->phase;
          return JOB_READY;
        }
        g->nodes[id].flags &= ~AC_QUEUED;
      }
      *out = *j;
      q->head++;
      if (q->head == q->len && q->head == s->phase_end) q->head = q->len = s->phase_end = 0;
      if (out->key) set_del(&s->pending[out->phase], job_key(out->scope, out->key));
      if (out->scope < 0 || (out->scope && set_has(&s->dead_scopes, scope_key(out->scope))))
        return JOB_DROPPED;
      return JOB_READY;
    }
    /* this phase is done for this pass */
    int next = s->phase + 1;
    if (next == AC_PHASE_POST) {
      int earlier = 0;
      for (int p = 0; p < AC_PHASE_POST; p++) earlier += waiting(&s->q[p]);
      if (earlier) next = AC_NPHASES;
    }
    if (next < AC_NPHASES) {
      s->phase = next;
      s->phase_end = s->q[next].len;
      continue;
    }
    int r = next_pass(s);
    if (r == 0) {
      s->flushing = 0;
      return JOB_DONE;
    }
    if (r < 0) {
      sched_clear(g, s, si);
      return JOB_DEPTH;
    }
  }
}

/* The next job of the flush as one scalar; see core.h. */
int32_t ac_sched_step(ac_graph *g, int32_t si) {
  ac_sched *s = sched_of(g, si);
  if (!s) return 0;
  ac_job j;
  int r = sched_next(g, s, si, &j);
  if (r == JOB_DONE) return 0;
  if (r == JOB_DEPTH) return AC_STEP_DEPTH;
  s->last = j;
  if (r == JOB_DROPPED) return AC_STEP_DROPPED;
  return j.handle;
}
