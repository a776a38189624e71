/*
 * test_http.c: tests of the HTTP shim (parser.c, gzip.c).
 * Table-driven: each row is a byte stream and the exact transcript the
 * parser must produce, whole, one byte at a time and in seeded random
 * splits. Prints one line per failed check and ends with "N passed, N failed".
 */
#include "http.h"
#include "transcript.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int passed, failed;

#define CHECK(cond) check((cond), #cond, __FILE__, __LINE__)
/* Counts one check; prints it when it failed. */
static void check(int ok, const char *what, const char *file, int line)
{
  if (ok) {
    passed++;
  } else {
    failed++;
    printf("FAIL %s:%d: %s\n", file, line, what);
  }
}

/* Compares two strings as one check, printing both when they differ. */
static void check_str(const char *name, const char *got, const char *want)
{
  if (strcmp(got, want) == 0) {
    passed++;
  } else {
    failed++;
    printf("FAIL %s\n  got:  %s\n  want: %s\n", name, got, want);
  }
}

/* ===== parser rows ===== */

typedef struct row {
  const char *name;
  const char *in;           /* the byte stream */
  uint32_t max_header;      /* 0: default */
  uint64_t max_body;
  const char *want;         /* transcript (transcript.h) */
} row;

static const row rows[] = {
  { "simple GET", "GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0,
    "H GET /a?b=1 1.1 ka=1 ch=0 cl=-1 hb=32 [host=x] | M 0: | END" },
  { "names lowercased, values trimmed, empty value",
    "GET / HTTP/1.1\r\nHOST: x\r\nX-Foo:  bar  baz \t\r\nA:\r\nB:   \r\n\r\n", 0, 0,
    "H GET / 1.1 ka=1 ch=0 cl=-1 hb=58 [host=x][x-foo=bar  baz][a=][b=] | M 0: | END" },
  { "duplicate fields stay separate", "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nA: 2\r\n\r\n", 0, 0,
    "H GET / 1.1 ka=1 ch=0 cl=-1 hb=39 [host=x][a=1][a=2] | M 0: | END" },
  { "Content-Length body", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 0, 0,
    "H POST /p 1.1 ka=1 ch=0 cl=5 hb=48 [host=x][content-length=5] | M 5:hello | END" },
  { "chunked body, extension and trailer dropped",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    "3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n", 0, 0,
    "H POST / 1.1 ka=1 ch=1 cl=-1 hb=56 [host=x][transfer-encoding=chunked] | M 13:abc0123456789 | END" },
  { "Transfer-Encoding value is case-insensitive",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n", 0, 0,
    "H POST / 1.1 ka=1 ch=1 cl=-1 hb=56 [host=x][transfer-encoding=Chunked] | M 0: | END" },
  { "three pipelined requests",
    "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0,
    "H GET /1 1.1 ka=1 ch=0 cl=-1 hb=28 [host=x] | M 0: | H GET /2 1.1 ka=1 ch=0 cl=-1 hb=28 [host=x] | M 0: | "
    "H GET /3 1.1 ka=1 ch=0 cl=-1 hb=28 [host=x] | M 0: | END" },
  { "pipelined after a body",
    "POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nokGET /2 HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0,
    "H POST /1 1.1 ka=1 ch=0 cl=2 hb=48 [host=x][content-length=2] | M 2:ok | "
    "H GET /2 1.1 ka=1 ch=0 cl=-1 hb=28 [host=x] | M 0: | END" },
  { "HTTP/1.0 closes by default, Host optional", "GET / HTTP/1.0\r\n\r\n", 0, 0,
    "H GET / 1.0 ka=0 ch=0 cl=-1 hb=18 | M 0: | END" },
  { "HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, 0,
    "H GET / 1.0 ka=1 ch=0 cl=-1 hb=42 [connection=keep-alive] | M 0: | END" },
  { "Connection: close", "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0, 0,
    "H GET / 1.1 ka=0 ch=0 cl=-1 hb=46 [host=x][connection=close] | M 0: | END" },
  { "leading empty lines are skipped", "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0,
    "H GET / 1.1 ka=1 ch=0 cl=-1 hb=31 [host=x] | M 0: | END" },
  { "bare LF line ends", "GET / HTTP/1.1\nHost: x\n\n", 0, 0,
    "H GET / 1.1 ka=1 ch=0 cl=-1 hb=24 [host=x] | M 0: | END" },
  { "Upgrade request, then the next one is parsed",
    "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0,
    "H GET /ws 1.1 ka=1 ch=0 cl=-1 hb=70 [host=x][connection=Upgrade][upgrade=websocket] | M 0: | "
    "H GET /2 1.1 ka=1 ch=0 cl=-1 hb=28 [host=x] | M 0: | END" },
  { "a message cut short", "GET / HTTP/1.1\r\nHost: x\r\n", 0, 0, "END started" },
  { "body cut short", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc", 0, 0,
    "H POST / 1.1 ka=1 ch=0 cl=9 hb=47 [host=x][content-length=9] | END started" },
  /* refusals */
  { "garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0, 0, "E malformed 400" },
  { "bad method", "GOT / HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0, "E malformed 400" },
  { "Content-Length then Transfer-Encoding",
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 0, 0,
    "E content_length_with_transfer_encoding 400" },
  { "Transfer-Encoding then Content-Length",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 0, 0,
    "E content_length_with_transfer_encoding 400" },
  { "Content-Length with a non-chunked Transfer-Encoding",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", 0, 0,
    "E content_length_with_transfer_encoding 400" },
  { "two differing Content-Length",
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 0, 0,
    "E duplicate_content_length 400" },
  { "two equal Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 0, 0,
    "E duplicate_content_length 400" },
  { "Content-Length list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", 0, 0,
    "E malformed 400" },
  { "Content-Length not a number", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 0, 0,
    "E malformed 400" },
  { "Transfer-Encoding gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 0, 0,
    "E transfer_encoding 501" },
  { "Transfer-Encoding gzip, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    0, 0, "E transfer_encoding 501" },
  { "chunked twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    0, 0, "E transfer_encoding 501" },
  { "Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 0,
    "E malformed 400" },
  { "obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n  b\r\n\r\n", 0, 0, "E bad_header 400" },
  { "whitespace before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 0, 0, "E bad_header 400" },
  { "whitespace line after the request line", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 0, 0, "E bad_header 400" },
  { "Host missing in 1.1", "GET / HTTP/1.1\r\n\r\n", 0, 0, "E host 400" },
  { "Host twice", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, 0, "E host 400" },
  { "Host twice in 1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", 0, 0, "E host 400" },
  { "HTTP/2.0 over 1.1 framing", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 0, 0, "E version 505" },
  { "a bad request after a good one",
    "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nBAD\r\n\r\n", 0, 0,
    "H GET /1 1.1 ka=1 ch=0 cl=-1 hb=28 [host=x] | M 0: | E malformed 400" },
  /* limits: the header block of "GET / HTTP/1.1\r\nHost: x\r\nA: 1234\r\n\r\n" is 36 bytes */
  { "header block exactly at the limit", "GET / HTTP/1.1\r\nHost: x\r\nA: 1234\r\n\r\n", 36, 0,
    "H GET / 1.1 ka=1 ch=0 cl=-1 hb=36 [host=x][a=1234] | M 0: | END" },
  { "header block one byte over", "GET / HTTP/1.1\r\nHost: x\r\nA: 12345\r\n\r\n", 36, 0,
    "E headers_too_large 431" },
  { "header block over, never ending", "GET / HTTP/1.1\r\nHost: x\r\nA: 123456789012345678901234567890", 36, 0,
    "E headers_too_large 431" },
  { "body exactly at the limit", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd", 0, 4,
    "H POST / 1.1 ka=1 ch=0 cl=4 hb=47 [host=x][content-length=4] | M 4:abcd | END" },
  { "declared body over the limit: refused at the header block",
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", 0, 4, "E body_too_large 413" },
  { "chunked body over the limit", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n", 0, 4,
    "H POST / 1.1 ka=1 ch=1 cl=-1 hb=56 [host=x][transfer-encoding=chunked] | E body_too_large 413" },
};

/* Runs every row whole, byte by byte and in random splits. */
static void test_rows(void)
{
  size_t i;
  for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    const row *r = &rows[i];
    size_t len = strlen(r->in);
    char got[8192], name[256];
    unsigned seed;
    if (strcmp(r->name, "garbage") == 0) len = 11;  /* holds a NUL */
    CHECK(transcript(r->in, len, r->max_header, r->max_body, SPLIT_WHOLE, 0, got, sizeof got) == 0);
    snprintf(name, sizeof name, "%s (whole)", r->name);
    check_str(name, got, r->want);
    CHECK(transcript(r->in, len, r->max_header, r->max_body, SPLIT_BYTES, 0, got, sizeof got) == 0);
    snprintf(name, sizeof name, "%s (byte by byte)", r->name);
    check_str(name, got, r->want);
    for (seed = 1; seed <= 20; seed++) {
      CHECK(transcript(r->in, len, r->max_header, r->max_body, SPLIT_RANDOM, seed, got, sizeof got) == 0);
      snprintf(name, sizeof name, "%s (random split, seed %u)", r->name, seed);
      check_str(name, got, r->want);
    }
  }
}

/* The stops: the header block stop comes before the body, the message stop
** leaves the next request unconsumed, nothing is consumed after an error. */
static void test_stops(void)
{
  static const char in[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
  ahttp_parser *p = ahttp_new(0, 0);
  const ahttp_msg *m = ahttp_message(p);
  size_t n = ahttp_feed(p, in, sizeof in - 1);
  CHECK(m->state == AHTTP_HEADERS);
  CHECK(n == 46);                    /* the last LF of the header block waits */
  CHECK(m->header_bytes == 47);
  CHECK(m->body_len == 0);
  n += ahttp_feed(p, in + n, sizeof in - 1 - n);
  CHECK(m->state == AHTTP_COMPLETE);
  CHECK(n == 50);
  CHECK(m->body_len == 3 && memcmp(m->body, "abc", 3) == 0);
  CHECK(ahttp_feed(p, in + n, sizeof in - 1 - n) == 0);   /* stopped until next */
  ahttp_next(p);
  CHECK(m->state == AHTTP_NEED_MORE && m->nheaders == 0 && m->body_len == 0 && m->content_length == -1);
  n += ahttp_feed(p, in + n, sizeof in - 1 - n);
  CHECK(m->state == AHTTP_HEADERS);
  n += ahttp_feed(p, in + n, sizeof in - 1 - n);
  CHECK(m->state == AHTTP_COMPLETE);
  CHECK(n == sizeof in - 1);
  CHECK(strncmp(m->text + m->target_off, "/2", m->target_len) == 0);
  ahttp_next(p);
  CHECK(ahttp_feed(p, "XYZ /", 5) == 0 || m->state == AHTTP_ERROR);
  CHECK(m->state == AHTTP_ERROR && m->error == AHTTP_E_MALFORMED);
  CHECK(strcmp(m->detail, "HPE_INVALID_METHOD") == 0);
  CHECK(ahttp_feed(p, "GET", 3) == 0);
  ahttp_next(p);                     /* starting over after an error */
  CHECK(ahttp_feed(p, "GET / HTTP/1.0\r\n\r\n", 18) == 17 && m->state == AHTTP_HEADERS);
  ahttp_free(p);
  ahttp_free(NULL);
}

/* A 2 MiB body declared over the limit is refused before any body byte. */
static void test_body_refused_early(void)
{
  static const char in[] = "PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n";
  ahttp_parser *p = ahttp_new(0, 0);
  const ahttp_msg *m = ahttp_message(p);
  ahttp_feed(p, in, sizeof in - 1);
  CHECK(m->state == AHTTP_ERROR && m->error == AHTTP_E_BODY_TOO_LARGE);
  CHECK(ahttp_error_status(m->error) == 413);
  CHECK(m->method == 4 && strcmp(ahttp_method_name(m->method), "PUT") == 0);
  CHECK(m->content_length == 2097152);
  ahttp_free(p);
}

/* 20 KiB of headers against the default 16 KiB limit: 431. */
static void test_default_header_limit(void)
{
  char *in = malloc(32768);
  size_t len = 0, n;
  int i;
  ahttp_parser *p = ahttp_new(0, 0);
  const ahttp_msg *m = ahttp_message(p);
  len += (size_t)sprintf(in, "GET / HTTP/1.1\r\nHost: x\r\n");
  for (i = 0; i < 200; i++) len += (size_t)sprintf(in + len, "X-Pad-%03d: %088d\r\n", i, 0);
  len += (size_t)sprintf(in + len, "\r\n");
  CHECK(len > 20000);
  n = ahttp_feed(p, in, len);
  CHECK(m->state == AHTTP_ERROR && m->error == AHTTP_E_HEADERS_TOO_LARGE);
  CHECK(n <= AHTTP_DEFAULT_MAX_HEADER);
  CHECK(ahttp_error_status(m->error) == 431);
  ahttp_free(p);
  free(in);
}

/* Trailer fields are dropped; http-parser's own 80 KiB limit bounds them. */
static void test_trailer_limit(void)
{
  size_t cap = 100000, len = 0;
  char *in = malloc(cap);
  ahttp_parser *p = ahttp_new(0, 0);
  const ahttp_msg *m = ahttp_message(p);
  len += (size_t)sprintf(in, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n");
  len += (size_t)sprintf(in + len, "X-T: 1\r\n\r\n");
  ahttp_feed(p, in, len);
  CHECK(m->state == AHTTP_HEADERS);
  ahttp_feed(p, in + m->header_bytes - 1, len - m->header_bytes + 1);
  CHECK(m->state == AHTTP_COMPLETE && m->nheaders == 2 && m->body_len == 2);
  ahttp_next(p);
  len -= 2;
  while (len < 90000) len += (size_t)sprintf(in + len, "X-Trailer: %080d\r\n", 0);
  len += (size_t)sprintf(in + len, "\r\n");
  ahttp_feed(p, in, len);
  ahttp_feed(p, in + m->header_bytes - 1, len - m->header_bytes + 1);
  CHECK(m->state == AHTTP_ERROR && m->error == AHTTP_E_HEADERS_TOO_LARGE);
  ahttp_free(p);
  free(in);
}

/* A header name and value split over many feeds come out whole. */
static void test_split_header(void)
{
  static const char *parts[] = { "GET / HTTP/1.1\r\nHo", "st: x\r\nX-Lo", "ng-Na", "me: va", "l", "ue  ", "\r", "\n\r", "\n" };
  ahttp_parser *p = ahttp_new(0, 0);
  const ahttp_msg *m = ahttp_message(p);
  size_t i;
  for (i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    size_t n = ahttp_feed(p, parts[i], strlen(parts[i]));
    if (m->state == AHTTP_HEADERS) n += ahttp_feed(p, parts[i] + n, strlen(parts[i]) - n);
    CHECK(n == strlen(parts[i]));
  }
  CHECK(m->state == AHTTP_COMPLETE);
  CHECK(m->nheaders == 2);
  CHECK(m->headers[1].name_len == 11 && memcmp(m->text + m->headers[1].name_off, "x-long-name", 11) == 0);
  CHECK(m->headers[1].value_len == 5 && memcmp(m->text + m->headers[1].value_off, "value", 5) == 0);
  ahttp_free(p);
}

/* Names and statuses of the error codes. */
static void test_error_table(void)
{
  CHECK(strcmp(ahttp_error_name(AHTTP_OK), "ok") == 0);
  CHECK(strcmp(ahttp_error_name(AHTTP_E_NOMEM), "nomem") == 0);
  CHECK(strcmp(ahttp_error_name(99), "unknown") == 0);
  CHECK(ahttp_error_status(AHTTP_E_MALFORMED) == 400);
  CHECK(ahttp_error_status(AHTTP_E_TRANSFER_ENCODING) == 501);
  CHECK(ahttp_error_status(AHTTP_E_VERSION) == 505);
  CHECK(ahttp_error_status(-1) == 400);
  CHECK(strcmp(ahttp_method_name(1), "GET") == 0);
  CHECK(strcmp(ahttp_method_name(2), "HEAD") == 0);
}

/* ===== gzip ===== */

/* Inflates a gzip stream; returns the length or -1. */
static long gunzip(const char *in, size_t len, char *out, size_t cap)
{
  z_stream zs = { 0 };
  int rc;
  if (inflateInit2(&zs, 31) != Z_OK) return -1;
  zs.next_in = (Bytef *)(uintptr_t)in;
  zs.avail_in = (uInt)len;
  zs.next_out = (Bytef *)out;
  zs.avail_out = (uInt)cap;
  rc = inflate(&zs, Z_FINISH);
  inflateEnd(&zs);
  return rc == Z_STREAM_END ? (long)(cap - zs.avail_out) : -1;
}

/* Fills buf with compressible but not trivial bytes. */
static void fill(char *buf, size_t len)
{
  size_t i;
  unsigned s = 12345;
  for (i = 0; i < len; i++) {
    s = s * 1103515245u + 12345u;
    buf[i] = (char)("<div class=\"item\">hello</div>\n"[(s >> 16) % 8 + i % 22]);
  }
}

/* One-shot gzip: magic bytes, round trip, empty input, levels. */
static void test_gzip_oneshot(void)
{
  size_t len = 1 << 20, out_len;
  char *in = malloc(len), *back = malloc(len + 1), *out;
  int level;
  fill(in, len);
  CHECK(ahttp_gzip(in, len, -1, &out, &out_len) == AHTTP_GZ_OK);
  CHECK(out_len > 18 && out_len < len / 2);
  CHECK((unsigned char)out[0] == 0x1f && (unsigned char)out[1] == 0x8b && out[2] == 8);
  CHECK(gunzip(out, out_len, back, len + 1) == (long)len && memcmp(in, back, len) == 0);
  ahttp_gzip_release(out);
  CHECK(ahttp_gzip("", 0, 6, &out, &out_len) == AHTTP_GZ_OK && out_len == 20);
  CHECK(gunzip(out, out_len, back, len) == 0);
  ahttp_gzip_release(out);
  for (level = 0; level <= 9; level++) {
    CHECK(ahttp_gzip(in, 4096, level, &out, &out_len) == AHTTP_GZ_OK);
    CHECK(gunzip(out, out_len, back, len) == 4096 && memcmp(in, back, 4096) == 0);
    ahttp_gzip_release(out);
  }
  ahttp_gzip_release(NULL);
  free(in);
  free(back);
}

/* Streaming gzip: after each write, what was sent so far inflates to
** exactly the input so far; finish adds the trailer; no write after it. */
static void test_gzip_stream(void)
{
  size_t total = 0, sent = 0, i, out_len;
  char *in = malloc(300000), *wire = malloc(400000), *back = malloc(300000);
  const char *out;
  z_stream zs = { 0 };
  ahttp_gz *z = ahttp_gz_new(6);
  static const size_t sizes[] = { 1, 100, 0, 5000, 70000, 3, 200000 };
  fill(in, 300000);
  CHECK(z != NULL);
  CHECK(inflateInit2(&zs, 31) == Z_OK);
  zs.next_out = (Bytef *)back;
  zs.avail_out = 300000;
  for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    CHECK(ahttp_gz_write(z, in + total, sizes[i], 0, &out, &out_len) == AHTTP_GZ_OK);
    total += sizes[i];
    CHECK(out_len > 0 || sizes[i] == 0);   /* a flush with nothing new adds nothing */
    if (out_len == 0) continue;
    memcpy(wire + sent, out, out_len);
    zs.next_in = (Bytef *)wire + sent;
    zs.avail_in = (uInt)out_len;
    sent += out_len;
    CHECK(inflate(&zs, Z_SYNC_FLUSH) == Z_OK);
    CHECK(zs.avail_in == 0);
    CHECK(zs.total_out == total && memcmp(back, in, total) == 0);
  }
  CHECK(ahttp_gz_write(z, NULL, 0, 1, &out, &out_len) == AHTTP_GZ_OK);
  CHECK(out_len >= 8);
  zs.next_in = (Bytef *)(uintptr_t)out;
  zs.avail_in = (uInt)out_len;
  CHECK(inflate(&zs, Z_FINISH) == Z_STREAM_END);
  inflateEnd(&zs);
  CHECK(ahttp_gz_write(z, "x", 1, 0, &out, &out_len) == AHTTP_GZ_EFINISHED && out == NULL);
  ahttp_gz_free(z);
  ahttp_gz_free(ahttp_gz_new(1));   /* freed unfinished */
  ahttp_gz_free(NULL);
  free(in);
  free(wire);
  free(back);
}

int main(void)
{
  test_rows();
  test_stops();
  test_body_refused_early();
  test_default_header_limit();
  test_split_header();
  test_trailer_limit();
  test_error_table();
  test_gzip_oneshot();
  test_gzip_stream();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
