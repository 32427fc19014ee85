/* Scribe's interface on calligraphus: Log calls into blocks, fb303's calls (see scribe.h). */
#include "scribe.h"

#include "block.h"
#include "clock.h"
#include "crc32c.h"
#include "error.h"
#include "log.h"
#include "names.h"
#include "scribe_thrift.h"
#include "submit.h"
#include "version.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Raw record bytes per block before it is closed and the next one started. */
#define BLOCK_RAW_MAX (1u << 20)
/* How often remembered calls past their window are dropped. */
#define EXPIRE_MS 1000
/*
 * Log calls a connection may have running at once. A client that sends
 * its next call before the answer (the npm client sends a call per line)
 * gets them stored together, in one group commit, and answered in order.
 */
#define PIPELINE_MAX 64
/*
 * A block that fails for a passing reason (its bucket between owners, its
 * category over its share, an earlier block of its chain not stored yet)
 * is sent again after RESUBMIT_FIRST_MS, doubling up to RESUBMIT_MAX_MS,
 * while the call is younger than --scribe-resubmit. Only past that is the
 * call answered TRY_LATER: an answer after part of a call was stored is
 * one a client may re-batch (the npm client does) and so store twice.
 */
#define RESUBMIT_FIRST_MS 10
#define RESUBMIT_MAX_MS   200

typedef struct scribe_conn_s scribe_conn_t;
typedef struct scribe_call_s scribe_call_t;
typedef struct call_block_s call_block_t;

/* An answer in the connection's order: a Log call's, when it finishes, or one ready now. */
typedef struct reply_s reply_t;
struct reply_s {
    reply_t *next;
    scribe_call_t *call; /* NULL: out is ready */
    fw_buf_t out;
};

struct cal_scribe_s {
    cal_server_t *server;
    cal_scribe_config_t cfg;
    char listen[128];
    cal_scribe_retry_t retry;
    uv_timer_t timer;
    uv_timer_t resubmit_timer;
    call_block_t *resubmit_head, *resubmit_tail; /* blocks waiting to be sent again, in order */
    int open_timers;                             /* closed one by one at cal_scribe_close */
    int closing;                                 /* cal_scribe_close was called */
    int64_t resubmit_armed_at; /* when the resubmit timer fires (INT64_MAX: it does not) */
    void (*closed_cb)(void *arg);
    void *closed_arg;
    int64_t started_s;
    uint64_t rr;        /* spreads unkeyed messages over the buckets */
    uint64_t rand[2];   /* xorshift128+ state, for producer ids */
    uint64_t warned_ms; /* the last "unknown category" warning */
    int creating;       /* categories being created for calls (--scribe-unknown-category create) */
    /* counts, for getCounters and /metrics */
    fw_metric_counter_t *calls_ok, *calls_try_later, *calls_refused;
    fw_metric_counter_t *messages_stored, *retries, *blocks_skipped, *blocks_resubmitted;
};

/* ---- producer ids ------------------------------------------------------------------------ */

static uint64_t next_rand(cal_scribe_t *sc)
{
    uint64_t s1 = sc->rand[0];
    const uint64_t s0 = sc->rand[1];
    sc->rand[0] = s0;
    s1 ^= s1 << 23;
    sc->rand[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return sc->rand[1] + s0;
}

/* A producer id no other producer has: random, never 0. */
static uint64_t new_producer_id(cal_scribe_t *sc)
{
    uint64_t id;
    while ((id = next_rand(sc)) == 0)
        ;
    return id;
}

/* ---- a connection's chains ----------------------------------------------------------------
 *
 * A connection sends each bucket's blocks under one producer id, sequences
 * 1, 2, 3...: a writer remembers one entry per connection, not one per
 * call. A block that was not stored breaks its chain (the next would be a
 * gap): the bucket's next call starts a new id.
 *
 * An owner takes a producer it does not know at any sequence and counts
 * everything below it as stored (docs/protocol.md). So a chain follows the
 * producers' probe rule: its first block (sequence 1) goes alone, and the
 * chain's later blocks are sent only once it is stored; until then the
 * connection's next call that needs the chain waits (it is read again
 * after the next answer), and a call's own further blocks of a new chain
 * go under ids of their own (each a sequence 1). Once the owner knows the
 * id, a block that overtakes an unstored earlier one is a sequence gap,
 * never a loss.
 */

typedef enum {
    CHAIN_NEW = 0, /* no block sent under the id yet */
    CHAIN_PROBING, /* its first block is out, unanswered */
    CHAIN_OPEN,    /* its first block is stored: the owner knows the id */
} chain_state_t;

typedef struct chain_s {
    char category[FW_CATEGORY_MAX + 1];
    uint32_t bucket;
    uint64_t producer_id; /* 0: an empty slot */
    uint64_t next_seq;
    uint64_t stored_through; /* every sequence up to this one is stored (answered OK) */
    chain_state_t state;
} chain_t;

struct scribe_conn_s {
    cal_scribe_t *sc;
    char ip[48];
    chain_t *chains;
    size_t chains_cap, nchains; /* open addressing; cap a power of two */
    int calls;                  /* calls under way */
    int closed;                 /* the connection closed: freed after its last call */
    reply_t *head, *tail;       /* answers not sent yet, in the order of their calls */
    int queued;                 /* entries from head to tail: running calls and answers due */
    int waiting;  /* the next call is one still running here: it waits for that one's answer */
    int flushing; /* in flush_replies: a close inside it leaves the freeing to it */
};

static size_t chain_slot(const scribe_conn_t *k, const char *category, uint32_t bucket)
{
    uint32_t h = fw_hash32(category, strlen(category)) ^ (bucket * 0x9e3779b9u);
    size_t i = h & (k->chains_cap - 1);
    while (k->chains[i].producer_id != 0 &&
           (k->chains[i].bucket != bucket || strcmp(k->chains[i].category, category) != 0))
        i = (i + 1) & (k->chains_cap - 1);
    return i;
}

/* The chain of (category, bucket) if there is one. */
static chain_t *chain_find(scribe_conn_t *k, const char *category, uint32_t bucket)
{
    if (k->chains_cap == 0)
        return NULL;
    chain_t *ch = &k->chains[chain_slot(k, category, bucket)];
    return ch->producer_id != 0 ? ch : NULL;
}

/* Starts the chain again under a new id: the next block is a first one. */
static void chain_restart(chain_t *ch, cal_scribe_t *sc)
{
    ch->producer_id = new_producer_id(sc);
    ch->next_seq = 1;
    ch->stored_through = 0;
    ch->state = CHAIN_NEW;
}

/* The chain of (category, bucket), made if new; NULL if out of memory. */
static chain_t *chain_get(scribe_conn_t *k, const char *category, uint32_t bucket)
{
    if ((k->nchains + 1) * 4 > k->chains_cap * 3) {
        size_t cap = k->chains_cap ? k->chains_cap * 2 : 16;
        chain_t *old = k->chains;
        size_t old_cap = k->chains_cap;
        k->chains = calloc(cap, sizeof(*k->chains));
        if (k->chains == NULL) {
            k->chains = old;
            return NULL;
        }
        k->chains_cap = cap;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].producer_id != 0)
                k->chains[chain_slot(k, old[i].category, old[i].bucket)] = old[i];
        free(old);
    }
    chain_t *ch = &k->chains[chain_slot(k, category, bucket)];
    if (ch->producer_id == 0) {
        snprintf(ch->category, sizeof(ch->category), "%s", category);
        ch->bucket = bucket;
        ch->producer_id = new_producer_id(k->sc);
        ch->next_seq = 1;
        ch->stored_through = 0;
        ch->state = CHAIN_NEW;
        k->nchains++;
    }
    return ch;
}

