/*
 * cp_read: one step of reading a source segment for copying, run on libuv's
 * threadpool (it blocks on the disk). From a position it collects whole,
 * CRC-verified blocks (and at offset 0 the segment header) into a buffer,
 * up to a byte limit, stopping before anything that is not whole and
 * verified: a block still being written, the end of the file, or a damaged
 * block, which is never copied.
 */
#ifndef CP_READ_H
#define CP_READ_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "segment.h"

typedef enum {
    CP_READ_DATA = 0,  /* bytes to copy (out), maybe ending with the seal */
    CP_READ_AGAIN,     /* nothing whole and new yet */
    CP_READ_DAMAGED,   /* the next block (or the header) is damaged */
    CP_READ_GONE,      /* the segment does not exist (deleted?) */
    CP_READ_NO_HEADER, /* the header is not whole yet */
    CP_READ_ERROR,     /* an I/O error (error holds -errno) */
} cp_read_status_t;

typedef struct cp_read_s {
    /* in */
    char path[4200]; /* a bucket directory (4096) plus a segment name */
    uint64_t offset; /* 0 = from the start, header included */
    size_t limit;    /* stop adding blocks past this many bytes (one block always fits) */
    /* out */
    cp_read_status_t status;
    fw_buf_t out;
    uint64_t end;      /* offset after the last byte in out */
    int sealed;        /* out ends with the seal block */
    uint32_t blocks;   /* data blocks in out */
    int64_t oldest_ts; /* max_ts of the first data block in out (0 if none) */
    uint64_t damage_offset;
    int damage_why; /* a block error code */
    int error;
} cp_read_t;

/* Reads one step; blocking. r->out is reset first (its memory is reused). */
void cp_read_run(cp_read_t *r);

#endif
