/*
 * parser.c: HTTP/1.1 request parsing for Lua, over libhttp-parser (2.9).
 *
 * http-parser does the grammar; this file copies what it reports into an
 * ahttp_msg, stops after the header block and after each message (with
 * http_parser_pause), and adds what http-parser leaves to its caller: the
 * size limits and the framing rules listed in http.h.
 *
 * How the stops work: pausing inside on_headers_complete makes
 * http_parser_execute return before the last LF of the header block (the
 * parser re-reads it when resumed); pausing inside on_message_complete makes
 * it return after the last byte of the message. Between two messages the
 * parser is re-initialised, so an Upgrade or CONNECT request does not turn
 * the rest of the stream into opaque bytes.
 *
 * The header limit is exact and independent of how the bytes are split:
 * while the header block is incomplete, at most max_header - (bytes so far)
 * bytes are given to http-parser, so it can never read past the limit.
 */
#include "http.h"

#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

enum { LAST_NONE, LAST_FIELD, LAST_VALUE };
enum { STOP_NONE, STOP_HEADERS, STOP_COMPLETE };
enum { KEEP_BODY_BUFFER = 65536 };  /* a body buffer above this is freed between messages */

struct ahttp_parser {
  http_parser hp;
  ahttp_msg msg;              /* what Lua reads */
  uint32_t max_header;
  uint64_t max_body;
  uint64_t max_raw_body;      /* bytes after the header block, chunk framing included */
  char *text;                 /* target, names, values */
  uint32_t text_len, text_cap;
  ahttp_header *hdrs;
  uint32_t nhdrs, hdr_cap;
  char *body;
  size_t body_len, body_cap;
  int last;                   /* LAST_*: which header callback ran last */
  int stop;                   /* STOP_*: why the parser paused */
  int err;                    /* ahttp_error set by a callback */
  const char *detail;         /* and its text */
  int prev_lf;                /* obs-fold scan: the last header byte was LF */
  uint32_t hb;                /* bytes of the header block consumed */
  uint64_t raw_body;          /* bytes consumed after the header block */
  int n_cl, n_te, n_host;     /* Content-Length, Transfer-Encoding, Host fields */
  int te_chunked;             /* the Transfer-Encoding value was exactly "chunked" */
};

/* ===== buffers ===== */

/* Grows *buf (capacity *cap, elements of size `size`) to hold `need`
** elements; returns 0 when out of memory. */
static int grow(void **buf, size_t *cap, size_t need, size_t size)
{
  size_t n = *cap ? *cap : 16;
  void *b;
  if (need <= *cap) return 1;
  while (n < need) n *= 2;
  b = realloc(*buf, n * size);
  if (b == NULL) return 0;
  *buf = b;
  *cap = n;
  return 1;
}

/* Records a refusal raised inside a callback; returns http-parser's "stop". */
static int fail(ahttp_parser *p, int err, const char *detail)
{
  if (p->err == AHTTP_OK) {
    p->err = err;
    p->detail = detail;
  }
  return -1;
}

/* Appends n bytes to the text buffer; 0 when out of memory. */
static int text_append(ahttp_parser *p, const char *at, size_t n)
{
  size_t cap = p->text_cap;
  if (n == 0) return 1;
  if (!grow((void **)&p->text, &cap, (size_t)p->text_len + n, 1)) return 0;
  p->text_cap = (uint32_t)cap;
  memcpy(p->text + p->text_len, at, n);
  p->text_len += (uint32_t)n;
  return 1;
}

/* ===== header fields ===== */

/* Is c a tchar (RFC 9110 5.6.2)? */
static int is_tchar(unsigned char c)
{
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Does the text at (off, len) equal the lowercase word w? */
static int text_is(const ahttp_parser *p, uint32_t off, uint32_t len, const char *w)
{
  size_t i, n = strlen(w);
  if (len != n) return 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p->text[off + i];
    if (c >= 'A' && c <= 'Z') c = (unsigned char)(c + 32);
    if (c != (unsigned char)w[i]) return 0;
  }
  return 1;
}

