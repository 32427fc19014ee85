/*
 * cal_conn: one TCP connection, as a frame reader and writer. It reads
 * frames into its buffer, hands each whole frame to produce.c, and queues
 * answers. A malformed frame gets an ERROR frame and closes this connection
 * only. The connection is freed once it is closed and no request holds it
 * (requests keep a reference until their answer is written or dropped).
 */
#ifndef CAL_CONN_H
#define CAL_CONN_H

#include <stdint.h>

#include <uv.h>

#include "buf.h"
#include "frame.h"
#include "server.h"

struct cal_conn_s {
    uv_tcp_t tcp;
    cal_server_t *server;
    cal_conn_t *prev, *next;
    char peer[64];
    fw_buf_t in;       /* bytes read, not yet consumed as frames */
    size_t need;       /* bytes the frame being read will span */
    uint64_t inflight; /* request bytes not yet answered */
    int reading;
    int processing;
    int closing;
    int refs;   /* requests still holding the connection */
    int writes; /* writes not yet completed */
};

/* Accepts a connection from the listener. 0 or a negative errno. */
int cal_conn_accept(cal_server_t *s, uv_stream_t *listener);
/* Sends a frame with a packed protobuf meta (and no body). */
void cal_conn_send(cal_conn_t *c, uint8_t type, const ProtobufCMessage *meta);
/* Sends an ERROR frame and closes the connection after it. */
void cal_conn_fail(cal_conn_t *c, int status, const char *message);
void cal_conn_close(cal_conn_t *c);
/* Starts or stops reading as the memory bounds say. */
void cal_conn_update_reading(cal_conn_t *c);
void cal_conn_ref(cal_conn_t *c);
void cal_conn_unref(cal_conn_t *c);

#endif
