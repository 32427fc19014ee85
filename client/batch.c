/* Batches, sequence numbers and the per-bucket retry rules (see batch.h). */
#include "batch.h"
#include "status.h"

#include "error.h"
#include "proto/common.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void fw_bucket_init(fw_bucket_t *bk, struct fw_pcat_s *cat, uint32_t id)
{
    memset(bk, 0, sizeof(*bk));
    bk->id = id;
    bk->cat = cat;
    bk->next_seq = 1;
    bk->probing = 1;
    bk->state = FW_BUCKET_SENDING;
}

int fw_batch_add(fw_batch_t *b, int64_t ts, const void *key, size_t key_len, int has_key,
                 const void *value, size_t value_len, fw_delivery_cb cb, void *arg, size_t cost)
{
    /* Room for the callback first, so a failure leaves the builder untouched. */
    if (b->ncbs == b->cbs_cap) {
        uint32_t cap = b->cbs_cap ? b->cbs_cap * 2 : 256;
        fw_pcb_t *cbs = realloc(b->cbs, (size_t)cap * sizeof(*cbs));
        if (cbs == NULL)
            return -ENOMEM;
        b->cbs = cbs;
        b->cbs_cap = cap;
    }
    int rc = fw_block_builder_add(b->bld, ts, key, key_len, has_key, value, value_len);
    if (rc < 0)
        return rc;
    b->cbs[b->ncbs].cb = cb;
    b->cbs[b->ncbs].arg = arg;
    b->ncbs++;
    b->cost += cost;
    b->rec_bytes += (has_key ? key_len : 0) + value_len;
    return 0;
}

int fw_batch_build(fw_batch_t *b, uint64_t producer_id, fw_buf_t *spare)
{
    fw_bucket_t *bk = b->bucket;
    fw_block_builder_t *bld = b->bld;
    /* Encode straight into the spare buffer's memory: no copy, no allocation once warm. */
    fw_buf_t out = bld->out;
    bld->out = *spare;
    *spare = out;
    const uint8_t *block;
    size_t len;
    int rc = fw_block_builder_finish(bld, b->codec, producer_id, bk->next_seq, &block, &len);
    if (rc < 0) {
        fw_buf_reset(&bld->raw);
        bld->count = 0;
        return rc;
    }
    b->block = bld->out;
    bld->out = (fw_buf_t)FW_BUF_INIT;
    b->seq = bk->next_seq++;
    fw_bucket_push(bk, b);
    return 0;
}

void fw_batch_deliver(fw_batch_t *b, fw_delivery_t *d)
{
    for (uint32_t i = 0; i < b->ncbs; i++) {
        if (b->cbs[i].cb != NULL)
            b->cbs[i].cb(d, b->cbs[i].arg);
    }
    b->ncbs = 0;
}

void fw_bucket_push(fw_bucket_t *bk, fw_batch_t *b)
{
    b->next = NULL;
    b->prev = bk->tail;
    if (bk->tail != NULL)
        bk->tail->next = b;
    else
        bk->head = b;
    bk->tail = b;
    bk->nqueued++;
    if (bk->state == FW_BUCKET_SENDING && bk->send_next == NULL)
        bk->send_next = b;
}

static void unlink_block(fw_bucket_t *bk, fw_batch_t *b)
{
    if (bk->send_next == b)
        bk->send_next = b->next;
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        bk->head = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    else
        bk->tail = b->prev;
    b->next = b->prev = NULL;
    bk->nqueued--;
}

fw_batch_t *fw_bucket_next_to_send(const fw_bucket_t *bk)
{
    if (bk->state != FW_BUCKET_SENDING || (bk->probing && bk->inflight > 0) || bk->want_spool ||
        bk->replay_paused)
        return NULL;
    return bk->send_next;
}

void fw_bucket_sent(fw_bucket_t *bk, fw_batch_t *b, void *req)
{
    b->req = req;
    b->tries++;
    bk->inflight++;
    if (bk->send_next == b)
        bk->send_next = b->next;
}

void fw_bucket_backoff(fw_bucket_t *bk, int64_t now, uint32_t rnd, fw_verdict_t *v)
{
    if (bk->state == FW_BUCKET_BACKOFF)
        return; /* one backoff per round, however many answers say so */
    uint32_t d = bk->backoff_ms ? bk->backoff_ms : FW_BACKOFF_MIN_MS;
    /* Full jitter over the upper half: spreads producers that failed together. */
    bk->retry_at = now + d / 2 + rnd % (d - d / 2 + 1);
    bk->backoff_ms = d * 2 > FW_BACKOFF_MAX_MS ? FW_BACKOFF_MAX_MS : d * 2;
    bk->state = FW_BUCKET_BACKOFF;
    v->backoff_started = 1;
}

static void end_try(fw_bucket_t *bk, fw_batch_t *b)
{
    b->req = NULL;
    if (bk->inflight > 0)
        bk->inflight--;
}

