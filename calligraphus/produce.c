/* Produce, forward and metadata requests (see produce.h). */
#include "produce.h"

#include "error.h"
#include "log.h"
#include "proto/common.pb-c.h"
#include "proto/produce.pb-c.h"
#include "status.h"
#include "submit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cal_request_s cal_request_t;

typedef struct cal_block_s {
    cal_submit_t submit; /* first: the submit callback finds the block from it */
    cal_request_t *req;
} cal_block_t;

struct cal_request_s {
    cal_conn_t *conn;
    uint64_t request_id;
    uint8_t resp_type;
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
        ptrs[i] = &r->blocks[i].submit.result;
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
    for (uint32_t i = 0; i < r->nblocks; i++)
        cal_submit_release(&r->blocks[i].submit);
    cal_server_account(s, r->conn, -(int64_t)r->body_len);
    cal_conn_unref(r->conn);
    free(r->body);
    free(r->blocks);
    free(r);
}

/* A block has its outcome; the request is answered when the last one is in. */
static void on_block_done(cal_submit_t *sub)
{
    cal_request_t *r = ((cal_block_t *)sub)->req;
    if (--r->pending == 0 && !r->dispatching)
        finish(r);
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
        b->submit.cb = on_block_done;
        cal_submit(c->server, &b->submit, refs[i]->category, refs[i]->bucket, ack, forwarded,
                   body + off, refs[i]->length);
        off += refs[i]->length;
    }
    r->dispatching = 0;
    if (r->pending == 0) {
        finish(r);
        return;
    }
    /* ack none: answered once every block is taken; local appends still run. */
    if (ack == FWPB__ACK_LEVEL__ACK_NONE && !r->answered) {
        int only_local = 1;
        for (uint32_t i = 0; i < r->nblocks && only_local; i++)
            only_local = cal_submit_is_local(&blocks[i].submit);
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

static void produce_frame(cal_conn_t *c, const fw_frame_t *f)
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

/* ---- the protocol ------------------------------------------------------------------------- */

static ssize_t produce_input(cal_conn_t *c, const uint8_t *buf, size_t len, size_t *need)
{
    fw_frame_t f;
    ssize_t n = fw_frame_decode(buf, len, c->server->limits.max_frame, &f, need);
    if (n < 0) {
        cal_conn_fail(c, (int)n,
                      n == FW_EFRAME_TOO_LARGE ? "frame exceeds the size limit"
                                               : "malformed frame header");
        return n;
    }
    if (n > 0)
        produce_frame(c, &f);
    return n;
}

/* An ERROR frame says why; the connection closes once it is written. */
static void produce_fail(cal_conn_t *c, int status, const char *message)
{
    Fwpb__ErrorReply e = FWPB__ERROR_REPLY__INIT;
    e.status = fw_status_from_error(status);
    e.message = (char *)message;
    cal_conn_send_frame(c, FW_FRAME_ERROR, &e.base, 1);
}

const cal_conn_proto_t cal_produce_proto = {
    .name = "produce",
    .input = produce_input,
    .fail = produce_fail,
};