static void conn_state_free(scribe_conn_t *k)
{
    free(k->chains);
    free(k);
}

/*
 * Takes no more calls while PIPELINE_MAX answers are due (calls running,
 * or fb303 answers behind one: a client that never reads them costs only
 * this much) or the next one waits for an answer.
 */
static void update_hold(cal_conn_t *c, scribe_conn_t *k)
{
    int hold = k->queued >= PIPELINE_MAX || k->waiting;
    if (hold != c->held)
        cal_conn_hold(c, hold);
}

/* A new entry at the tail of the connection's answers (call NULL: a ready one); NULL if out of
 * memory. */
static reply_t *reply_push(scribe_conn_t *k, scribe_call_t *call)
{
    reply_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->call = call;
    r->out = (fw_buf_t)FW_BUF_INIT;
    if (k->tail != NULL)
        k->tail->next = r;
    else
        k->head = r;
    k->tail = r;
    k->queued++;
    return r;
}

/* ---- a call ------------------------------------------------------------------------------ */

typedef struct call_cat_s {
    cal_category_t *cat;
    char name[FW_CATEGORY_MAX + 1];
    uint32_t hash;
} call_cat_t;

/* The messages of one (category, bucket) of a call, as they are built into blocks. */
typedef struct call_group_s {
    uint32_t cat; /* index into the call's categories */
    uint32_t bucket;
    fw_block_builder_t bld;
    int used;
} call_group_t;

struct call_block_s {
    cal_submit_t submit; /* first: the submit callback finds the block from it */
    scribe_call_t *call;
    uint32_t index; /* in the plan */
    uint32_t cat;
    uint32_t bucket;
    uint32_t records;
    int skipped; /* stored by an earlier try of the call: not sent */
    int probe;   /* the first block of its connection's chain (sequence 1) */
    int solo;    /* under an id of its own (a new chain's further block in this call) */
    fw_buf_t bytes;
    /* sent again after a passing failure (resubmit) */
    int64_t resubmit_at;
    int64_t resubmit_wait;
    call_block_t *resubmit_next;
};

struct scribe_call_s {
    cal_scribe_t *sc;
    cal_conn_t *conn;
    scribe_conn_t *k;
    cal_scribe_memo_t *entry;
    cal_scribe_call_t thrift; /* name points to name_copy */
    char name_copy[CAL_SCRIBE_NAME_MAX + 1];
    call_cat_t *cats;
    uint32_t ncats;
    call_block_t *blocks;
    uint32_t nblocks, pending;
    int dispatching;
    int64_t resubmit_until; /* failed blocks are sent again until then (monotonic ms) */
    int finished;           /* every block has its outcome; all_stored says which */
    int all_stored;
    int64_t accounted; /* bytes counted against the connection's memory bound */
};

static void call_free(scribe_call_t *call)
{
    for (uint32_t i = 0; i < call->nblocks; i++)
        fw_buf_free(&call->blocks[i].bytes);
    free(call->blocks);
    free(call->cats);
    free(call);
}

/*
 * Sends the reply the codec wrote into out (rc its result), after the
 * answers of the calls before it, or fails the connection.
 */
static void send_reply(cal_conn_t *c, fw_buf_t *out, int rc)
{
    scribe_conn_t *k = c->proto_data;
    if (rc < 0) {
        fw_buf_free(out);
        cal_conn_fail(c, rc, "cannot encode a reply");
        return;
    }
    if (k == NULL || k->head == NULL) {
        cal_conn_send_buf(c, out, 0);
        return;
    }
    reply_t *r = reply_push(k, NULL);
    if (r == NULL) {
        fw_buf_free(out);
        cal_conn_fail(c, -ENOMEM, "out of memory");
        return;
    }
    r->out = *out;
    *out = (fw_buf_t)FW_BUF_INIT;
    update_hold(c, k);
}

static void reply_log(cal_conn_t *c, const cal_scribe_call_t *call, cal_scribe_result_t result)
{
    if (!cal_scribe_call_wants_reply(call))
        return; /* a oneway Log: stored all the same, answered never */
    fw_buf_t out = FW_BUF_INIT;
    send_reply(c, &out, cal_scribe_reply_log(&out, call, result));
}

/*
 * The call's answer goes out (answered) or never will (its connection
 * closed); then the call is freed. Answered OK on a live connection, the
 * client knows: nothing to remember. Otherwise it may send the call again
 * (it never saw the answer, or was told to).
 */
static void call_settle(scribe_call_t *call, int answered)
{
    cal_scribe_t *sc = call->sc;
    cal_scribe_result_t result = call->all_stored ? CAL_SCRIBE_OK : CAL_SCRIBE_TRY_LATER;
    if (answered && cal_scribe_call_wants_reply(&call->thrift)) {
        /* Its turn (flush_replies): straight out, not behind the calls after it. */
        fw_buf_t out = FW_BUF_INIT;
        if (cal_scribe_reply_log(&out, &call->thrift, result) < 0)
            cal_conn_fail(call->conn, -ENOMEM, "cannot encode a reply");
        else
            cal_conn_send_buf(call->conn, &out, 0);
        fw_buf_free(&out);
    }
    if (answered)
        fw_metric_inc(call->all_stored ? sc->calls_ok : sc->calls_try_later);
    /* A write that failed at once closed the connection: the client never saw it. */
    if (call->all_stored && answered && !call->conn->closing)
        cal_scribe_retry_remove(&sc->retry, call->entry);
    else
        cal_scribe_retry_keep(&sc->retry, call->entry, fw_clock_mono_ms());
    cal_conn_unref(call->conn);
    call_free(call);
}

/* Sends the answers that are due: those at the head whose calls have finished. */
static void flush_replies(cal_conn_t *c, scribe_conn_t *k)
{
    reply_t *r;
    k->flushing = 1;
    while (!k->closed && (r = k->head) != NULL && (r->call == NULL || r->call->finished)) {
        k->head = r->next;
        if (k->head == NULL)
            k->tail = NULL;
        k->queued--;
        if (r->call != NULL) {
            call_settle(r->call, 1);
            k->waiting = 0; /* the call it waited for may be this one: it looks again */
        } else {
            cal_conn_send_buf(c, &r->out, 0);
        }
        free(r);
    }
    k->flushing = 0;
    if (k->closed) { /* a write failed: the connection closed under the loop */
        if (k->calls == 0)
            conn_state_free(k);
        return;
    }
    update_hold(c, k);
}

/* The connection's chain the block was sent on, if it is still under the block's id. */
static chain_t *block_chain(const call_block_t *b)
{
    const scribe_call_t *call = b->call;
    if (call->k->closed || b->skipped || b->solo)
        return NULL;
    const cal_scribe_block_plan_t *bp = &call->entry->plan.blocks[b->index];
    chain_t *ch = chain_find(call->k, call->cats[b->cat].name, b->bucket);
    return ch != NULL && ch->producer_id == bp->producer_id ? ch : NULL;
}

