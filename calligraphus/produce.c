/* Produce, forward and metadata requests (see produce.h). */
#include "produce.h"

#include "block.h"
#include "error.h"
#include "forward.h"
#include "log.h"
#include "proto/produce.pb-c.h"
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cal_request_s cal_request_t;

typedef struct cal_block_s {
    cal_append_t append; /* first: the append callback finds the block from it */
    cal_request_t *req;
    cal_cat_state_t *cs;
    const uint8_t *data;
    uint32_t len;
    uint32_t records;
    int counted; /* its bytes count against the category's share */
    int done;
    Fwpb__BlockResult result;
    char owner[CAL_ADDR_MAX];
    char message[160];
} cal_block_t;

struct cal_request_s {
    cal_conn_t *conn;
    uint64_t request_id;
    uint8_t resp_type;
    int forwarded;
    int ack; /* fwpb AckLevel */
    uint8_t *body;
    size_t body_len;
    uint32_t nblocks;
    uint32_t pending;
    int answered;
    int dispatching;
    cal_block_t *blocks;
};

/* ---- answers ------------------------------------------------------------------------- */

static void answer(cal_request_t *r)
{
    if (r->answered)
        return;
    r->answered = 1;
    Fwpb__ProduceResponse resp = FWPB__PRODUCE_RESPONSE__INIT;
    resp.request_id = r->request_id;
    Fwpb__BlockResult *stack_ptrs[16];
    Fwpb__BlockResult **ptrs = r->nblocks <= 16 ? stack_ptrs : malloc(r->nblocks * sizeof(*ptrs));
    if (ptrs == NULL) {
        cal_conn_fail(r->conn, -ENOMEM, "out of memory answering");
        return;
    }
    for (uint32_t i = 0; i < r->nblocks; i++)
        ptrs[i] = &r->blocks[i].result;
    resp.n_results = r->nblocks;
    resp.results = ptrs;
    cal_conn_send(r->conn, r->resp_type, &resp.base);
    if (ptrs != stack_ptrs)
        free(ptrs);
}

static void finish(cal_request_t *r)
{
    answer(r);
    cal_server_t *s = r->conn->server;
    for (uint32_t i = 0; i < r->nblocks; i++) {
        cal_block_t *b = &r->blocks[i];
        if (b->counted) {
            b->cs->stats->inflight -= b->len;
            fw_metric_gauge_add(b->cs->stats->inflight_bytes, -(double)b->len);
        }
    }
    cal_server_account(s, r->conn, -(int64_t)r->body_len);
    cal_conn_unref(r->conn);
    free(r->body);
    free(r->blocks);
    free(r);
}

/* Sets a block's outcome; the request is answered when the last one is in. */
static void block_done(cal_block_t *b, int status)
{
    cal_request_t *r = b->req;
    if (b->done)
        return;
    b->done = 1;
    if (b->result.status == FWPB__STATUS__STATUS_OK && status != 0)
        b->result.status = fw_status_from_error(status);
    if (status != 0) {
        cal_stats_error(r->conn->server->stats, status);
        if (b->result.message == NULL) {
            snprintf(b->message, sizeof(b->message), "%s", fw_strerror(status));
            b->result.message = b->message;
        }
    }
    if (--r->pending == 0 && !r->dispatching)
        finish(r);
}

static void fail_block(cal_block_t *b, int status, const char *fmt, const char *detail)
{
    if (fmt != NULL) {
        snprintf(b->message, sizeof(b->message), fmt, detail);
        b->result.message = b->message;
    }
    block_done(b, status);
}

/* ---- the local path -------------------------------------------------------------------- */

static void on_appended(cal_append_t *a, int status)
{
    cal_block_t *b = (cal_block_t *)a;
    if (status == 0) {
        b->result.has_segment_id = b->result.has_offset = 1;
        b->result.segment_id = a->segment_id;
        b->result.offset = a->offset;
        if (a->duplicate) {
            b->result.has_duplicate = 1;
            b->result.duplicate = 1;
            if (b->cs != NULL && b->cs->stats != NULL)
                fw_metric_inc(b->cs->stats->blocks_duplicate);
        } else if (b->cs != NULL && b->cs->stats != NULL) {
            fw_metric_add(b->cs->stats->records_acked, b->records);
        }
    } else if (status == FW_ESEQUENCE_GAP) {
        b->result.has_expected_sequence = 1;
        b->result.expected_sequence = a->expected_seq;
    }
    block_done(b, status);
}

/* ---- the forwarded path ------------------------------------------------------------------ */

