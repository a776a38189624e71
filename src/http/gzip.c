/*
 * gzip.c: gzip (RFC 1952) output through zlib, for response bodies.
 *
 * Two shapes: ahttp_gzip() compresses a whole buffer at once into a buffer
 * the caller releases with ahttp_gzip_release(); an ahttp_gz stream
 * compresses piece by piece with a sync flush after each piece, so every
 * piece written to a socket can be decoded as soon as it arrives (streamed
 * HTML), and finishes with the gzip trailer.
 *
 * Caveats: windowBits 31 (gzip wrapper, 32 KiB window) and memLevel 8: a
 * stream holds about 256 KiB of zlib state until it is freed.
 */
#include "http.h"

#include <limits.h>
#include <stdlib.h>
#include <zlib.h>

enum { GZ_WINDOW_BITS = 31, GZ_MEM_LEVEL = 8 };

struct ahttp_gz {
  z_stream zs;
  char *out;            /* output of the last write */
  size_t out_cap;
  int finished;
};

/* The zlib level for `level` (-1 or out of 0..9: zlib's default). */
static int gz_level(int level)
{
  return level < 0 || level > 9 ? Z_DEFAULT_COMPRESSION : level;
}

/* ===== one-shot ===== */

/* Compresses in[0..len) into a new buffer (*out, *out_len); returns
** AHTTP_GZ_OK or a negative ahttp_gz_status (then *out is NULL). */
int ahttp_gzip(const char *in, size_t len, int level, char **out, size_t *out_len)
{
  z_stream zs = { 0 };
  uLong bound;
  int rc;
  *out = NULL;
  *out_len = 0;
  if (len > UINT_MAX) return AHTTP_GZ_EZLIB;   /* zlib counts in uInt */
  rc = deflateInit2(&zs, gz_level(level), Z_DEFLATED, GZ_WINDOW_BITS, GZ_MEM_LEVEL,
                    Z_DEFAULT_STRATEGY);
  if (rc == Z_MEM_ERROR) return AHTTP_GZ_ENOMEM;
  if (rc != Z_OK) return AHTTP_GZ_EZLIB;
  bound = deflateBound(&zs, (uLong)len);
  *out = malloc(bound);
  if (*out == NULL) {
    deflateEnd(&zs);
    return AHTTP_GZ_ENOMEM;
  }
  zs.next_in = (Bytef *)(uintptr_t)in;  /* zlib does not write through next_in */
  zs.avail_in = (uInt)len;
  zs.next_out = (Bytef *)*out;
  zs.avail_out = (uInt)bound;
  rc = deflate(&zs, Z_FINISH);
  *out_len = bound - zs.avail_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    free(*out);
    *out = NULL;
    *out_len = 0;
    return AHTTP_GZ_EZLIB;
  }
  return AHTTP_GZ_OK;
}

/* Frees a buffer ahttp_gzip() returned (NULL is fine). */
void ahttp_gzip_release(char *buf)
{
  free(buf);
}

/* ===== streaming ===== */

/* A compressor stream; NULL when out of memory or the level is refused. */
ahttp_gz *ahttp_gz_new(int level)
{
  ahttp_gz *z = calloc(1, sizeof *z);
  if (z == NULL) return NULL;
  if (deflateInit2(&z->zs, gz_level(level), Z_DEFLATED, GZ_WINDOW_BITS, GZ_MEM_LEVEL,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    free(z);
    return NULL;
  }
  return z;
}

/* Compresses in[0..len) and sync-flushes (finish: ends the stream with the
** gzip trailer). The output (*out, *out_len) belongs to the stream and stays
** valid until its next call. Returns AHTTP_GZ_OK or a negative status. */
int ahttp_gz_write(ahttp_gz *z, const char *in, size_t len, int finish,
                   const char **out, size_t *out_len)
{
  size_t used = 0;
  int flush = finish ? Z_FINISH : Z_SYNC_FLUSH, rc;
  *out = NULL;
  *out_len = 0;
  if (z->finished) return AHTTP_GZ_EFINISHED;
  if (len > UINT_MAX) return AHTTP_GZ_EZLIB;
  z->zs.next_in = (Bytef *)(uintptr_t)in;
  z->zs.avail_in = (uInt)len;
  for (;;) {
    if (z->out_cap - used < 64) {   /* room for at least a flush marker */
      size_t cap = z->out_cap ? z->out_cap * 2 : (size_t)deflateBound(&z->zs, (uLong)len) + 64;
      char *b = realloc(z->out, cap);
      if (b == NULL) return AHTTP_GZ_ENOMEM;
      z->out = b;
      z->out_cap = cap;
    }
    z->zs.next_out = (Bytef *)z->out + used;
    z->zs.avail_out = (uInt)(z->out_cap - used > UINT_MAX ? UINT_MAX : z->out_cap - used);
    rc = deflate(&z->zs, flush);
    used = (size_t)((char *)z->zs.next_out - z->out);
    if (rc == Z_STREAM_END) {
      z->finished = 1;
      break;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) return AHTTP_GZ_EZLIB;
    /* done once the input is taken and deflate left output room to spare */
    if (!finish && z->zs.avail_in == 0 && z->zs.avail_out > 0) break;
  }
  *out = z->out;
  *out_len = used;
  return AHTTP_GZ_OK;
}

/* Frees a stream, finished or not (NULL is fine). */
void ahttp_gz_free(ahttp_gz *z)
{
  if (z == NULL) return;
  deflateEnd(&z->zs);
  free(z->out);
  free(z);
}
