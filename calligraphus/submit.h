/*
 * One block on its way to its bucket, whoever sent it (a producer's
 * produce request, another writer's forward, a Scribe call): checked
 * (category, bucket, header and payload CRC, every record against the
 * category's limit), then appended here if this writer owns the bucket,
 * relayed once to the owner if another writer does (a forwarded block is
 * never forwarded again), or refused with why. The request it belongs to is
 * the caller's: produce.c and scribe.c each answer theirs when every block
 * has its outcome.
 */
#ifndef CAL_SUBMIT_H
#define CAL_SUBMIT_H

#include "bucket.h"
#include "members.h"
#include "node.h"
#include "proto/produce.pb-c.h"
#include "server.h"

typedef struct cal_submit_s cal_submit_t;

/* The block's outcome is in s->status and s->result. Runs once, maybe inside cal_submit. */
typedef void (*cal_submit_cb)(cal_submit_t *s);

struct cal_submit_s {
    cal_append_t append; /* first: the append callback finds the submit from it */
    cal_submit_cb cb;
    void *arg;
    /* The outcome, valid from cb on: 0 (stored, or stored earlier: result.duplicate) or a
     * negative code; result is what a producer is answered (status, message, owner, ...). */
    int status;
    Fwpb__BlockResult result;
    uint32_t records; /* the block's record count, once checked */
    /* It went to a bucket's queue or to an owner: a failure then may leave it stored after all
     * (a write or an answer lost); without, a failure means it is stored nowhere. */
    int reached;
    /* private */
    cal_server_t *server;
    cal_cat_state_t *cs;
    uint32_t len;
    int counted; /* its bytes count against the category's share until cal_submit_release */
    int done;
    char owner[CAL_ADDR_MAX];
    char message[160];
};

/*
 * Sends the block data[0..len) to bucket `bucket` of `category` at ack level
 * `ack` (fwpb AckLevel); `forwarded` says another writer relayed it. The
 * caller sets s->cb (and s->arg) first, and keeps s and data valid until cb.
 */
void cal_submit(cal_server_t *srv, cal_submit_t *s, const char *category, uint32_t bucket, int ack,
                int forwarded, const uint8_t *data, uint32_t len);

/* 1 if the block only waits for this writer's own disk (no forward under way). */
int cal_submit_is_local(const cal_submit_t *s);

/* Gives back the block's share of its category's in-flight bytes (once its answer is out). */
void cal_submit_release(cal_submit_t *s);

#endif