/* Ends the header field being assembled: trims the whitespace around its
** value. */
static void header_end(ahttp_parser *p)
{
  ahttp_header *h;
  if (p->last == LAST_NONE || p->nhdrs == 0) return;
  h = &p->hdrs[p->nhdrs - 1];
  p->last = LAST_NONE;
  if (h->value_off == UINT32_MAX) {   /* a name without a value callback */
    h->value_off = p->text_len;
    h->value_len = 0;
  }
  while (h->value_len > 0 && (p->text[h->value_off] == ' ' || p->text[h->value_off] == '\t')) {
    h->value_off++;
    h->value_len--;
  }
  while (h->value_len > 0 && (p->text[h->value_off + h->value_len - 1] == ' ' ||
                              p->text[h->value_off + h->value_len - 1] == '\t'))
    h->value_len--;
}

/* Checks the names of the fields read so far and counts those that decide
** the framing. Runs only at points that do not depend on how the bytes were
** split (the end of the header block, an http-parser error), so the outcome
** is the same however the stream arrived. Returns -1 on a refusal. */
static int header_check(ahttp_parser *p)
{
  uint32_t i, k;
  header_end(p);
  p->n_cl = p->n_te = p->n_host = 0;
  p->te_chunked = 0;
  for (k = 0; k < p->nhdrs; k++) {
    const ahttp_header *h = &p->hdrs[k];
    if (h->name_len == 0) return fail(p, AHTTP_E_BAD_HEADER, "empty header name");
    for (i = 0; i < h->name_len; i++) {
      if (!is_tchar((unsigned char)p->text[h->name_off + i]))
        return fail(p, AHTTP_E_BAD_HEADER, "header name is not a token");
    }
    if (text_is(p, h->name_off, h->name_len, "content-length")) {
      p->n_cl++;
    } else if (text_is(p, h->name_off, h->name_len, "transfer-encoding")) {
      p->n_te++;
      p->te_chunked = h->value_off != UINT32_MAX && text_is(p, h->value_off, h->value_len, "chunked");
    } else if (text_is(p, h->name_off, h->name_len, "host")) {
      p->n_host++;
    }
  }
  return 0;
}

/* ===== http-parser callbacks ===== */

/* A message starts. */
static int on_message_begin(http_parser *hp)
{
  ahttp_parser *p = hp->data;
  p->msg.started = 1;
  return 0;
}

/* A piece of the request target. */
static int on_url(http_parser *hp, const char *at, size_t n)
{
  ahttp_parser *p = hp->data;
  if (p->msg.target_len == 0) p->msg.target_off = p->text_len;
  if (!text_append(p, at, n)) return fail(p, AHTTP_E_NOMEM, "out of memory");
  p->msg.target_len += (uint32_t)n;
  return 0;
}

/* A piece of a header name (a new field when a value came before). */
static int on_header_field(http_parser *hp, const char *at, size_t n)
{
  ahttp_parser *p = hp->data;
  size_t i, cap;
  if (p->msg.headers_done) return 0;   /* a trailer field: dropped */
  if (p->last != LAST_FIELD) {
    header_end(p);
    cap = p->hdr_cap;
    if (!grow((void **)&p->hdrs, &cap, (size_t)p->nhdrs + 1, sizeof *p->hdrs))
      return fail(p, AHTTP_E_NOMEM, "out of memory");
    p->hdr_cap = (uint32_t)cap;
    p->hdrs[p->nhdrs].name_off = p->text_len;
    p->hdrs[p->nhdrs].name_len = 0;
    p->hdrs[p->nhdrs].value_off = UINT32_MAX;
    p->hdrs[p->nhdrs].value_len = 0;
    p->nhdrs++;
    p->last = LAST_FIELD;
  }
  if (!text_append(p, at, n)) return fail(p, AHTTP_E_NOMEM, "out of memory");
  for (i = p->text_len - n; i < p->text_len; i++) {
    if (p->text[i] >= 'A' && p->text[i] <= 'Z') p->text[i] = (char)(p->text[i] + 32);
  }
  p->hdrs[p->nhdrs - 1].name_len += (uint32_t)n;
  return 0;
}