static void on_forwarded(void *arg, const Fwpb__BlockResult *res, int err)
{
    cal_block_t *b = arg;
    if (res == NULL) {
        block_done(b, err);
        return;
    }
    b->result.status = res->status;
    if (res->message != NULL) {
        snprintf(b->message, sizeof(b->message), "%s", res->message);
        b->result.message = b->message;
    }
    if (res->owner != NULL) {
        snprintf(b->owner, sizeof(b->owner), "%s", res->owner);
        b->result.owner = b->owner;
    }
    b->result.has_segment_id = res->has_segment_id;
    b->result.segment_id = res->segment_id;
    b->result.has_offset = res->has_offset;
    b->result.offset = res->offset;
    b->result.has_duplicate = res->has_duplicate;
    b->result.duplicate = res->duplicate;
    b->result.has_expected_sequence = res->has_expected_sequence;
    b->result.expected_sequence = res->expected_sequence;
    block_done(b, fw_status_to_error((int)res->status));
}

/* ---- one block ------------------------------------------------------------------------------ */

static cal_ack_t ack_level(int ack)
{
    return ack == FWPB__ACK_LEVEL__ACK_WRITTEN ? CAL_ACK_WRITTEN
           : ack == FWPB__ACK_LEVEL__ACK_NONE  ? CAL_ACK_NONE
                                               : CAL_ACK_DURABLE;
}

static void dispatch_block(cal_request_t *r, cal_block_t *b, const Fwpb__BlockRef *ref)
{
    cal_server_t *s = r->conn->server;
    cal_route_t route;
    int rc = cal_node_route(s->node, ref->category, ref->bucket, &route);
    b->cs = route.cs;
    if (rc == FW_EUNKNOWN_CATEGORY) {
        fail_block(b, rc, "unknown category '%s'", ref->category);
        return;
    }
    if (rc == FW_EBUCKET_RANGE) {
        snprintf(b->message, sizeof(b->message), "bucket %u out of range: %s has %u", ref->bucket,
                 ref->category, route.cs->c->buckets);
        b->result.message = b->message;
        block_done(b, rc);
        return;
    }
    if (rc == FW_ESHUTTING_DOWN || route.cs == NULL) {
        /* Shutting down, or the category not known yet (cal_node_category): retry later. */
        b->cs = NULL;
        block_done(b, rc);
        return;
    }
    cal_cat_stats_t *st = b->cs->stats;
    /* Check the whole block before it goes anywhere: header and payload
     * CRCs, the records' structure and each record against the limit. */
    fw_block_header_t h;
    fw_record_iter_t it;
    uint32_t max_record =
        b->cs->c->max_record_bytes ? b->cs->c->max_record_bytes : FW_RECORD_MAX_DEFAULT;
    int vrc = fw_block_decode(b->data, b->len, max_record, &s->scratch, &h, &it);
    if (vrc == 0 && fw_block_size(&h) != b->len)
        vrc = FW_EBLOCK_CORRUPT;
    if (vrc == 0 && fw_block_is_seal(&h))
        vrc = FW_EBLOCK_HEADER;
    if (s->scratch.cap > (8u << 20))
        fw_buf_free(&s->scratch);
    if (vrc < 0) {
        char detail[64];
        snprintf(detail, sizeof(detail), "%s", fw_err_name(vrc));
        fail_block(b, vrc == -EAGAIN ? FW_EBLOCK_CORRUPT : vrc, "block rejected: %s", detail);
        if (vrc == FW_ERECORD_TOO_LARGE) {
            snprintf(b->message, sizeof(b->message), "a record exceeds %s's limit of %u bytes",
                     ref->category, max_record);
        }
        return;
    }
    b->records = h.record_count;
    if (st != NULL) {
        fw_metric_add(st->records_received, h.record_count);
        fw_metric_add(st->bytes_received, b->len);
        /* A category over its share of memory waits; the others go on. */
        if ((uint64_t)st->inflight > s->limits.category_inflight_bytes) {
            fw_metric_inc(st->blocks_throttled);
            block_done(b, FW_ERETRY_LATER);
            return;
        }
        st->inflight += b->len;
        fw_metric_gauge_add(st->inflight_bytes, b->len);
        b->counted = 1;
    }
    if (rc == 0) {
        b->append.data = b->data;
        b->append.len = b->len;
        b->append.header = h;
        b->append.ack = ack_level(r->ack);
        b->append.cb = on_appended;
        b->append.arg = b;
        cal_bucket_append(route.bucket, &b->append);
        return;
    }
    if (rc == FW_ENOT_OWNER && route.owner_address != NULL && !r->forwarded) {
        if (st != NULL)
            fw_metric_inc(st->blocks_forwarded);
        if (cal_forward(s, route.owner_address, ref->category, ref->bucket, r->ack, b->data, b->len,
                        on_forwarded, b) == 0)
            return;
        block_done(b, FW_ERETRY_LATER);
        return;
    }
    if (rc == FW_ENOT_OWNER && route.owner_address != NULL) {
        snprintf(b->owner, sizeof(b->owner), "%s", route.owner_address);
        b->result.owner = b->owner;
    }
    /* Nobody owns it right now (moving between writers): a retry will find it. */
    block_done(b, rc == FW_ENOT_OWNER && route.owner_address == NULL ? FW_ERETRY_LATER : rc);
}

