/*
 * A blocking, byte-level freeway client for tests: it speaks frames
 * directly (no libfreeway), so a test can send exactly the bytes it wants,
 * good or bad, and read exactly what comes back.
 */
#ifndef FWT_WIRE_H
#define FWT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "frame.h"

/* Connects to "host:port"; fails the test if it cannot. Returns the socket. */
int fwt_wire_connect(const char *address);

/* Writes all of buf; 0 or -errno (a closed peer is not a test failure). */
int fwt_wire_write(int fd, const void *buf, size_t len);

/*
 * Reads one frame within timeout_ms into *store and points *f into it.
 * 1 on a frame, 0 on EOF (the peer closed), -ETIMEDOUT, or another -errno.
 * For one answer at a time: bytes past the frame are dropped by the next
 * call (a stream of frames wants fwt_wire_next).
 */
int fwt_wire_read(int fd, int timeout_ms, fw_buf_t *store, fw_frame_t *f);

/* A stream of frames from one socket: bytes read ahead are kept. */
typedef struct fwt_wire_reader_s {
    fw_buf_t buf;
    size_t used; /* bytes of the frame returned last */
} fwt_wire_reader_t;

/* Like fwt_wire_read, for the next frame of a stream; *f is valid until the next call. */
int fwt_wire_next(int fd, int timeout_ms, fwt_wire_reader_t *r, fw_frame_t *f);

/* One block of n records "key-i" / value_len bytes, built with the real builder. */
void fwt_wire_block(fw_buf_t *out, uint64_t producer_id, uint64_t seq, int n, size_t value_len);

/*
 * Sends a PRODUCE_REQ with one block for (category, bucket) and reads the
 * answer. Returns the block's status (fwpb.Status), or -1 if the connection
 * ended or answered with something else; *result_out (if not NULL) gets the
 * unpacked response (free with fwpb__produce_response__free_unpacked).
 */
struct Fwpb__ProduceResponse;
int fwt_wire_produce(int fd, uint64_t request_id, const char *category, uint32_t bucket,
                     const void *block, size_t len, struct Fwpb__ProduceResponse **result_out);

/*
 * One block (producer, seq) of n records of value_len bytes to (category,
 * bucket) on a connection of its own to address; the block's status, as
 * fwt_wire_produce returns it (the request id is seq).
 */
int fwt_wire_produce_once(const char *address, const char *category, uint32_t bucket,
                          uint64_t producer, uint64_t seq, int n, size_t value_len);

#endif
