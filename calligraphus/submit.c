/* One block to its bucket: checked, appended or forwarded (see submit.h). */
#include "submit.h"

#include "block.h"
#include "error.h"
#include "forward.h"
#include "status.h"

#include <stdio.h>
#include <string.h>

static void done(cal_submit_t *s, int status)
{
    if (s->done)
        return;
    s->done = 1;
    if (s->result.status == FWPB__STATUS__STATUS_OK && status != 0)
        s->result.status = fw_status_from_error(status);
    if (status != 0) {
        cal_stats_error(s->server->stats, status);
        if (s->result.message == NULL) {
            snprintf(s->message, sizeof(s->message), "%s", fw_strerror(status));
            s->result.message = s->message;
        }
    }
    s->status = status;
    s->cb(s);
}

static void refuse(cal_submit_t *s, int status, const char *fmt, const char *detail)
{
    if (fmt != NULL) {
        snprintf(s->message, sizeof(s->message), fmt, detail);
        s->result.message = s->message;
    }
    done(s, status);
}

/* ---- the local path -------------------------------------------------------------------- */

static void on_appended(cal_append_t *a, int status)
{
    cal_submit_t *s = (cal_submit_t *)a;
    if (status == 0) {
        s->result.has_segment_id = s->result.has_offset = 1;
        s->result.segment_id = a->segment_id;
        s->result.offset = a->offset;
        if (a->duplicate) {
            s->result.has_duplicate = 1;
            s->result.duplicate = 1;
            if (s->cs != NULL && s->cs->stats != NULL) {
                fw_metric_inc(s->cs->stats->blocks_duplicate);
                if (a->conflict)
                    fw_metric_inc(s->cs->stats->sequence_conflicts);
            }
        } else if (s->cs != NULL && s->cs->stats != NULL) {
            fw_metric_add(s->cs->stats->records_acked, s->records);
        }
    } else if (status == FW_ESEQUENCE_GAP) {
        s->result.has_expected_sequence = 1;
        s->result.expected_sequence = a->expected_seq;
    }
    done(s, status);
}

/* ---- the forwarded path ------------------------------------------------------------------ */

static void on_forwarded(void *arg, const Fwpb__BlockResult *res, int err)
{
    cal_submit_t *s = arg;
    if (res == NULL) {
        done(s, err);
        return;
    }
    s->result.status = res->status;
    if (res->message != NULL) {
        snprintf(s->message, sizeof(s->message), "%s", res->message);
        s->result.message = s->message;
    }
    if (res->owner != NULL) {
        snprintf(s->owner, sizeof(s->owner), "%s", res->owner);
        s->result.owner = s->owner;
    }
    s->result.has_segment_id = res->has_segment_id;
    s->result.segment_id = res->segment_id;
    s->result.has_offset = res->has_offset;
    s->result.offset = res->offset;
    s->result.has_duplicate = res->has_duplicate;
    s->result.duplicate = res->duplicate;
    s->result.has_expected_sequence = res->has_expected_sequence;
    s->result.expected_sequence = res->expected_sequence;
    done(s, fw_status_to_error((int)res->status));
}

/* ---- one block ------------------------------------------------------------------------------ */

static cal_ack_t ack_level(int ack)
{
    return ack == FWPB__ACK_LEVEL__ACK_WRITTEN ? CAL_ACK_WRITTEN
           : ack == FWPB__ACK_LEVEL__ACK_NONE  ? CAL_ACK_NONE
                                               : CAL_ACK_DURABLE;
}