/* A piece of a header value. */
static int on_header_value(http_parser *hp, const char *at, size_t n)
{
  ahttp_parser *p = hp->data;
  ahttp_header *h;
  if (p->msg.headers_done) return 0;   /* a trailer field: dropped */
  if (p->nhdrs == 0) return fail(p, AHTTP_E_BAD_HEADER, "header value without a name");
  h = &p->hdrs[p->nhdrs - 1];
  if (h->value_off == UINT32_MAX) h->value_off = p->text_len;
  if (!text_append(p, at, n)) return fail(p, AHTTP_E_NOMEM, "out of memory");
  h->value_len += (uint32_t)n;
  p->last = LAST_VALUE;
  return 0;
}

/* The header block is complete: checks the framing rules, then stops. */
static int on_headers_complete(http_parser *hp)
{
  ahttp_parser *p = hp->data;
  ahttp_msg *m = &p->msg;
  if (header_check(p)) return -1;
  m->request_line = 1;
  m->method = (int32_t)hp->method;
  m->http_major = hp->http_major;
  m->http_minor = hp->http_minor;
  m->keep_alive = http_should_keep_alive(hp) ? 1 : 0;
  m->chunked = (hp->flags & F_CHUNKED) ? 1 : 0;
  m->content_length = (hp->flags & F_CONTENTLENGTH) ? (int64_t)hp->content_length : -1;
  if (hp->http_major != 1) return fail(p, AHTTP_E_VERSION, "HTTP major version is not 1");
  if (p->n_cl > 0 && p->n_te > 0)
    return fail(p, AHTTP_E_CL_TE, "Content-Length with Transfer-Encoding");
  if (p->n_cl > 1) return fail(p, AHTTP_E_DUPLICATE_CL, "Content-Length repeated");
  if (p->n_te > 0) {
    if (hp->http_minor == 0)
      return fail(p, AHTTP_E_MALFORMED, "Transfer-Encoding in an HTTP/1.0 request");
    if (p->n_te > 1 || !p->te_chunked)
      return fail(p, AHTTP_E_TRANSFER_ENCODING, "Transfer-Encoding other than chunked");
  }
  if (p->n_host > 1) return fail(p, AHTTP_E_HOST, "Host repeated");
  if (p->n_host == 0 && hp->http_minor >= 1) return fail(p, AHTTP_E_HOST, "Host missing");
  if (m->content_length > 0 && (uint64_t)m->content_length > p->max_body)
    return fail(p, AHTTP_E_BODY_TOO_LARGE, "Content-Length over the limit");
  if (m->content_length > 0 && (size_t)m->content_length > p->body_cap) {
    char *b = realloc(p->body, (size_t)m->content_length);
    if (b == NULL) return fail(p, AHTTP_E_NOMEM, "out of memory");
    p->body = b;
    p->body_cap = (size_t)m->content_length;
  }
  m->headers_done = 1;
  p->stop = STOP_HEADERS;
  http_parser_pause(hp, 1);
  return 0;
}

/* A piece of the body (de-chunked). */
static int on_body(http_parser *hp, const char *at, size_t n)
{
  ahttp_parser *p = hp->data;
  if (n > p->max_body - p->body_len) return fail(p, AHTTP_E_BODY_TOO_LARGE, "body over the limit");
  if (!grow((void **)&p->body, &p->body_cap, p->body_len + n, 1))
    return fail(p, AHTTP_E_NOMEM, "out of memory");
  memcpy(p->body + p->body_len, at, n);
  p->body_len += n;
  return 0;
}

/* The message is complete: stops. */
static int on_message_complete(http_parser *hp)
{
  ahttp_parser *p = hp->data;
  p->stop = STOP_COMPLETE;
  http_parser_pause(hp, 1);
  return 0;
}

