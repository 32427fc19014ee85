/*
 * Produce, forward and metadata requests: the calligraphus side of
 * proto/produce.proto. Each block of a request is checked (category,
 * bucket, header and payload CRC, every record's size), then appended to
 * the bucket if this writer owns it, relayed to the owner if another
 * writer does (once: a forwarded block is never forwarded again), or
 * answered with why not. The answer goes out when every block has its
 * result, at the request's ack level.
 */
#ifndef CAL_PRODUCE_H
#define CAL_PRODUCE_H

#include "conn.h"
#include "frame.h"

/* A metadata request may name this many categories (producers send 64 at most). */
#define CAL_METADATA_MAX_CATEGORIES 1024

/* Handles one whole frame read from c (its bytes are valid only during the call). */
void cal_produce_frame(cal_conn_t *c, const fw_frame_t *f);

#endif