/* The call's whole outcome: every block has its own. */
static void call_finish(scribe_call_t *call)
{
    cal_scribe_t *sc = call->sc;
    scribe_conn_t *k = call->k;
    cal_scribe_plan_t *plan = &call->entry->plan;
    int all_stored = 1;
    uint64_t records = 0;
    for (uint32_t i = 0; i < call->nblocks; i++) {
        call_block_t *b = &call->blocks[i];
        cal_scribe_block_plan_t *bp = &plan->blocks[b->index];
        cal_submit_release(&b->submit);
        chain_t *ch = block_chain(b);
        if (b->submit.status == 0) {
            bp->stored = 1;
            if (!b->skipped && !b->submit.result.duplicate)
                records += b->records;
            if (ch != NULL && b->probe)
                ch->state = CHAIN_OPEN; /* the owner knows the id: the chain may pipeline */
            continue;
        }
        all_stored = 0;
        /* Its chain is broken (on_block_done restarted it already, unless it settled
         * unsent): the bucket's next call starts a new producer id. */
        if (ch != NULL)
            chain_restart(ch, sc);
        /*
         * The client's retry of this block: under the same (id, sequence) if a try may have
         * stored it (its owner then drops it as a duplicate) and the block before it under
         * that id is stored (so an owner that forgot the id, taking it at this sequence, loses
         * nothing); else under an id of its own at sequence 1, which no owner can mistake for
         * another block, at worst storing lines twice. A gap proves it is not stored.
         */
        if (b->submit.status == FW_ESEQUENCE_GAP || !bp->maybe_stored || !bp->resend_safe) {
            bp->producer_id = new_producer_id(sc);
            bp->seq = 1;
            bp->maybe_stored = bp->resend_safe = 0;
        }
    }
    fw_metric_add(sc->messages_stored, records);
    call->finished = 1;
    call->all_stored = all_stored;
    cal_server_account(sc->server, call->conn, -call->accounted);
    call->accounted = 0;
    k->calls--;
    if (k->closed) {
        call_settle(call, 0);
        if (k->calls == 0)
            conn_state_free(k);
        return;
    }
    flush_replies(call->conn, k);
}

static void on_resubmit_timer(uv_timer_t *t);

static void block_settled(scribe_call_t *call)
{
    if (--call->pending == 0 && !call->dispatching)
        call_finish(call);
}

/*
 * Whether a failure may pass by itself: anything but a block or a category
 * that can never be taken. A forward that broke, an owner moving or
 * stopping, backpressure, a disk error, an earlier block of the chain not
 * stored yet: each may be gone a moment later.
 */
static int passing_failure(int status)
{
    switch (status) {
    case FW_EUNKNOWN_CATEGORY:
    case FW_EBAD_CATEGORY:
    case FW_EBUCKET_RANGE:
    case FW_EBLOCK_HEADER:
    case FW_EBLOCK_CRC:
    case FW_EBLOCK_CORRUPT:
    case FW_EBLOCK_TOO_LARGE:
    case FW_ERECORD_TOO_LARGE:
    case FW_EPROTOCOL:
        return 0;
    default:
        return 1;
    }
}

/* Runs the timer for `at` unless it already runs for an earlier time. */
static void resubmit_arm(cal_scribe_t *sc, int64_t at)
{
    if (at >= sc->resubmit_armed_at)
        return;
    sc->resubmit_armed_at = at;
    int64_t wait = at - fw_clock_mono_ms();
    uv_timer_start(&sc->resubmit_timer, on_resubmit_timer, (uint64_t)(wait > 0 ? wait : 0), 0);
}

/*
 * Queues a failed block to be sent again under the same (producer id,
 * sequence): if the first send was stored after all, its owner drops the
 * second as a duplicate. 0 if queued; -1 if the call must settle as it is.
 */
static int resubmit_later(call_block_t *b)
{
    scribe_call_t *call = b->call;
    cal_scribe_t *sc = call->sc;
    if (!passing_failure(b->submit.status) || call->k->closed || sc->server->stopping ||
        sc->closing)
        return -1;
    int64_t now = fw_clock_mono_ms();
    int64_t wait = b->resubmit_wait == 0 ? RESUBMIT_FIRST_MS : b->resubmit_wait * 2;
    if (wait > RESUBMIT_MAX_MS)
        wait = RESUBMIT_MAX_MS;
    if (now + wait > call->resubmit_until)
        return -1;
    cal_submit_release(&b->submit);
    b->resubmit_wait = wait;
    b->resubmit_at = now + wait;
    b->resubmit_next = NULL;
    if (sc->resubmit_tail != NULL)
        sc->resubmit_tail->resubmit_next = b;
    else
        sc->resubmit_head = b;
    sc->resubmit_tail = b;
    resubmit_arm(sc, b->resubmit_at);
    return 0;
}

/*
 * A block stored nowhere (refused before it reached a bucket or an owner, in
 * every try) moves under an id of its own at sequence 1 before it is sent
 * again: nothing can then overtake it or be taken for it.
 */
static void renumber_unsent(call_block_t *b)
{
    cal_scribe_block_plan_t *bp = &b->call->entry->plan.blocks[b->index];
    if (b->submit.reached || bp->maybe_stored || (b->solo && bp->seq == 1))
        return;
    uint64_t id = new_producer_id(b->call->sc);
    if (fw_block_set_origin(b->bytes.data, b->bytes.len, id, 1) < 0)
        return; /* cannot happen: the block was built here */
    bp->producer_id = id;
    bp->seq = 1;
    b->solo = 1;
    b->probe = 0;
}

static void on_block_done(cal_submit_t *s)
{
    call_block_t *b = (call_block_t *)s;
    cal_scribe_block_plan_t *bp = &b->call->entry->plan.blocks[b->index];
    chain_t *ch = block_chain(b);
    if (s->status == 0) {
        cal_submit_release(s); /* on disk: its share of the category may go to the call's next */
        if (ch != NULL && bp->seq == ch->stored_through + 1)
            ch->stored_through = bp->seq;
        block_settled(b->call);
        return;
    }
    if (s->reached && s->status != FW_ESEQUENCE_GAP) {
        bp->maybe_stored = 1; /* for every try: one that stored it may be followed by refusals */
        if (bp->seq == 1 || (ch != NULL && ch->stored_through + 1 >= bp->seq))
            bp->resend_safe = 1;
    }
    /* Calls from now on go under a new id: none extends a chain with a hole in it. */
    if (ch != NULL)
        chain_restart(ch, b->call->sc);
    renumber_unsent(b);
    if (resubmit_later(b) == 0)
        return;
    block_settled(b->call);
}

/*
 * Sends the blocks that are due, in the order they failed, so a chain's
 * blocks go in sequence order; settles them as they are when the call's
 * connection or the writer is going away (all of them when `all`).
 */
