/*
 * asyncrt HTTP/1.1 shim: request parsing over libhttp-parser and gzip over
 * zlib, for the LuaJIT FFI.
 *
 * No callbacks into Lua. The caller feeds bytes with ahttp_feed(); the shim
 * runs http-parser over them and fills an ahttp_msg (read through
 * ahttp_message()) with copies of what it saw. ahttp_feed() stops:
 *   - after the header block (state AHTTP_HEADERS): the caller may answer
 *     "100 Continue" or refuse; the next feed goes on with the body;
 *   - after a complete message (AHTTP_COMPLETE): pipelined requests are
 *     handled one at a time; ahttp_next() readies the parser for the next
 *     message, then feed the bytes that were not consumed;
 *   - at an error (AHTTP_ERROR): error, detail and ahttp_error_status() say
 *     what to answer; the parser takes nothing more until ahttp_next().
 *
 * Limits (per parser): the header block (request line, header lines and the
 * blank line, leading empty lines included) may not exceed max_header bytes
 * (431); a body may not exceed max_body bytes, declared (Content-Length,
 * refused at the header block) or received (chunked) (413); the bytes after
 * the header block, chunk framing included, may not exceed 2 * max_body +
 * 64 KiB (413). Trailer fields are dropped; http-parser's own limit (80 KiB)
 * bounds them (431).
 *
 * Framing rules beyond http-parser (RFC 9112): Content-Length together with
 * Transfer-Encoding, or Content-Length twice, is refused (400); a
 * Transfer-Encoding other than exactly "chunked" is refused (501; in an
 * HTTP/1.0 request 400); an obs-fold line, a header name that is not a
 * token, a missing or repeated Host in HTTP/1.1 and a repeated Host in 1.0
 * are refused (400); a major version other than 1 gets 505.
 *
 * Caveats:
 *  - Header names are lowercased in the copy; values lose the whitespace
 *    around them.
 *  - Every refusal depends only on the bytes, never on how they were split
 *    into feeds (the fuzzer, src/http/test/fuzz_http.c, checks it): header
 *    names are checked when the header block ends, not as they arrive.
 *  - Constants Lua reads are enums: the FFI declarations are generated from
 *    this file (tools/cdef.lua), so keep it free of macros in declarations
 *    and never close a brace on a line of its own.
 *  - Not thread-safe per parser; parsers are independent.
 */
#ifndef ASYNC_HTTP_H
#define ASYNC_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* ===== request parser ===== */

enum {
  AHTTP_DEFAULT_MAX_HEADER = 16384,     /* bytes of the header block */
  AHTTP_DEFAULT_MAX_BODY   = 1048576    /* bytes of a request body */
};

/* Where the last ahttp_feed() stopped. */
typedef enum ahttp_state {
  AHTTP_NEED_MORE = 0,    /* every byte given was consumed; the message goes on */
  AHTTP_HEADERS   = 1,    /* the header block is complete; feed the rest for the body */
  AHTTP_COMPLETE  = 2,    /* a message is complete; ahttp_next() before feeding more */
  AHTTP_ERROR     = 3     /* refused; see error */
} ahttp_state;

/* Why a request was refused; ahttp_error_status() maps each to its answer. */
typedef enum ahttp_error {
  AHTTP_OK = 0,
  AHTTP_E_MALFORMED,            /* 400: http-parser refused the bytes */
  AHTTP_E_HEADERS_TOO_LARGE,    /* 431: header block over max_header (trailers: 80 KiB) */
  AHTTP_E_BODY_TOO_LARGE,       /* 413: body over max_body */
  AHTTP_E_CL_TE,                /* 400: Content-Length with Transfer-Encoding */
  AHTTP_E_DUPLICATE_CL,         /* 400: Content-Length more than once */
  AHTTP_E_BAD_HEADER,           /* 400: obs-fold or a name that is not a token */
  AHTTP_E_HOST,                 /* 400: Host missing (1.1) or repeated */
  AHTTP_E_TRANSFER_ENCODING,    /* 501: a transfer coding other than chunked */
  AHTTP_E_VERSION,              /* 505: HTTP major version other than 1 */
  AHTTP_E_NOMEM,                /* 503: out of memory */
  AHTTP_E_COUNT
} ahttp_error;

/* One header field; offsets into ahttp_msg.text. */
typedef struct ahttp_header {
  uint32_t name_off, name_len;      /* lowercased */
  uint32_t value_off, value_len;    /* without surrounding whitespace */
} ahttp_header;

/* What the parser has seen of the current message. Valid until the next
   ahttp_feed() or ahttp_next(); the pointers belong to the parser. */
typedef struct ahttp_msg {
  int32_t state;                /* ahttp_state of the last feed */
  int32_t error;                /* ahttp_error; AHTTP_OK unless state is AHTTP_ERROR */
  const char *detail;           /* static text on error: the rule or http-parser's errno name */
  int32_t started;              /* 1 once a byte of a message was consumed */
  int32_t headers_done;         /* 1 once the header block was complete and accepted */
  int32_t request_line;         /* 1 once method, target and version are filled in */
  int32_t method;               /* http-parser's method number; ahttp_method_name() */
  int32_t http_major, http_minor;
  int32_t keep_alive;           /* 1: the connection may stay open afterwards */
  int32_t chunked;              /* the body is chunked */
  int64_t content_length;       /* -1 when absent */
  uint32_t header_bytes;        /* size of the header block consumed so far */
  uint32_t target_off, target_len;    /* request target, into text */
  uint32_t nheaders;
  const ahttp_header *headers;
  const char *text;             /* target, header names and values */
  uint32_t text_len;
  const char *body;             /* the body so far, de-chunked */
  size_t body_len;
} ahttp_msg;

typedef struct ahttp_parser ahttp_parser;

ahttp_parser *ahttp_new(uint32_t max_header, uint64_t max_body);
void ahttp_free(ahttp_parser *p);
const ahttp_msg *ahttp_message(const ahttp_parser *p);
size_t ahttp_feed(ahttp_parser *p, const char *buf, size_t len);
void ahttp_next(ahttp_parser *p);
const char *ahttp_method_name(int32_t method);
const char *ahttp_error_name(int32_t error);
int32_t ahttp_error_status(int32_t error);

/* ===== gzip ===== */

typedef enum ahttp_gz_status {
  AHTTP_GZ_OK = 0,
  AHTTP_GZ_ENOMEM = -1,         /* out of memory */
  AHTTP_GZ_EFINISHED = -2,      /* the stream was finished already */
  AHTTP_GZ_EZLIB = -3           /* zlib refused (bad level) */
} ahttp_gz_status;

typedef struct ahttp_gz ahttp_gz;

int ahttp_gzip(const char *in, size_t len, int level, char **out, size_t *out_len);
void ahttp_gzip_release(char *buf);
ahttp_gz *ahttp_gz_new(int level);
int ahttp_gz_write(ahttp_gz *z, const char *in, size_t len, int finish,
                   const char **out, size_t *out_len);
void ahttp_gz_free(ahttp_gz *z);

#endif