void cal_submit(cal_server_t *srv, cal_submit_t *s, const char *category, uint32_t bucket, int ack,
                int forwarded, const uint8_t *data, uint32_t len)
{
    s->server = srv;
    s->len = len;
    s->status = 0;
    s->done = s->counted = s->reached = 0;
    s->records = 0;
    s->cs = NULL;
    memset(&s->append, 0, sizeof(s->append));
    fwpb__block_result__init(&s->result); /* status OK until told otherwise */
    cal_route_t route;
    int rc = cal_node_route(srv->node, category, bucket, &route);
    s->cs = route.cs;
    if (rc == FW_EUNKNOWN_CATEGORY) {
        refuse(s, rc, "unknown category '%s'", category);
        return;
    }
    if (rc == FW_EBUCKET_RANGE) {
        snprintf(s->message, sizeof(s->message), "bucket %u out of range: %s has %u", bucket,
                 category, route.cs->c->buckets);
        s->result.message = s->message;
        done(s, rc);
        return;
    }
    if (rc == FW_ESHUTTING_DOWN || route.cs == NULL) {
        /* Shutting down, or the category not known yet (cal_node_category): retry later. */
        s->cs = NULL;
        done(s, rc);
        return;
    }
    cal_cat_stats_t *st = s->cs->stats;
    /* Check the whole block before it goes anywhere: header and payload
     * CRCs, the records' structure and each record against the limit. */
    fw_block_header_t h;
    fw_record_iter_t it;
    uint32_t max_record =
        s->cs->c->max_record_bytes ? s->cs->c->max_record_bytes : FW_RECORD_MAX_DEFAULT;
    int vrc = fw_block_decode(data, len, max_record, &srv->scratch, &h, &it);
    if (vrc == 0 && fw_block_size(&h) != len)
        vrc = FW_EBLOCK_CORRUPT;
    if (vrc == 0 && fw_block_is_seal(&h))
        vrc = FW_EBLOCK_HEADER;
    if (srv->scratch.cap > (8u << 20))
        fw_buf_free(&srv->scratch);
    if (vrc < 0) {
        if (vrc == FW_ERECORD_TOO_LARGE) {
            snprintf(s->message, sizeof(s->message), "a record exceeds %s's limit of %u bytes",
                     category, max_record);
            s->result.message = s->message;
            done(s, vrc);
            return;
        }
        refuse(s, vrc == -EAGAIN ? FW_EBLOCK_CORRUPT : vrc, "block rejected: %s", fw_err_name(vrc));
        return;
    }
    s->records = h.record_count;
    if (st != NULL) {
        fw_metric_add(st->records_received, h.record_count);
        fw_metric_add(st->bytes_received, len);
        /* A category over its share of memory waits; the others go on. */
        if ((uint64_t)st->inflight > srv->limits.category_inflight_bytes) {
            fw_metric_inc(st->blocks_throttled);
            done(s, FW_ERETRY_LATER);
            return;
        }
        st->inflight += len;
        fw_metric_gauge_add(st->inflight_bytes, len);
        s->counted = 1;
    }
    if (rc == 0) {
        s->append.data = data;
        s->append.len = len;
        s->append.header = h;
        s->append.ack = ack_level(ack);
        s->append.cb = on_appended;
        s->append.arg = s;
        s->reached = 1;
        cal_bucket_append(route.bucket, &s->append);
        return;
    }
    if (rc == FW_ENOT_OWNER && route.owner_address != NULL && !forwarded) {
        if (st != NULL)
            fw_metric_inc(st->blocks_forwarded);
        s->reached = 1; /* before: cal_forward may answer at once */
        if (cal_forward(srv, route.owner_address, category, bucket, ack, data, len, on_forwarded,
                        s) == 0)
            return;
        s->reached = 0;
        done(s, FW_ERETRY_LATER);
        return;
    }
    if (rc == FW_ENOT_OWNER && route.owner_address != NULL) {
        snprintf(s->owner, sizeof(s->owner), "%s", route.owner_address);
        s->result.owner = s->owner;
    }
    /* Nobody owns it right now (moving between writers): a retry will find it. */
    done(s, rc == FW_ENOT_OWNER && route.owner_address == NULL ? FW_ERETRY_LATER : rc);
}

int cal_submit_is_local(const cal_submit_t *s)
{
    return s->done || s->append.cb != NULL;
}

void cal_submit_release(cal_submit_t *s)
{
    if (!s->counted)
        return;
    s->counted = 0;
    s->cs->stats->inflight -= s->len;
    fw_metric_gauge_add(s->cs->stats->inflight_bytes, -(double)s->len);
}