void fw_bucket_on_result(fw_bucket_t *bk, fw_batch_t *b, int status, int has_expected,
                         uint64_t expected, int64_t now, uint32_t rnd, fw_verdict_t *v)
{
    memset(v, 0, sizeof(*v));
    end_try(bk, b);
    switch (status) {
    case FWPB__STATUS__STATUS_OK:
        unlink_block(bk, b);
        v->kind = FW_VERDICT_ACKED;
        if (b->seq > bk->acked_max)
            bk->acked_max = b->seq;
        bk->backoff_ms = 0;
        bk->probing = 0;
        bk->have_gap = 0; /* the writer's state moved on */
        return;
    case FWPB__STATUS__STATUS_SEQUENCE_GAP:
        /*
         * expected < b->seq: the writer misses [expected, b->seq). Whether
         * that means resending or renumbering is decided at resume, when
         * every try of the bucket has ended (fw_bucket_resume).
         */
        if (has_expected && expected < b->seq) {
            bk->have_gap = 1;
            bk->gap_expected = expected > 0 ? expected : 1;
        }
        break;
    case FWPB__STATUS__STATUS_NOT_OWNER:
        v->refresh_metadata = 1;
        break;
    case FWPB__STATUS__STATUS_SHUTTING_DOWN:
        v->refresh_metadata = 1;
        v->writer_draining = 1;
        break;
    case FWPB__STATUS__STATUS_RETRY_LATER:
    case FWPB__STATUS__STATUS_INTERNAL:
        break;
    case FWPB__STATUS__STATUS_UNKNOWN_CATEGORY:
    case FWPB__STATUS__STATUS_BUCKET_OUT_OF_RANGE:
        /* Maybe the writer or we are behind: once more after fresh metadata. */
        if (b->meta_fails++ == 0) {
            v->refresh_metadata = 1;
            break;
        }
        unlink_block(bk, b);
        v->kind = FW_VERDICT_FAILED;
        v->status = fw_status_code(status);
        v->refresh_metadata = 1;
        return;
    default: /* RECORD_TOO_LARGE, BAD_BLOCK, BAD_REQUEST, and statuses we do not know */
        unlink_block(bk, b);
        v->kind = FW_VERDICT_FAILED;
        v->status = fw_status_code(status);
        return;
    }
    v->kind = FW_VERDICT_RETRY;
    fw_bucket_backoff(bk, now, rnd, v);
}

void fw_bucket_on_lost(fw_bucket_t *bk, fw_batch_t *b, int64_t now, uint32_t rnd, fw_verdict_t *v)
{
    memset(v, 0, sizeof(*v));
    end_try(bk, b);
    v->kind = FW_VERDICT_RETRY;
    v->refresh_metadata = 1;
    fw_bucket_backoff(bk, now, rnd, v);
}

int fw_bucket_resume_due(const fw_bucket_t *bk, int64_t now)
{
    return bk->state == FW_BUCKET_BACKOFF && bk->inflight == 0 && now >= bk->retry_at;
}

uint64_t fw_bucket_first_unacked(const fw_bucket_t *bk)
{
    return bk->head != NULL ? bk->head->seq : bk->next_seq;
}

void fw_bucket_resume(fw_bucket_t *bk, fw_resume_t *r)
{
    memset(r, 0, sizeof(*r));
    uint64_t first = fw_bucket_first_unacked(bk);
    if (bk->have_gap && bk->gap_expected < first) {
        /*
         * Every block below `first` is resolved (acked, or failed without
         * being stored) and every block from `first` on is unacked, and the
         * writer holds nothing from gap_expected on: the unacked blocks can
         * take those numbers without any of them being stored twice.
         */
        uint64_t s = bk->gap_expected;
        r->expected = s;
        r->first_unacked_before = first;
        /* Blocks in [expected, first) were acked or failed; acked ones are lost. */
        r->lost_acked = s <= bk->acked_max;
        bk->acked_max = s - 1;
        uint64_t old_last = bk->tail != NULL ? bk->tail->seq : s - 1;
        for (fw_batch_t *b = bk->head; b != NULL; b = b->next) {
            /* Our own well-formed blocks: this cannot fail. */
            (void)fw_block_set_sequence(b->block.data, b->block.len, s);
            b->seq = s++;
            r->renumbered++;
        }
        /* Blocks read back from the spool: those still there shift alike when read
         * (the spooler keeps the shift); next_seq is the spooler's to move. */
        if (bk->spooling)
            r->shift = (int64_t)(s - 1) - (int64_t)old_last;
        else
            bk->next_seq = s;
    }
    bk->have_gap = 0;
    bk->probing = 1;
    bk->state = FW_BUCKET_SENDING;
    bk->send_next = bk->head;
}

fw_batch_t *fw_bucket_take_expired(fw_bucket_t *bk, int64_t now, int64_t timeout_ms)
{
    for (fw_batch_t *b = bk->head; b != NULL; b = b->next) {
        if (b->req == NULL && !b->from_spool && now - b->first_ms >= timeout_ms) {
            unlink_block(bk, b);
            return b;
        }
    }
    return NULL;
}

void fw_bucket_take(fw_bucket_t *bk, fw_batch_t *b)
{
    unlink_block(bk, b);
}

fw_batch_t *fw_bucket_take_head(fw_bucket_t *bk)
{
    fw_batch_t *b = bk->head;
    if (b == NULL || b->req != NULL)
        return NULL;
    unlink_block(bk, b);
    return b;
}

int fw_status_code(int status)
{
    /* The wire's own mapping, except that a writer shutting down or failing
     * inside is, for a producer, one more reason to try again. */
    int rc = fw_status_to_error(status);
    if (rc == FW_ETOKEN_BAD)
        return FW_EPROTOCOL; /* a consumer's status: no answer to a produce request */
    return rc == FW_ESHUTTING_DOWN || rc == -EIO ? FW_ERETRY_LATER : rc;
}