static void resubmit_due(cal_scribe_t *sc, int all)
{
    int64_t now = fw_clock_mono_ms();
    call_block_t *due = NULL, **due_tail = &due, **link = &sc->resubmit_head;
    sc->resubmit_tail = NULL;
    while (*link != NULL) {
        call_block_t *b = *link;
        if (all || b->resubmit_at <= now) {
            *link = b->resubmit_next;
            b->resubmit_next = NULL;
            *due_tail = b;
            due_tail = &b->resubmit_next;
        } else {
            sc->resubmit_tail = b;
            link = &b->resubmit_next;
        }
    }
    /* Sending may finish calls (and queue blocks again): take each block off first. */
    while (due != NULL) {
        call_block_t *b = due;
        due = b->resubmit_next;
        b->resubmit_next = NULL;
        scribe_call_t *call = b->call;
        if (all || call->k->closed || sc->server->stopping) {
            block_settled(call);
            continue;
        }
        fw_metric_inc(sc->blocks_resubmitted);
        cal_submit(sc->server, &b->submit, call->cats[b->cat].name, b->bucket,
                   FWPB__ACK_LEVEL__ACK_DURABLE, 0, b->bytes.data, (uint32_t)b->bytes.len);
    }
    if (all)
        return;
    int64_t first = INT64_MAX; /* once per firing: the queue's earliest */
    for (const call_block_t *b = sc->resubmit_head; b != NULL; b = b->resubmit_next)
        if (b->resubmit_at < first)
            first = b->resubmit_at;
    if (first != INT64_MAX)
        resubmit_arm(sc, first);
}

static void on_resubmit_timer(uv_timer_t *t)
{
    cal_scribe_t *sc = t->data;
    sc->resubmit_armed_at = INT64_MAX;
    resubmit_due(sc, 0);
}

/* ---- building a Log call's blocks ------------------------------------------------------- */

/* The index of category name in the call's list, added if new; -1 if out of memory. */
static int call_cat_index(scribe_call_t *call, const char *name, size_t *cap)
{
    uint32_t h = fw_hash32(name, strlen(name));
    /* A call names few categories; a hostile one with many costs it, not others. */
    for (uint32_t i = 0; i < call->ncats; i++)
        if (call->cats[i].hash == h && strcmp(call->cats[i].name, name) == 0)
            return (int)i;
    if (call->ncats == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        call_cat_t *cats = realloc(call->cats, ncap * sizeof(*cats));
        if (cats == NULL)
            return -1;
        call->cats = cats;
        *cap = ncap;
    }
    call_cat_t *cc = &call->cats[call->ncats];
    memset(cc, 0, sizeof(*cc));
    snprintf(cc->name, sizeof(cc->name), "%s", name);
    cc->hash = h;
    return (int)call->ncats++;
}

/* A bucket this writer owns of cs, taken in turn; else any bucket in turn. */
static uint32_t pick_bucket(cal_scribe_t *sc, cal_category_t *cat)
{
    cal_cat_state_t *cs = cat->data;
    uint32_t n = cat->buckets;
    uint64_t start = sc->rr++;
    if (cs != NULL) {
        uint32_t live = cal_cat_state_live(cs);
        for (uint32_t i = 0; i < live; i++) {
            uint32_t b = (uint32_t)((start + i) % live);
            if (cs->slots[b]->state == CAL_SLOT_OWNED)
                return b;
        }
    }
    return (uint32_t)(start % (n ? n : 1));
}

/* The key of a message: the text before the category's delimiter, if it has one. */
static int message_key(const cal_category_t *cat, const cal_thrift_str_t *m, size_t *key_len)
{
    if (cat->scribe_key_delim < 0 || m->len == 0)
        return 0;
    const char *d = memchr(m->p, cat->scribe_key_delim, m->len);
    if (d == NULL)
        return 0;
    *key_len = (size_t)(d - m->p);
    return 1;
}

/* Creates under way at once, at most: a client naming many new categories waits its turn. */
#define CREATING_MAX 16

typedef struct creating_s {
    cal_scribe_t *sc;
    char name[FW_CATEGORY_MAX + 1];
} creating_t;

/* The catalog logged what it did (created it, found it made by another writer, failed). */
static void on_category_created(cal_catalog_t *catalog, int status, cal_category_t *c, void *arg)
{
    (void)catalog;
    (void)c;
    creating_t *cr = arg;
    fw_log_debug("calligraphus", "scribe: category '%s' for a Scribe call: %s", cr->name,
                 status < 0 ? fw_strerror(status) : "known now");
    cr->sc->creating--;
    free(cr);
}

/* A Log call named a category that does not exist: the deployment's policy says what next. */
static void unknown_category(cal_scribe_t *sc, const char *name)
{
    if (sc->cfg.create_unknown) {
        if (sc->creating >= CREATING_MAX)
            return; /* the call is TRY_LATER all the same; its retry creates it */
        creating_t *cr = calloc(1, sizeof(*cr));
        if (cr == NULL)
            return;
        cr->sc = sc;
        snprintf(cr->name, sizeof(cr->name), "%s", name);
        sc->creating++;
        if (cal_catalog_create(&sc->server->node->catalog, name, sc->cfg.new_category_buckets,
                               on_category_created, cr) < 0) {
            sc->creating--;
            free(cr);
        }
        return;
    }
    /* Said once a minute at most: a client retries the call every few seconds. */
    int64_t now = fw_clock_mono_ms();
    if (sc->warned_ms == 0 || now - (int64_t)sc->warned_ms >= 60000) {
        sc->warned_ms = (uint64_t)now;
        fw_log_warn("calligraphus",
                    "scribe: category '%s' does not exist: its calls are answered TRY_LATER "
                    "(create it, or run with --scribe-unknown-category create)",
                    name);
    }
}

typedef enum { CHECK_OK, CHECK_LATER, CHECK_REFUSE } check_t;

/*
 * Reads the call's categories and checks every message: CHECK_REFUSE with
 * why (a message that can never be stored), CHECK_LATER (a category not
 * known yet, or unknown), or CHECK_OK.
 */
static check_t check_messages(scribe_call_t *call, const cal_scribe_call_t *tc, char *why,
                              size_t cap)
{
    cal_scribe_t *sc = call->sc;
    cal_node_t *node = sc->server->node;
    size_t cats_cap = 0;
    cal_scribe_entry_iter_t it;
    cal_scribe_entry_t e;
    uint32_t i = 0;
    check_t result = CHECK_OK;
    cal_scribe_entries_begin(tc, &it);
    while (cal_scribe_entries_next(&it, &e) == 1) {
        char name[FW_CATEGORY_MAX + 1];
        if (e.category.len == 0 || e.category.len > FW_CATEGORY_MAX) {
            snprintf(why, cap, "message %" PRIu32 ": category name of %" PRIu32 " bytes", i,
                     e.category.len);
            return CHECK_REFUSE;
        }
        memcpy(name, e.category.p, e.category.len);
        name[e.category.len] = '\0';
        if (!fw_category_valid(name)) {
            snprintf(why, cap,
                     "message %" PRIu32 ": category '%s' is not a valid freeway category name "
                     "([A-Za-z0-9_.-]{1,128})",
                     i, name);
            return CHECK_REFUSE;
        }
        int ci = call_cat_index(call, name, &cats_cap);
        if (ci < 0) {
            snprintf(why, cap, "out of memory");
            return CHECK_LATER;
        }
        call_cat_t *cc = &call->cats[ci];
        if (cc->cat == NULL && result == CHECK_OK) {
            int rc = cal_node_category(node, name, &cc->cat);
            if (rc < 0) {
                cc->cat = NULL;
                result = CHECK_LATER;
                snprintf(why, cap, "%s: %s", name, fw_strerror(rc));
                if (rc == FW_EUNKNOWN_CATEGORY)
                    unknown_category(sc, name);
            }
        }
        if (cc->cat != NULL) {
            uint32_t max =
                cc->cat->max_record_bytes ? cc->cat->max_record_bytes : FW_RECORD_MAX_DEFAULT;
            size_t key_len = 0;
            size_t size = e.message.len;
            if (message_key(cc->cat, &e.message, &key_len))
                size += key_len; /* the record carries its key besides the whole message */
            if (size > max) {
                snprintf(why, cap,
                         "message %" PRIu32 " of category '%s' makes a record of %zu bytes; the "
                         "category takes %" PRIu32 " at most",
                         i, name, size, max);
                return CHECK_REFUSE;
            }
        }
        i++;
    }
    return result;
}

