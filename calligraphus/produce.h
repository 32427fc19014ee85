/*
 * Produce, forward and metadata requests: the calligraphus side of
 * proto/produce.proto. Each block of a request goes its way through
 * cal_submit (submit.h); the answer goes out when every block has its
 * result, at the request's ack level.
 */
#ifndef CAL_PRODUCE_H
#define CAL_PRODUCE_H

#include "conn.h"
#include "frame.h"

/* A metadata request may name this many categories (producers send 64 at most). */
#define CAL_METADATA_MAX_CATEGORIES 1024

/* freeway's own protocol on a connection: frames of proto/produce.proto. */
extern const cal_conn_proto_t cal_produce_proto;

#endif
