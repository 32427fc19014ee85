/*
 * cal_conn: one TCP connection, as a reader of messages and a writer of
 * answers, for one protocol: freeway's frames (produce.c) or Scribe's
 * Thrift (scribe.c). It reads into its buffer, hands each whole message to
 * its protocol and queues answers. A malformed message closes this
 * connection only (after a last word, where the protocol has one). The
 * connection is freed once it is closed and no request holds it (requests
 * keep a reference until their answer is written or dropped).
 */
#ifndef CAL_CONN_H
#define CAL_CONN_H

#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "buf.h"
#include "frame.h"
#include "server.h"

/* What a connection's protocol does with its bytes. */
typedef struct cal_conn_proto_s {
    const char *name; /* for logs: "produce", "scribe" */
    /*
     * Handles the first whole message of buf[0..len): the bytes it took; 0
     * when more must come (*need: the message's whole size, when known); or
     * a negative code once it called cal_conn_fail.
     */
    ssize_t (*input)(cal_conn_t *c, const uint8_t *buf, size_t len, size_t *need);
    /* The last word to a peer that sent something malformed; the connection closes after it. */
    void (*fail)(cal_conn_t *c, int status, const char *message);
    /* The connection is closing; requests of it may still be under way. May be NULL. */
    void (*closed)(cal_conn_t *c);
} cal_conn_proto_t;

struct cal_conn_s {
    uv_tcp_t tcp;
    cal_server_t *server;
    cal_conn_t *prev, *next;
    const cal_conn_proto_t *proto;
    void *proto_arg;  /* the listener's, for the protocol */
    void *proto_data; /* the protocol's own state of the connection */
    char peer[64];
    fw_buf_t in;       /* bytes read, not yet consumed as messages */
    size_t need;       /* bytes the message being read will span */
    uint64_t inflight; /* request bytes not yet answered */
    int reading;
    int processing;
    int closing;
    int held;   /* its protocol takes no more messages for now (cal_conn_hold) */
    int refs;   /* requests still holding the connection */
    int writes; /* writes not yet completed */
};

/* Accepts a connection from the listener, speaking proto. 0 or a negative errno. */
int cal_conn_accept(cal_server_t *s, uv_stream_t *listener, const cal_conn_proto_t *proto,
                    void *proto_arg);
/* Sends a freeway frame with a packed protobuf meta (and no body); close_after: the last. */
void cal_conn_send_frame(cal_conn_t *c, uint8_t type, const ProtobufCMessage *meta,
                         int close_after);
/* Sends a freeway frame with a packed protobuf meta (and no body). */
void cal_conn_send(cal_conn_t *c, uint8_t type, const ProtobufCMessage *meta);
/* Sends buf's bytes and takes its memory (buf is left empty); close_after: the last. */
void cal_conn_send_buf(cal_conn_t *c, fw_buf_t *buf, int close_after);
/* Logs why, stops reading, lets the protocol say its last word; the connection closes. */
void cal_conn_fail(cal_conn_t *c, int status, const char *message);
void cal_conn_close(cal_conn_t *c);
/*
 * Holds the connection's next messages (hold 1) until released (hold 0).
 * It goes on reading a little meanwhile, so that a peer's close is seen
 * while a message of it is still being handled.
 */
void cal_conn_hold(cal_conn_t *c, int hold);
/* Starts or stops reading as the memory bounds say. */
void cal_conn_update_reading(cal_conn_t *c);
void cal_conn_ref(cal_conn_t *c);
void cal_conn_unref(cal_conn_t *c);

#endif