/* The group of (cat, bucket) in groups[0..*n), added if new; NULL if out of memory. */
static call_group_t *group_get(call_group_t **groups, uint32_t *n, uint32_t *cap, uint32_t cat,
                               uint32_t bucket, uint32_t max_record)
{
    for (uint32_t i = *n; i-- > 0;)
        if ((*groups)[i].cat == cat && (*groups)[i].bucket == bucket)
            return &(*groups)[i];
    if (*n == *cap) {
        uint32_t ncap = *cap ? *cap * 2 : 8;
        call_group_t *g = realloc(*groups, ncap * sizeof(*g));
        if (g == NULL)
            return NULL;
        *groups = g;
        *cap = ncap;
    }
    call_group_t *g = &(*groups)[(*n)++];
    memset(g, 0, sizeof(*g));
    g->cat = cat;
    g->bucket = bucket;
    fw_block_builder_init(&g->bld, max_record);
    return g;
}

/*
 * Closes group g's block: the next index of the plan. A new plan takes its
 * producer id and sequence from the connection's chain; a retry's comes
 * with them. 0, -ENOMEM, or -EINVAL when a retry does not build into its
 * plan's blocks.
 */
static int close_block(scribe_call_t *call, call_group_t *g, int new_plan, uint32_t *cap)
{
    cal_scribe_plan_t *plan = &call->entry->plan;
    call_cat_t *cc = &call->cats[g->cat];
    uint32_t i = call->nblocks;
    int probe = 0, solo = 0;
    /* Room first: once a sequence is taken the block must be in the call (give_back_sequences). */
    if (i == *cap) {
        uint32_t ncap = *cap ? *cap * 2 : 4;
        call_block_t *nb = realloc(call->blocks, ncap * sizeof(*nb));
        if (nb == NULL)
            return -ENOMEM;
        call->blocks = nb;
        *cap = ncap;
    }
    if (new_plan) {
        chain_t *ch = chain_get(call->k, cc->name, g->bucket);
        if (ch == NULL)
            return -ENOMEM;
        if (ch->state == CHAIN_PROBING)
            return -EAGAIN; /* its first block is out: this call waits for its answer */
        cal_scribe_block_plan_t *nb = realloc(plan->blocks, (i + 1) * sizeof(*nb));
        if (nb == NULL)
            return -ENOMEM;
        plan->blocks = nb;
        memset(&nb[i], 0, sizeof(nb[i]));
        if (ch->state == CHAIN_NEW && ch->next_seq > 1) {
            /* The chain's first block is an earlier one of this call: not after it. */
            solo = 1;
            nb[i].producer_id = new_producer_id(call->sc);
            nb[i].seq = 1;
        } else {
            probe = ch->state == CHAIN_NEW;
            nb[i].producer_id = ch->producer_id;
            nb[i].seq = ch->next_seq++;
        }
        plan->nblocks = i + 1;
    } else if (i >= plan->nblocks) {
        return -EINVAL;
    }
    call_block_t *b = &call->blocks[i];
    memset(b, 0, sizeof(*b));
    b->call = call;
    b->index = i;
    b->cat = g->cat;
    b->bucket = g->bucket;
    b->records = fw_block_builder_count(&g->bld);
    b->probe = probe;
    b->solo = solo;
    call->nblocks = i + 1;
    const uint8_t *bytes;
    size_t len;
    /* The first try's codec: a retry must build the same bytes (its owner compares them). */
    fw_codec_t codec = plan->cats[g->cat].lz4 ? FW_CODEC_LZ4 : FW_CODEC_NONE;
    int rc = fw_block_builder_finish(&g->bld, codec, plan->blocks[i].producer_id,
                                     plan->blocks[i].seq, &bytes, &len);
    if (rc == 0)
        rc = fw_buf_append(&b->bytes, bytes, len);
    return rc;
}

/* Builds the call's messages into blocks, along the entry's plan (made now if new_plan). */
static int build_blocks(scribe_call_t *call, const cal_scribe_call_t *tc, int new_plan)
{
    cal_scribe_plan_t *plan = &call->entry->plan;
    if (new_plan) {
        plan->cats = calloc(call->ncats ? call->ncats : 1, sizeof(*plan->cats));
        if (plan->cats == NULL)
            return -ENOMEM;
        plan->ncats = call->ncats;
        for (uint32_t i = 0; i < call->ncats; i++) {
            plan->cats[i].buckets = call->cats[i].cat->buckets;
            plan->cats[i].unkeyed_bucket = pick_bucket(call->sc, call->cats[i].cat);
            plan->cats[i].lz4 = call->cats[i].cat->codec != FW_CODEC_NONE;
        }
    } else if (plan->ncats != call->ncats) {
        return -EINVAL;
    }
    call_group_t *groups = NULL;
    uint32_t ngroups = 0, groups_cap = 0, blocks_cap = 0;
    if (new_plan)
        plan->ts_ms = fw_clock_wall_ms();
    int64_t ts = plan->ts_ms;
    int rc = 0;
    cal_scribe_entry_iter_t it;
    cal_scribe_entry_t e;
    cal_scribe_entries_begin(tc, &it);
    size_t cats_cap = call->ncats;
    while (rc == 0 && cal_scribe_entries_next(&it, &e) == 1) {
        char name[FW_CATEGORY_MAX + 1];
        memcpy(name, e.category.p, e.category.len);
        name[e.category.len] = '\0';
        int ci = call_cat_index(call, name, &cats_cap); /* found: check_messages added it */
        cal_category_t *cat = call->cats[ci].cat;
        const cal_scribe_cat_plan_t *cp = &plan->cats[ci];
        size_t key_len = 0;
        int has_key = message_key(cat, &e.message, &key_len);
        /* Placed as a producer places a keyed record (fw_key_bucket). */
        uint32_t bucket = has_key && cp->buckets > 0 ? fw_hash32(e.message.p, key_len) % cp->buckets
                                                     : cp->unkeyed_bucket;
        uint32_t max_record = cat->max_record_bytes ? cat->max_record_bytes : FW_RECORD_MAX_DEFAULT;
        call_group_t *g =
            group_get(&groups, &ngroups, &groups_cap, (uint32_t)ci, bucket, max_record);
        if (g == NULL) {
            rc = -ENOMEM;
            break;
        }
        if (fw_block_builder_count(&g->bld) > 0 &&
            fw_block_builder_raw_len(&g->bld) + e.message.len + key_len > BLOCK_RAW_MAX)
            rc = close_block(call, g, new_plan, &blocks_cap);
        if (rc == 0)
            rc = fw_block_builder_add(&g->bld, ts, e.message.p, key_len, has_key,
                                      e.message.len ? e.message.p : "", e.message.len);
    }
    for (uint32_t i = 0; i < ngroups; i++) {
        if (rc == 0 && fw_block_builder_count(&groups[i].bld) > 0)
            rc = close_block(call, &groups[i], new_plan, &blocks_cap);
        fw_block_builder_free(&groups[i].bld);
    }
    free(groups);
    if (rc == 0 && !new_plan && call->nblocks != plan->nblocks)
        rc = -EINVAL;
    return rc;
}

