/*
 * A blocking ptail subscriber for tests, speaking raw frames (no
 * libfreeway), so a test checks ptail alone: it subscribes, reads the
 * stream, checks every block again (both CRCs), and hands each record,
 * checkpoint and gap to the test.
 */
#ifndef FWT_STREAM_H
#define FWT_STREAM_H

#include <stdint.h>

#include "block.h"
#include "buf.h"
#include "checkpoint.h"
#include "fwt_wire.h"
#include "proto/stream.pb-c.h"

typedef struct fwt_stream_s fwt_stream_t;

typedef void (*fwt_stream_record_fn)(fwt_stream_t *s, const fw_position_t *pos,
                                     const fw_record_t *rec);

struct fwt_stream_s {
    int fd;
    fwt_wire_reader_t in;
    fw_buf_t scratch;
    fwt_stream_record_fn on_record; /* may be NULL */
    void *arg;
    uint64_t records, checkpoints, gaps;
    uint64_t stream_bytes; /* STREAM frames received, whole (what ptail charges to the credit) */
    fw_buf_t last_token;   /* the newest checkpoint's token */
    char last_gap_reason[256]; /* the newest gap's reason */
    fw_position_t last_gap_from, last_gap_to;
    int subscribed;
};

/* Connects to address and sends req (category "" fails the test). */
void fwt_stream_open(fwt_stream_t *s, const char *address, const Fwpb__SubscribeRequest *req,
                     fwt_stream_record_fn on_record, void *arg);

/*
 * Reads and handles one frame: 1, 0 when ptail closed the connection, or
 * -ETIMEDOUT. An ERROR frame, a block that fails its checks or an odd
 * message fails the test.
 */
int fwt_stream_step(fwt_stream_t *s, int timeout_ms);

/* Reads until `records` records in all came; fails the test after timeout_ms without progress. */
void fwt_stream_until(fwt_stream_t *s, uint64_t records, int timeout_ms);

/* Grants ptail `bytes` more credit. */
void fwt_stream_credit(fwt_stream_t *s, uint64_t bytes);

void fwt_stream_close(fwt_stream_t *s);

/* The line number at the start of a numbered line's value (see fwt_root.h). */
uint64_t fwt_stream_line_number(const fw_record_t *rec);

#endif