/* ---- requests -------------------------------------------------------------------------------- */

static void handle_blocks(cal_conn_t *c, const fw_frame_t *f, uint64_t request_id, int ack,
                          int forwarded, size_t nrefs, Fwpb__BlockRef **refs)
{
    uint64_t total = 0;
    for (size_t i = 0; i < nrefs; i++)
        total += refs[i]->length;
    if (total != f->body_len) {
        cal_conn_fail(c, FW_EPROTOCOL, "block lengths do not add up to the frame body");
        return;
    }
    cal_request_t *r = calloc(1, sizeof(*r));
    cal_block_t *blocks = calloc(nrefs ? nrefs : 1, sizeof(*blocks));
    uint8_t *body = malloc(f->body_len ? f->body_len : 1);
    if (r == NULL || blocks == NULL || body == NULL) {
        free(r);
        free(blocks);
        free(body);
        cal_conn_fail(c, -ENOMEM, "out of memory");
        return;
    }
    memcpy(body, f->body, f->body_len);
    r->conn = c;
    r->request_id = request_id;
    r->resp_type = forwarded ? FW_FRAME_FORWARD_RESP : FW_FRAME_PRODUCE_RESP;
    r->forwarded = forwarded;
    r->ack = ack;
    r->body = body;
    r->body_len = f->body_len;
    r->nblocks = (uint32_t)nrefs;
    r->blocks = blocks;
    r->pending = (uint32_t)nrefs;
    r->dispatching = 1;
    cal_conn_ref(c);
    cal_server_account(c->server, c, (int64_t)f->body_len);
    size_t off = 0;
    for (size_t i = 0; i < nrefs; i++) {
        cal_block_t *b = &blocks[i];
        b->req = r;
        b->data = body + off;
        b->len = refs[i]->length;
        fwpb__block_result__init(&b->result); /* status OK until told otherwise */
        off += b->len;
    }
    for (size_t i = 0; i < nrefs; i++)
        dispatch_block(r, &blocks[i], refs[i]);
    r->dispatching = 0;
    if (r->pending == 0) {
        finish(r);
        return;
    }
    /* ack none: answered once every block is taken; local appends still run. */
    if (ack == FWPB__ACK_LEVEL__ACK_NONE && !r->answered) {
        int only_local = 1;
        for (uint32_t i = 0; i < r->nblocks && only_local; i++)
            if (!blocks[i].done && blocks[i].append.cb == NULL)
                only_local = 0;
        if (only_local)
            answer(r);
    }
}

