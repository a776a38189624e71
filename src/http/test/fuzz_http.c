/*
 * fuzz_http.c: libFuzzer target for the HTTP shim (make fuzz-http).
 *
 * Input: byte 0 seeds the random split, byte 1 picks the limits, the rest
 * is a request stream. The stream is parsed whole, one byte at a time and
 * in random pieces; the three transcripts (transcript.h) must be equal and
 * no invariant may break (offsets inside their buffers, limits kept, never
 * more bytes consumed than given). ASan and UBSan catch the rest.
 */
#include "http.h"
#include "transcript.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { OUT_CAP = 1 << 16 };
static char whole[OUT_CAP], bytes[OUT_CAP], random_[OUT_CAP];

/* Stops the run with both transcripts when they differ. */
static void same(const char *what, const char *a, const char *b)
{
  if (strcmp(a, b) == 0) return;
  fprintf(stderr, "split variance (%s):\n  whole: %s\n  other: %s\n", what, a, b);
  abort();
}

/* One input: three deliveries, equal transcripts, no broken invariant. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *in;
  size_t len;
  uint32_t max_header;
  uint64_t max_body;
  int broken;
  if (size < 2) return 0;
  in = (const char *)data + 2;
  len = size - 2;
  /* small limits most of the time, so they are reached; the defaults otherwise */
  max_header = (data[1] & 0x80) ? 0 : 32u + (uint32_t)(data[1] & 0x7f) * 8u;
  max_body = (data[1] & 0x80) ? 0 : 1u + (uint64_t)(data[1] & 0x0f) * 64u;
  broken = transcript(in, len, max_header, max_body, SPLIT_WHOLE, 0, whole, OUT_CAP);
  broken += transcript(in, len, max_header, max_body, SPLIT_BYTES, 0, bytes, OUT_CAP);
  broken += transcript(in, len, max_header, max_body, SPLIT_RANDOM, data[0], random_, OUT_CAP);
  if (broken) {
    fprintf(stderr, "broken invariant:\n  %s\n  %s\n  %s\n", whole, bytes, random_);
    abort();
  }
  same("one byte at a time", whole, bytes);
  same("random pieces", whole, random_);
  return 0;
}
