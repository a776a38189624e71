/*
 * transcript.h: runs the HTTP shim over a byte stream delivered in pieces
 * and writes down what it reported, for the tests and the fuzzer.
 */
#ifndef ASYNC_HTTP_TRANSCRIPT_H
#define ASYNC_HTTP_TRANSCRIPT_H

#include <stddef.h>
#include <stdint.h>

enum { SPLIT_WHOLE = 0, SPLIT_BYTES = 1, SPLIT_RANDOM = 2 };

/* Feeds in[0..len) to a new parser with these limits, delivered whole, one
** byte at a time or in random pieces (seed), and writes the transcript into
** out (cap bytes, truncated): per message "H <method> <target> <version>
** ka= ch= cl= hb= [name=value]... | M <body length>:<body> | ", an error as
** "E <name> <status>", then "END" (" started" when a message was cut
** short). A broken invariant (an offset outside its buffer, a limit
** exceeded, bytes consumed that were not given) adds "!<what>". Returns the
** number of broken invariants. */
int transcript(const char *in, size_t len, uint32_t max_header, uint64_t max_body,
               int mode, unsigned seed, char *out, size_t cap);

#endif