static const http_parser_settings settings = {
  .on_message_begin = on_message_begin,
  .on_url = on_url,
  .on_header_field = on_header_field,
  .on_header_value = on_header_value,
  .on_headers_complete = on_headers_complete,
  .on_body = on_body,
  .on_message_complete = on_message_complete,
};

/* ===== the public view ===== */

/* Points the public view at the buffers and sets the state. */
static void publish(ahttp_parser *p, int state)
{
  ahttp_msg *m = &p->msg;
  m->state = state;
  m->headers = p->hdrs;
  m->nheaders = p->nhdrs;
  /* a field still being assembled is published only once it ended */
  if (p->last != LAST_NONE && m->nheaders > 0 && !m->headers_done) m->nheaders--;
  m->text = p->text;
  m->text_len = p->text_len;
  m->body = p->body;
  m->body_len = p->body_len;
  m->header_bytes = p->hb;
}

/* Resets the per-message state (buffers are kept, a big body one freed). */
static void reset(ahttp_parser *p)
{
  http_parser_init(&p->hp, HTTP_REQUEST);
  p->hp.data = p;
  memset(&p->msg, 0, sizeof p->msg);
  p->msg.content_length = -1;
  p->msg.detail = "";
  p->text_len = 0;
  p->nhdrs = 0;
  p->body_len = 0;
  if (p->body_cap > KEEP_BODY_BUFFER) {
    free(p->body);
    p->body = NULL;
    p->body_cap = 0;
  }
  p->last = LAST_NONE;
  p->stop = STOP_NONE;
  p->err = AHTTP_OK;
  p->detail = "";
  p->prev_lf = 0;
  p->hb = 0;
  p->raw_body = 0;
  p->n_cl = p->n_te = p->n_host = 0;
  p->te_chunked = 0;
  publish(p, AHTTP_NEED_MORE);
}

/* Marks the message refused with err (and fills in the request line when
** it was read, for the log). */
static void refuse(ahttp_parser *p, int err, const char *detail)
{
  if (!p->msg.request_line && p->nhdrs > 0) {
    p->msg.request_line = 1;
    p->msg.method = (int32_t)p->hp.method;
    p->msg.http_major = p->hp.http_major;
    p->msg.http_minor = p->hp.http_minor;
  }
  p->msg.error = err;
  p->msg.detail = detail;
  publish(p, AHTTP_ERROR);
}

/* The ahttp_error for http-parser's errno e (after a stop that was not ours). */
static int map_errno(ahttp_parser *p, enum http_errno e)
{
  switch (e) {
  case HPE_HEADER_OVERFLOW: return AHTTP_E_HEADERS_TOO_LARGE;
  case HPE_UNEXPECTED_CONTENT_LENGTH:
    if (header_check(p)) return p->err;
    return p->n_te > 0 ? AHTTP_E_CL_TE : AHTTP_E_DUPLICATE_CL;
  case HPE_INVALID_TRANSFER_ENCODING:
    return p->hp.http_minor == 0 ? AHTTP_E_MALFORMED : AHTTP_E_TRANSFER_ENCODING;
  default: return AHTTP_E_MALFORMED;
  }
}

/* ===== API ===== */

/* A parser with these limits (0: the defaults); NULL when out of memory. */
ahttp_parser *ahttp_new(uint32_t max_header, uint64_t max_body)
{
  ahttp_parser *p = calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  p->max_header = max_header ? max_header : AHTTP_DEFAULT_MAX_HEADER;
  p->max_body = max_body ? max_body : AHTTP_DEFAULT_MAX_BODY;
  p->max_raw_body = 2 * p->max_body + 65536;
  reset(p);
  return p;
}

/* Frees the parser and its buffers (NULL is fine). */
void ahttp_free(ahttp_parser *p)
{
  if (p == NULL) return;
  free(p->text);
  free(p->hdrs);
  free(p->body);
  free(p);
}

/* The parser's view of the current message. */
const ahttp_msg *ahttp_message(const ahttp_parser *p)
{
  return &p->msg;
}