/*
 * Why the call's blocks cannot all be taken now (a bucket nobody owns, one
 * still opening, a category over its share of memory), or NULL: then
 * TRY_LATER goes out before anything is stored. What fails after this
 * (an owner lost meanwhile, a disk error) is the memo's to repair.
 */
static const char *can_take(cal_scribe_t *sc, scribe_call_t *call)
{
    cal_server_t *srv = sc->server;
    for (uint32_t i = 0; i < call->nblocks; i++) {
        call_block_t *b = &call->blocks[i];
        if (call->entry->plan.blocks[b->index].stored)
            continue;
        cal_route_t route;
        int rc = cal_node_route(srv->node, call->cats[b->cat].name, b->bucket, &route);
        if (rc != 0 && !(rc == FW_ENOT_OWNER && route.owner_address != NULL))
            return rc == FW_ENOT_OWNER ? "a bucket has no owner now" : fw_strerror(rc);
        if (route.cs != NULL && route.cs->stats != NULL &&
            (uint64_t)route.cs->stats->inflight > srv->limits.category_inflight_bytes)
            return "a category is over its share of the writer's memory";
    }
    return NULL;
}

/* ---- Log ------------------------------------------------------------------------------------ */

static void refuse_call(cal_conn_t *c, const cal_scribe_call_t *tc, const char *why)
{
    fw_buf_t out = FW_BUF_INIT;
    fw_log_warn("calligraphus", "%s: scribe Log refused: %s", c->peer, why);
    if (!cal_scribe_call_wants_reply(tc))
        return;
    send_reply(c, &out, cal_scribe_reply_exception(&out, tc, CAL_THRIFT_EXC_UNKNOWN, why));
}

/*
 * A call that sent nothing: a first try gives its chains back the
 * sequences it took (or the next block would be a gap that never closes)
 * and is forgotten; a retry keeps its plan as it was.
 */
static void give_back_sequences(scribe_call_t *call)
{
    const cal_scribe_plan_t *plan = &call->entry->plan;
    for (uint32_t i = call->nblocks; i-- > 0;) {
        const call_block_t *b = &call->blocks[i];
        const cal_scribe_block_plan_t *bp = &plan->blocks[b->index];
        chain_t *ch = b->solo ? NULL : chain_find(call->k, call->cats[b->cat].name, b->bucket);
        if (ch != NULL && ch->producer_id == bp->producer_id && ch->next_seq == bp->seq + 1)
            ch->next_seq = bp->seq;
    }
}

static void not_started(scribe_call_t *call, int new_plan, int64_t now)
{
    cal_scribe_t *sc = call->sc;
    if (!new_plan) {
        cal_scribe_retry_keep(&sc->retry, call->entry, now);
        return;
    }
    give_back_sequences(call);
    cal_scribe_retry_remove(&sc->retry, call->entry);
}

/* Whether a call of this connection runs on entry, or waits for its answer to go out. */
static int runs_here(const scribe_conn_t *k, const cal_scribe_memo_t *entry)
{
    for (const reply_t *r = k->head; r != NULL; r = r->next)
        if (r->call != NULL && r->call->entry == entry)
            return 1;
    return 0;
}

/*
 * Takes a Log call: answered at once (TRY_LATER, an exception) or started.
 * 0 when it must wait for an answer before it (the same call, sent again
 * on this connection before its first answer): it is read again then.
 */
static int handle_log(cal_scribe_t *sc, cal_conn_t *c, scribe_conn_t *k,
                      const cal_scribe_call_t *tc)
{
    scribe_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        fw_metric_inc(sc->calls_try_later);
        reply_log(c, tc, CAL_SCRIBE_TRY_LATER);
        return 1;
    }
    call->sc = sc;
    call->conn = c;
    call->k = k;
    call->thrift = *tc;
    memcpy(call->name_copy, tc->name.p, tc->name.len);
    call->name_copy[tc->name.len] = '\0';
    call->thrift.name.p = call->name_copy;
    char why[300] = "";
    check_t check = check_messages(call, tc, why, sizeof(why));
    if (check != CHECK_OK) {
        if (check == CHECK_REFUSE) {
            fw_metric_inc(sc->calls_refused);
            refuse_call(c, tc, why);
        } else {
            fw_metric_inc(sc->calls_try_later);
            fw_log_debug("calligraphus", "%s: scribe Log: TRY_LATER: %s", c->peer, why);
            reply_log(c, tc, CAL_SCRIBE_TRY_LATER);
        }
        call_free(call);
        return 1;
    }
    /* The same call again (same sender, same bytes): along its first plan. */
    cal_scribe_key_t key;
    memset(&key, 0, sizeof(key));
    snprintf(key.ip, sizeof(key.ip), "%s", k->ip);
    cal_scribe_digest(tc->args, tc->args_len, key.digest);
    int64_t now = fw_clock_mono_ms();
    cal_scribe_memo_t *entry = cal_scribe_retry_find(&sc->retry, &key, now);
    int new_plan = entry == NULL;
    if (entry != NULL && entry->busy && runs_here(k, entry)) {
        /* The same bytes twice in a row on one connection: two calls (a line logged twice),
         * or a retry of the first; either way as if sent after its answer, as a client that
         * waits for each answer sends them. */
        call_free(call);
        k->waiting = 1;
        update_hold(c, k);
        return 0;
    }
    if (entry != NULL && entry->busy) {
        /* Still running for another connection (its client gave up on it and reconnected):
         * its outcome first. */
        fw_metric_inc(sc->calls_try_later);
        reply_log(c, tc, CAL_SCRIBE_TRY_LATER);
        call_free(call);
        return 1;
    }
    if (entry == NULL && (entry = cal_scribe_retry_add(&sc->retry, &key, now)) == NULL) {
        fw_metric_inc(sc->calls_try_later);
        reply_log(c, tc, CAL_SCRIBE_TRY_LATER);
        call_free(call);
        return 1;
    }
    entry->busy = 1;
    call->entry = entry;
    if (!new_plan)
        fw_metric_inc(sc->retries);
    int rc = build_blocks(call, tc, new_plan);
    if (rc == -EAGAIN) {
        /* A chain's first block is still out: read again after the next answer. */
        not_started(call, new_plan, now);
        call_free(call);
        k->waiting = 1;
        update_hold(c, k);
        return 0;
    }
    if (rc < 0) {
        if (new_plan)
            give_back_sequences(call);
        if (rc == -EINVAL)
            fw_log_warn("calligraphus",
                        "%s: scribe Log sent again does not build into its first blocks; it is "
                        "taken as a new call",
                        c->peer);
        cal_scribe_retry_remove(&sc->retry, entry);
        fw_metric_inc(sc->calls_try_later);
        reply_log(c, tc, CAL_SCRIBE_TRY_LATER);
        call_free(call);
        return 1;
    }
    const char *busy = can_take(sc, call);
    if (busy != NULL) {
        /* Nothing sent: a client that sends the lines again in another batch (the npm one
         * does) stores nothing twice either. */
        fw_log_debug("calligraphus", "%s: scribe Log: TRY_LATER: %s", c->peer, busy);
        not_started(call, new_plan, now);
        fw_metric_inc(sc->calls_try_later);
        reply_log(c, tc, CAL_SCRIBE_TRY_LATER);
        call_free(call);
        return 1;
    }
    if (reply_push(k, call) == NULL) {
        not_started(call, new_plan, now);
        call_free(call);
        cal_conn_fail(c, -ENOMEM, "out of memory");
        return 1;
    }
    k->calls++;
    cal_conn_ref(c);
    update_hold(c, k);
    call->dispatching = 1;
    call->resubmit_until = now + sc->cfg.resubmit_ms;
    call->pending = call->nblocks;
    for (uint32_t i = 0; i < call->nblocks; i++) {
        call_block_t *b = &call->blocks[i];
        if (entry->plan.blocks[b->index].stored) {
            /* Stored by an earlier try of the same call. */
            fw_metric_inc(sc->blocks_skipped);
            b->skipped = 1;
            b->submit.status = 0;
            b->submit.done = 1;
            call->pending--;
            continue;
        }
        call->accounted += (int64_t)b->bytes.len;
    }
    cal_server_account(sc->server, c, call->accounted);
    for (uint32_t i = 0; i < call->nblocks; i++) {
        chain_t *ch;
        if (call->blocks[i].probe && (ch = chain_find(k, call->cats[call->blocks[i].cat].name,
                                                      call->blocks[i].bucket)) != NULL)
            ch->state = CHAIN_PROBING; /* the chain's later blocks wait for this one */
    }
    for (uint32_t i = 0; i < call->nblocks; i++) {
        call_block_t *b = &call->blocks[i];
        if (b->submit.done)
            continue;
        b->submit.cb = on_block_done;
        cal_submit(sc->server, &b->submit, call->cats[b->cat].name, b->bucket,
                   FWPB__ACK_LEVEL__ACK_DURABLE, 0, b->bytes.data, (uint32_t)b->bytes.len);
    }
    call->dispatching = 0;
    if (call->pending == 0)
        call_finish(call);
    return 1;
}

