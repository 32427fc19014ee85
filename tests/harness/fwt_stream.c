/* A raw-frame ptail subscriber for tests (see fwt_stream.h). */
#include "fwt_stream.h"

#include "fwtest.h"

#include "error.h"
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fwt_stream_open(fwt_stream_t *s, const char *address, const Fwpb__SubscribeRequest *req,
                     fwt_stream_record_fn on_record, void *arg)
{
    memset(s, 0, sizeof(*s));
    s->on_record = on_record;
    s->arg = arg;
    s->fd = fwt_wire_connect(address);
    fw_buf_t frame = FW_BUF_INIT;
    FWT_ASSERT_OK(
        fw_frame_append(&frame, FW_FRAME_SUBSCRIBE, &req->base, NULL, 0, FW_FRAME_MAX_LIMIT));
    FWT_ASSERT_OK(fwt_wire_write(s->fd, frame.data, frame.len));
    fw_buf_free(&frame);
}

static void take_block(fwt_stream_t *s, const Fwpb__Records *r, const fw_frame_t *f)
{
    fw_block_header_t h;
    fw_record_iter_t it;
    int rc = fw_block_decode(f->body, f->body_len, FW_RECORD_MAX_HARD, &s->scratch, &h, &it);
    if (rc < 0)
        FWT_FAIL("ptail sent a block that fails its checks (%s) at %llu/%llu of bucket %u",
                 fw_strerror(rc), (unsigned long long)r->segment_id, (unsigned long long)r->offset,
                 r->bucket);
    fw_record_t rec;
    fw_position_t pos = {r->bucket, r->segment_id, r->offset, 0};
    for (; fw_record_next(&it, &rec) == 1; pos.record_index++) {
        if (pos.record_index < r->first_record)
            continue;
        s->records++;
        if (s->on_record != NULL)
            s->on_record(s, &pos, &rec);
    }
}

int fwt_stream_step(fwt_stream_t *s, int timeout_ms)
{
    fw_frame_t f;
    int rc = fwt_wire_next(s->fd, timeout_ms, &s->in, &f);
    if (rc == 0 || rc == -ETIMEDOUT)
        return rc;
    if (rc != 1)
        FWT_FAIL("reading the stream: %s", fw_strerror(rc));
    if (f.type == FW_FRAME_ERROR)
        FWT_FAIL("ptail refused the subscription (an ERROR frame)");
    FWT_ASSERT_INT_EQ(f.type, FW_FRAME_STREAM);
    s->stream_bytes += FW_FRAME_HEADER_SIZE + f.meta_len + f.body_len;
    Fwpb__StreamMessage *m = fwpb__stream_message__unpack(NULL, f.meta_len, f.meta);
    FWT_ASSERT(m != NULL);
    switch (m->kind_case) {
    case FWPB__STREAM_MESSAGE__KIND_SUBSCRIBED:
        s->subscribed = 1;
        break;
    case FWPB__STREAM_MESSAGE__KIND_RECORDS:
        take_block(s, m->records, &f);
        break;
    case FWPB__STREAM_MESSAGE__KIND_CHECKPOINT: {
        fw_checkpoint_t cp;
        FWT_ASSERT_OK(fw_checkpoint_decode(m->checkpoint->token.data, m->checkpoint->token.len,
                                           &cp)); /* ptail's tokens always decode */
        fw_checkpoint_free(&cp);
        fw_buf_reset(&s->last_token);
        FWT_ASSERT_OK(
            fw_buf_append(&s->last_token, m->checkpoint->token.data, m->checkpoint->token.len));
        s->checkpoints++;
        break;
    }
    case FWPB__STREAM_MESSAGE__KIND_GAP: {
        const Fwpb__Gap *g = m->gap;
        s->gaps++;
        snprintf(s->last_gap_reason, sizeof(s->last_gap_reason), "%s", g->reason ? g->reason : "");
        s->last_gap_from =
            (fw_position_t){g->bucket, g->from ? g->from->segment_id : 0,
                            g->from ? g->from->offset : 0, g->from ? g->from->record_index : 0};
        s->last_gap_to =
            (fw_position_t){g->bucket, g->to ? g->to->segment_id : 0, g->to ? g->to->offset : 0,
                            g->to ? g->to->record_index : 0};
        break;
    }
    default:
        FWT_FAIL("unexpected stream message %d", m->kind_case);
    }
    fwpb__stream_message__free_unpacked(m, NULL);
    return 1;
}

void fwt_stream_until(fwt_stream_t *s, uint64_t records, int timeout_ms)
{
    while (s->records < records) {
        int rc = fwt_stream_step(s, timeout_ms);
        if (rc != 1)
            FWT_FAIL("the stream %s after %llu of %llu records", rc == 0 ? "ended" : "stalled",
                     (unsigned long long)s->records, (unsigned long long)records);
    }
}

void fwt_stream_credit(fwt_stream_t *s, uint64_t bytes)
{
    Fwpb__Credit c = FWPB__CREDIT__INIT;
    c.bytes = bytes;
    fw_buf_t frame = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_frame_append(&frame, FW_FRAME_CREDIT, &c.base, NULL, 0, FW_FRAME_MAX_LIMIT));
    FWT_ASSERT_OK(fwt_wire_write(s->fd, frame.data, frame.len));
    fw_buf_free(&frame);
}

void fwt_stream_close(fwt_stream_t *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    fw_buf_free(&s->in.buf);
    fw_buf_free(&s->scratch);
    fw_buf_free(&s->last_token);
}

uint64_t fwt_stream_line_number(const fw_record_t *rec)
{
    char v[16];
    FWT_ASSERT(rec->value_len >= 9);
    memcpy(v, rec->value, 9);
    v[9] = '\0';
    return strtoull(v, NULL, 10);
}