static void handle_metadata(cal_conn_t *c, const Fwpb__MetadataRequest *req)
{
    cal_node_t *n = c->server->node;
    Fwpb__MetadataResponse resp = FWPB__METADATA_RESPONSE__INIT;
    resp.request_id = req->request_id;
    size_t ncat = req->n_categories;
    if (ncat > CAL_METADATA_MAX_CATEGORIES) {
        char msg[96];
        snprintf(msg, sizeof(msg), "a metadata request names %zu categories; at most %d", ncat,
                 CAL_METADATA_MAX_CATEGORIES);
        cal_conn_fail(c, FW_EPROTOCOL, msg);
        return;
    }
    Fwpb__CategoryMetadata *cats = calloc(ncat ? ncat : 1, sizeof(*cats));
    Fwpb__CategoryMetadata **catp = calloc(ncat ? ncat : 1, sizeof(*catp));
    char **writers = calloc((size_t)n->members.count + 1, sizeof(*writers));
    Fwpb__BucketOwner **all_owners[CAL_METADATA_MAX_CATEGORIES + 1] = {0};
    Fwpb__BucketOwner *owner_store[CAL_METADATA_MAX_CATEGORIES + 1] = {0};
    if (cats == NULL || catp == NULL || writers == NULL) {
        cal_conn_fail(c, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < ncat; i++) {
        Fwpb__CategoryMetadata *m = &cats[i];
        fwpb__category_metadata__init(m);
        catp[i] = m;
        m->category = req->categories[i];
        cal_category_t *cat;
        int known = cal_node_category(n, req->categories[i], &cat);
        if (known < 0) {
            m->status = known == FW_EUNKNOWN_CATEGORY ? FWPB__STATUS__STATUS_UNKNOWN_CATEGORY
                                                      : FWPB__STATUS__STATUS_RETRY_LATER;
            continue;
        }
        cal_cat_state_t *cs = cat->data;
        m->status = FWPB__STATUS__STATUS_OK;
        m->has_buckets = m->has_max_record_bytes = m->has_codec = 1;
        m->buckets = cat->buckets;
        m->max_record_bytes = cat->max_record_bytes;
        m->codec = (Fwpb__Codec)cat->codec;
        uint32_t nb = cal_cat_state_live(cs);
        owner_store[i] = calloc(nb ? nb : 1, sizeof(Fwpb__BucketOwner));
        all_owners[i] = calloc(nb ? nb : 1, sizeof(Fwpb__BucketOwner *));
        if (owner_store[i] == NULL || all_owners[i] == NULL)
            continue;
        for (uint32_t b = 0; b < nb; b++) {
            cal_slot_t *s = cs->slots[b];
            Fwpb__BucketOwner *o = &owner_store[i][b];
            fwpb__bucket_owner__init(o);
            o->bucket = b;
            if (s->state == CAL_SLOT_OWNED) {
                o->address = (char *)n->cfg.address;
                o->has_epoch = 1;
                o->epoch = s->owner.epoch;
            } else if (s->state == CAL_SLOT_FREE && s->owner_address[0] != '\0') {
                o->address = s->owner_address;
            }
            all_owners[i][b] = o;
        }
        m->n_owners = nb;
        m->owners = all_owners[i];
    }
    resp.n_categories = ncat;
    resp.categories = catp;
    for (int i = 0; i < n->members.count; i++)
        if (n->members.list[i].address[0] != '\0')
            writers[resp.n_writers++] = n->members.list[i].address;
    resp.writers = writers;
    resp.has_max_frame_bytes = 1;
    resp.max_frame_bytes = c->server->limits.max_frame;
    cal_conn_send(c, FW_FRAME_METADATA_RESP, &resp.base);
out:
    for (size_t i = 0; i < ncat; i++) {
        free(owner_store[i]);
        free(all_owners[i]);
    }
    free(cats);
    free(catp);
    free(writers);
}

void cal_produce_frame(cal_conn_t *c, const fw_frame_t *f)
{
    switch (f->type) {
    case FW_FRAME_PRODUCE_REQ: {
        Fwpb__ProduceRequest *req = fwpb__produce_request__unpack(NULL, f->meta_len, f->meta);
        if (req == NULL) {
            cal_conn_fail(c, FW_EPROTOCOL, "malformed ProduceRequest");
            return;
        }
        handle_blocks(c, f, req->request_id, req->ack, 0, req->n_blocks, req->blocks);
        fwpb__produce_request__free_unpacked(req, NULL);
        return;
    }
    case FW_FRAME_FORWARD_REQ: {
        Fwpb__ForwardRequest *req = fwpb__forward_request__unpack(NULL, f->meta_len, f->meta);
        if (req == NULL) {
            cal_conn_fail(c, FW_EPROTOCOL, "malformed ForwardRequest");
            return;
        }
        handle_blocks(c, f, req->request_id, req->ack, 1, req->n_blocks, req->blocks);
        fwpb__forward_request__free_unpacked(req, NULL);
        return;
    }
    case FW_FRAME_METADATA_REQ: {
        Fwpb__MetadataRequest *req = fwpb__metadata_request__unpack(NULL, f->meta_len, f->meta);
        if (req == NULL) {
            cal_conn_fail(c, FW_EPROTOCOL, "malformed MetadataRequest");
            return;
        }
        if (req->n_categories > 4096) {
            fwpb__metadata_request__free_unpacked(req, NULL);
            cal_conn_fail(c, FW_EPROTOCOL, "too many categories in one MetadataRequest");
            return;
        }
        handle_metadata(c, req);
        fwpb__metadata_request__free_unpacked(req, NULL);
        return;
    }
    default: {
        char msg[64];
        snprintf(msg, sizeof(msg), "unexpected frame type %u", f->type);
        cal_conn_fail(c, FW_EPROTOCOL, msg);
        return;
    }
    }
}