/* ---- fb303 ------------------------------------------------------------------------------------
 */

static int reply_counters(cal_scribe_t *sc, fw_buf_t *out, const cal_scribe_call_t *tc)
{
    const cal_scribe_counter_t counters[] = {
        {"received good", (int64_t)fw_metric_counter_get(sc->messages_stored)},
        {"calls ok", (int64_t)fw_metric_counter_get(sc->calls_ok)},
        {"calls try later", (int64_t)fw_metric_counter_get(sc->calls_try_later)},
        {"calls refused", (int64_t)fw_metric_counter_get(sc->calls_refused)},
        {"calls retried", (int64_t)fw_metric_counter_get(sc->retries)},
        {"blocks already stored", (int64_t)fw_metric_counter_get(sc->blocks_skipped)},
        {"blocks resubmitted", (int64_t)fw_metric_counter_get(sc->blocks_resubmitted)},
    };
    size_t n = sizeof(counters) / sizeof(counters[0]);
    if (tc->method == CAL_SCRIBE_GET_COUNTERS)
        return cal_scribe_reply_counters(out, tc, counters, n);
    for (size_t i = 0; i < n; i++)
        if (strlen(counters[i].name) == tc->key.len &&
            memcmp(counters[i].name, tc->key.p, tc->key.len) == 0)
            return cal_scribe_reply_i64(out, tc, counters[i].value);
    return cal_scribe_reply_i64(out, tc, 0);
}

static void handle_fb303(cal_scribe_t *sc, cal_conn_t *c, const cal_scribe_call_t *tc)
{
    fw_buf_t out = FW_BUF_INIT;
    int stopping = sc->server->stopping;
    int rc;
    switch (tc->method) {
    case CAL_SCRIBE_GET_NAME:
        rc = cal_scribe_reply_string(&out, tc, "freeway calligraphus", 20);
        break;
    case CAL_SCRIBE_GET_VERSION:
        rc = cal_scribe_reply_string(&out, tc, FW_VERSION_STRING, strlen(FW_VERSION_STRING));
        break;
    case CAL_SCRIBE_GET_STATUS:
        rc = cal_scribe_reply_status(&out, tc, stopping ? CAL_FB_STOPPING : CAL_FB_ALIVE);
        break;
    case CAL_SCRIBE_GET_STATUS_DETAILS: {
        const char *d = stopping ? "stopping: sealing its buckets" : "";
        rc = cal_scribe_reply_string(&out, tc, d, strlen(d));
        break;
    }
    case CAL_SCRIBE_ALIVE_SINCE:
        rc = cal_scribe_reply_i64(&out, tc, sc->started_s);
        break;
    case CAL_SCRIBE_GET_COUNTERS:
    case CAL_SCRIBE_GET_COUNTER:
        rc = reply_counters(sc, &out, tc);
        break;
    case CAL_SCRIBE_GET_OPTION:
    case CAL_SCRIBE_GET_CPU_PROFILE:
        rc = cal_scribe_reply_string(&out, tc, "", 0);
        break;
    case CAL_SCRIBE_GET_OPTIONS:
        rc = cal_scribe_reply_options(&out, tc, NULL, 0);
        break;
    case CAL_SCRIBE_SET_OPTION:
        fw_log_info("calligraphus",
                    "%s: scribe setOption(%.*s) ignored: freeway's options are "
                    "its config file's",
                    c->peer, (int)tc->key.len, tc->key.p ? tc->key.p : "");
        rc = cal_scribe_reply_void(&out, tc);
        break;
    case CAL_SCRIBE_SHUTDOWN:
    case CAL_SCRIBE_REINITIALIZE:
        fw_log_warn("calligraphus", "%s: scribe %s ignored: a writer stops on SIGTERM", c->peer,
                    cal_scribe_method_name(tc->method));
        rc = 0;
        break;
    default:
        rc = cal_scribe_reply_unknown_method(&out, tc);
        break;
    }
    if (rc >= 0 && !cal_scribe_call_wants_reply(tc)) {
        fw_buf_free(&out);
        return;
    }
    send_reply(c, &out, rc);
}

/* ---- the protocol ------------------------------------------------------------------------ */