/* Parses up to len bytes; returns how many were consumed and leaves the
** outcome in ahttp_message(p)->state. Consumes nothing after a complete
** message or an error until ahttp_next(). */
size_t ahttp_feed(ahttp_parser *p, const char *buf, size_t len)
{
  ahttp_msg *m = &p->msg;
  size_t done = 0;
  if (m->state == AHTTP_COMPLETE || m->state == AHTTP_ERROR) return 0;
  while (done < len) {
    size_t n = len - done, used, i;
    int in_headers = !m->headers_done;
    enum http_errno e;
    if (in_headers) {
      if (p->hb >= p->max_header) {
        refuse(p, AHTTP_E_HEADERS_TOO_LARGE, "header block over the limit");
        return done;
      }
      if (n > p->max_header - p->hb) n = p->max_header - p->hb;
    } else {
      if (p->raw_body >= p->max_raw_body) {
        refuse(p, AHTTP_E_BODY_TOO_LARGE, "chunk framing over the limit");
        return done;
      }
      if (n > p->max_raw_body - p->raw_body) n = (size_t)(p->max_raw_body - p->raw_body);
    }
    p->stop = STOP_NONE;
    http_parser_pause(&p->hp, 0);
    used = http_parser_execute(&p->hp, &settings, buf + done, n);
    e = HTTP_PARSER_ERRNO(&p->hp);
    if (in_headers) {
      /* obs-fold: a header line that starts with whitespace */
      for (i = 0; i < used; i++) {
        unsigned char c = (unsigned char)buf[done + i];
        if (p->prev_lf && (c == ' ' || c == '\t')) {
          refuse(p, AHTTP_E_BAD_HEADER, "obs-fold line in the header block");
          return done + i;
        }
        p->prev_lf = c == '\n';
      }
      /* the stop at the header block leaves its last LF unconsumed */
      p->hb += (uint32_t)used + (p->stop == STOP_HEADERS ? 1 : 0);
    } else {
      p->raw_body += used;
    }
    done += used;
    if (p->err != AHTTP_OK) {
      refuse(p, p->err, p->detail);
      return done;
    }
    if (e == HPE_PAUSED) {
      if (p->stop == STOP_HEADERS) {
        publish(p, AHTTP_HEADERS);
        return done;
      }
      if (p->stop == STOP_COMPLETE) {
        publish(p, AHTTP_COMPLETE);
        return done;
      }
    } else if (e != HPE_OK) {
      refuse(p, map_errno(p, e), http_errno_name(e));
      return done;
    } else if (used < n) {  /* http-parser gave up without saying why */
      refuse(p, AHTTP_E_MALFORMED, "parser stopped");
      return done;
    }
  }
  publish(p, AHTTP_NEED_MORE);
  return done;
}

/* Readies the parser for the next message (after a complete one, or to
** start over after an error). */
void ahttp_next(ahttp_parser *p)
{
  reset(p);
}

/* The name of an http-parser method number ("GET"), "<unknown>" if none. */
const char *ahttp_method_name(int32_t method)
{
  return http_method_str((enum http_method)method);
}

/* A short stable name for an ahttp_error ("headers_too_large"). */
const char *ahttp_error_name(int32_t error)
{
  static const char *const names[AHTTP_E_COUNT] = {
    "ok", "malformed", "headers_too_large", "body_too_large", "content_length_with_transfer_encoding",
    "duplicate_content_length", "bad_header", "host", "transfer_encoding", "version", "nomem"
  };
  if (error < 0 || error >= AHTTP_E_COUNT) return "unknown";
  return names[error];
}

/* The HTTP status that answers an ahttp_error (0 for AHTTP_OK). */
int32_t ahttp_error_status(int32_t error)
{
  static const int32_t status[AHTTP_E_COUNT] = { 0, 400, 431, 413, 400, 400, 400, 400, 501, 505, 503 };
  if (error < 0 || error >= AHTTP_E_COUNT) return 400;
  return status[error];
}
