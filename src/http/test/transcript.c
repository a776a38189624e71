/*
 * transcript.c: see transcript.h.
 */
#include "transcript.h"
#include "http.h"

#include <stdio.h>
#include <string.h>

typedef struct sink {
  char *out;
  size_t cap, len;
  int broken;
} sink;

/* Appends n bytes, printable ones as they are, the others as \xHH. */
static void put(sink *s, const char *p, size_t n, int escape)
{
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    char tmp[8];
    size_t k = 1;
    if (escape && (c < 0x20 || c >= 0x7f || c == '\\')) {
      snprintf(tmp, sizeof tmp, "\\x%02x", c);
      k = 4;
    } else {
      tmp[0] = (char)c;
    }
    if (s->len + k < s->cap) {
      memcpy(s->out + s->len, tmp, k);
      s->len += k;
      s->out[s->len] = '\0';
    }
  }
}

/* Appends a C string as it is. */
static void puts_(sink *s, const char *str)
{
  put(s, str, strlen(str), 0);
}

/* Records a broken invariant. */
static void broken(sink *s, const char *what)
{
  s->broken++;
  puts_(s, "!");
  puts_(s, what);
  puts_(s, " ");
}

/* Is (off, len) inside a buffer of size total? */
static int inside(uint32_t off, uint32_t len, uint32_t total)
{
  return off <= total && len <= total - off;
}

/* Checks the invariants of the public view at a stop. */
static void check_view(sink *s, const ahttp_msg *m, uint32_t max_header, uint64_t max_body)
{
  uint32_t i;
  if (m->target_len > 0 && !inside(m->target_off, m->target_len, m->text_len)) broken(s, "target");
  if (m->nheaders > 0 && m->headers == NULL) broken(s, "headers");
  for (i = 0; i < m->nheaders; i++) {
    const ahttp_header *h = &m->headers[i];
    if (!inside(h->name_off, h->name_len, m->text_len) || !inside(h->value_off, h->value_len, m->text_len))
      broken(s, "header offsets");
  }
  if (m->body_len > max_body) broken(s, "body limit");
  if (m->body_len > 0 && m->body == NULL) broken(s, "body");
  if (m->header_bytes > max_header) broken(s, "header limit");
}

/* Writes the header-block part of a message. */
static void put_head(sink *s, const ahttp_msg *m)
{
  char tmp[128];
  uint32_t i;
  puts_(s, "H ");
  puts_(s, ahttp_method_name(m->method));
  puts_(s, " ");
  put(s, m->text + m->target_off, m->target_len, 1);
  snprintf(tmp, sizeof tmp, " %d.%d ka=%d ch=%d cl=%lld hb=%u", m->http_major, m->http_minor,
           m->keep_alive, m->chunked, (long long)m->content_length, m->header_bytes);
  puts_(s, tmp);
  if (m->nheaders) puts_(s, " ");
  for (i = 0; i < m->nheaders; i++) {
    puts_(s, "[");
    put(s, m->text + m->headers[i].name_off, m->headers[i].name_len, 1);
    puts_(s, "=");
    put(s, m->text + m->headers[i].value_off, m->headers[i].value_len, 1);
    puts_(s, "]");
  }
  puts_(s, " | ");
}

/* The next piece size of a split (xorshift32 state in *r). */
static size_t piece(int mode, unsigned *r)
{
  unsigned x = *r;
  if (mode == SPLIT_BYTES) return 1;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *r = x;
  switch (x % 4) {
  case 0: return 1;
  case 1: return 1 + (x >> 8) % 8;
  case 2: return 1 + (x >> 8) % 64;
  default: return 1 + (x >> 8) % 4096;
  }
}

int transcript(const char *in, size_t len, uint32_t max_header, uint64_t max_body,
               int mode, unsigned seed, char *out, size_t cap)
{
  sink s = { out, cap, 0, 0 };
  ahttp_parser *p = ahttp_new(max_header, max_body);
  const ahttp_msg *m;
  size_t off = 0, avail = 0;
  unsigned r = seed * 2654435761u + 1u;
  uint32_t mh = max_header ? max_header : AHTTP_DEFAULT_MAX_HEADER;
  uint64_t mb = max_body ? max_body : AHTTP_DEFAULT_MAX_BODY;
  if (cap) out[0] = '\0';
  if (p == NULL) {
    puts_(&s, "NOMEM");
    return 0;
  }
  m = ahttp_message(p);
  for (;;) {
    size_t n;
    if (off == avail) {
      if (avail == len) break;
      avail = mode == SPLIT_WHOLE ? len : avail + piece(mode, &r);
      if (avail > len) avail = len;
    }
    n = ahttp_feed(p, in + off, avail - off);
    if (n > avail - off) broken(&s, "consumed more than given");
    off += n;
    check_view(&s, m, mh, mb);
    if (m->state == AHTTP_HEADERS) {
      put_head(&s, m);
    } else if (m->state == AHTTP_COMPLETE) {
      char tmp[32];
      snprintf(tmp, sizeof tmp, "M %zu:", m->body_len);
      puts_(&s, tmp);
      put(&s, m->body, m->body_len, 1);
      puts_(&s, " | ");
      ahttp_next(p);
    } else if (m->state == AHTTP_ERROR) {
      char tmp[64];
      snprintf(tmp, sizeof tmp, "E %s %d", ahttp_error_name(m->error), ahttp_error_status(m->error));
      puts_(&s, tmp);
      if (m->error == AHTTP_OK || m->detail == NULL) broken(&s, "error without a code");
      ahttp_free(p);
      return s.broken;
    } else if (off != avail) {
      broken(&s, "need more with bytes left");
      break;
    }
  }
  puts_(&s, m->started ? "END started" : "END");
  ahttp_free(p);
  return s.broken;
}