static scribe_conn_t *conn_state(cal_conn_t *c)
{
    if (c->proto_data != NULL)
        return c->proto_data;
    scribe_conn_t *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    k->sc = c->proto_arg;
    /* The address without its port: a client that reconnects to retry has another port. */
    const char *colon = strrchr(c->peer, ':');
    size_t len = colon != NULL ? (size_t)(colon - c->peer) : strlen(c->peer);
    if (len >= sizeof(k->ip))
        len = sizeof(k->ip) - 1;
    memcpy(k->ip, c->peer, len);
    k->ip[len] = '\0';
    c->proto_data = k;
    return k;
}

static const char *decode_error(int rc)
{
    switch (rc) {
    case FW_EFRAME_TOO_LARGE:
        return "Thrift frame exceeds --scribe-max-frame";
    case FW_ETHRIFT_UNFRAMED:
        return "not framed: Scribe's interface wants TFramedTransport";
    case FW_ETHRIFT_VERSION:
        return "bad Thrift protocol version";
    case FW_ETHRIFT_DEPTH:
        return "Thrift message nested too deep";
    default:
        return "malformed Thrift message";
    }
}

static ssize_t scribe_input(cal_conn_t *c, const uint8_t *buf, size_t len, size_t *need)
{
    cal_scribe_t *sc = c->proto_arg;
    scribe_conn_t *k = conn_state(c);
    if (k == NULL) {
        cal_conn_fail(c, -ENOMEM, "out of memory");
        return -ENOMEM;
    }
    cal_scribe_limits_t lim = {.max_frame = sc->cfg.max_frame};
    cal_scribe_call_t tc;
    ssize_t n = cal_scribe_call_decode(buf, len, &lim, &tc, need);
    if (n <= 0) {
        if (n < 0)
            cal_conn_fail(c, (int)n, decode_error((int)n));
        return n;
    }
    if (tc.method == CAL_SCRIBE_LOG) {
        if (!handle_log(sc, c, k, &tc)) {
            *need = 0;
            return 0; /* read again once the answer before it is out */
        }
    } else
        handle_fb303(sc, c, &tc);
    return n;
}

/* A malformed frame: Thrift has no word for it that a client reads; the connection closes. */
static void scribe_fail(cal_conn_t *c, int status, const char *message)
{
    (void)status;
    (void)message;
    cal_conn_close(c);
}

static void scribe_closed(cal_conn_t *c)
{
    scribe_conn_t *k = c->proto_data;
    if (k == NULL)
        return;
    c->proto_data = NULL;
    k->closed = 1; /* its calls still running are remembered, unanswered (call_finish) */
    /* Finished calls whose answers waited for an earlier one: never answered now. */
    reply_t *r;
    while ((r = k->head) != NULL) {
        k->head = r->next;
        if (r->call != NULL && r->call->finished)
            call_settle(r->call, 0);
        fw_buf_free(&r->out);
        free(r);
    }
    k->tail = NULL;
    k->queued = 0;
    if (k->calls == 0 && !k->flushing)
        conn_state_free(k);
}

static const cal_conn_proto_t scribe_proto = {
    .name = "scribe",
    .input = scribe_input,
    .fail = scribe_fail,
    .closed = scribe_closed,
};

/* ---- start and stop ------------------------------------------------------------------------ */

static void on_expire(uv_timer_t *t)
{
    cal_scribe_t *sc = t->data;
    cal_scribe_retry_expire(&sc->retry, fw_clock_mono_ms());
}

int cal_scribe_start(cal_scribe_t **out, cal_server_t *srv, const cal_scribe_config_t *cfg,
                     char *bound, size_t cap)
{
    cal_scribe_t *sc = calloc(1, sizeof(*sc));
    if (sc == NULL)
        return -ENOMEM;
    sc->server = srv;
    sc->cfg = *cfg;
    sc->started_s = (int64_t)time(NULL);
    if (getrandom(sc->rand, sizeof(sc->rand), 0) != (ssize_t)sizeof(sc->rand)) {
        sc->rand[0] = (uint64_t)fw_clock_wall_ms() ^ ((uint64_t)getpid() << 32);
        sc->rand[1] = (uint64_t)fw_clock_mono_ms() * 0x9e3779b97f4a7c15ull;
    }
    sc->rand[0] |= 1;
    fw_metrics_t *reg = srv->stats->reg;
    const char *name = "freeway_calligraphus_scribe_calls_total";
    const char *help = "Scribe Log calls answered, by answer.";
    int rc = cal_scribe_retry_init(&sc->retry, cfg->retry_max, cfg->retry_window_ms);
    rc |= fw_metrics_counter(reg, &sc->calls_ok, name, help, "result", "ok", NULL);
    rc |= fw_metrics_counter(reg, &sc->calls_try_later, name, help, "result", "try_later", NULL);
    rc |= fw_metrics_counter(reg, &sc->calls_refused, name, help, "result", "refused", NULL);
    rc |= fw_metrics_counter(
        reg, &sc->messages_stored, "freeway_calligraphus_scribe_messages_stored_total",
        "Messages of Scribe Log calls stored (not counting a call's retry).", NULL);
    rc |= fw_metrics_counter(reg, &sc->retries, "freeway_calligraphus_scribe_retries_total",
                             "Scribe Log calls known as a call sent again.", NULL);
    rc |= fw_metrics_counter(reg, &sc->blocks_skipped,
                             "freeway_calligraphus_scribe_blocks_skipped_total",
                             "Blocks of a call sent again that an earlier try had stored.", NULL);
    rc |= fw_metrics_counter(reg, &sc->blocks_resubmitted,
                             "freeway_calligraphus_scribe_blocks_resubmitted_total",
                             "Blocks of Scribe calls the writer sent again after a passing failure "
                             "(an owner moving, backpressure) before it answered.",
                             NULL);
    if (rc != 0) {
        cal_scribe_retry_free(&sc->retry);
        free(sc);
        return rc < 0 ? rc : -ENOMEM;
    }
    rc = cal_server_listen(srv, cfg->listen, &scribe_proto, sc, bound, cap);
    if (rc < 0) {
        cal_scribe_retry_free(&sc->retry);
        free(sc);
        return rc;
    }
    uv_timer_init(srv->loop, &sc->timer);
    sc->timer.data = sc;
    uv_timer_start(&sc->timer, on_expire, EXPIRE_MS, EXPIRE_MS);
    uv_timer_init(srv->loop, &sc->resubmit_timer);
    sc->resubmit_timer.data = sc;
    sc->resubmit_armed_at = INT64_MAX;
    sc->open_timers = 2;
    *out = sc;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    cal_scribe_t *sc = h->data;
    if (--sc->open_timers == 0 && sc->closed_cb != NULL)
        sc->closed_cb(sc->closed_arg);
}

void cal_scribe_close(cal_scribe_t *sc, void (*cb)(void *arg), void *arg)
{
    sc->closed_cb = cb;
    sc->closed_arg = arg;
    sc->closing = 1;
    resubmit_due(sc, 1); /* their calls settle as they stand: nothing is sent again now */
    uv_timer_stop(&sc->timer);
    uv_timer_stop(&sc->resubmit_timer);
    uv_close((uv_handle_t *)&sc->timer, on_timer_closed);
    uv_close((uv_handle_t *)&sc->resubmit_timer, on_timer_closed);
}

void cal_scribe_free(cal_scribe_t *sc)
{
    if (sc == NULL)
        return;
    cal_scribe_retry_free(&sc->retry);
    free(sc);
}
