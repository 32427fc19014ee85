/*
 * calligraphus's Scribe listener against a real ZooKeeper and real writers,
 * driven by a Scribe client built on our own codec (so each test says
 * exactly what goes on the wire; the independent clients are in
 * test_scribe_clients): Log stored once at OK, TRY_LATER for what cannot be
 * taken, the same call sent again after TRY_LATER or after its client gave
 * up stores nothing twice, a malformed frame closes only its connection,
 * and fb303's calls answer.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_wire.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "freeway.h"
#include "scribe_thrift.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static fwt_zk_t zk;
static char spec[128], root[FWT_PATH_MAX];
static fwt_cal_t w1, w2;
static char scribe_addr[64];

static const char *const scribe_flags[] = {"--scribe-listen", "127.0.0.1:0", NULL};

/* ---- the fabric ------------------------------------------------------------------------------ */

static void start_writer(fwt_cal_t *w, const char *id, const char *const *flags, char *addr)
{
    fwt_cal_start(w, id, spec, root, flags);
    fwt_cal_scribe_address(w, addr, 64);
}

static void fabric(int buckets, const char *const *flags)
{
    fwt_zk_start(&zk);
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    fwt_category_create(spec, "web", buckets, NULL);
    start_writer(&w1, "w1", flags != NULL ? flags : scribe_flags, scribe_addr);
    fwt_cal_wait_owns(&w1, buckets, "the writer to own every bucket");
}

/* ---- a Scribe client on our codec ------------------------------------------------------------ */

static int32_t next_seqid;

static void send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        FWT_ASSERT(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* Reads one reply; -1 if the connection closed first. */
static int read_reply(int fd, fw_buf_t *in, cal_scribe_reply_t *r)
{
    fw_buf_reset(in);
    for (;;) {
        size_t need = 0;
        ssize_t n = cal_scribe_reply_decode(in->data, in->len, NULL, r, &need);
        FWT_ASSERT(n >= 0);
        if (n > 0)
            return 0;
        FWT_ASSERT(fw_buf_reserve(in, 65536) == 0);
        ssize_t got = recv(fd, in->data + in->len, in->cap - in->len, 0);
        if (got <= 0)
            return -1;
        in->len += (size_t)got;
    }
}

/* A Log call of n messages "PREFIX<i>" in category cat, encoded (strict header). */
static void log_call(fw_buf_t *out, const char *cat, const char *prefix, int first, int n,
                     int32_t seqid)
{
    cal_scribe_entry_t *e = calloc((size_t)n, sizeof(*e));
    char **texts = calloc((size_t)n, sizeof(*texts));
    FWT_ASSERT(e != NULL && texts != NULL);
    for (int i = 0; i < n; i++) {
        FWT_ASSERT(asprintf(&texts[i], "%s%d", prefix, first + i) > 0);
        e[i].category = (cal_thrift_str_t){cat, (uint32_t)strlen(cat)};
        e[i].message = (cal_thrift_str_t){texts[i], (uint32_t)strlen(texts[i])};
    }
    cal_scribe_call_t call = {
        .method = CAL_SCRIBE_LOG, .type = CAL_THRIFT_CALL, .strict = 1, .seqid = seqid};
    fw_buf_reset(out);
    FWT_ASSERT_INT_EQ(cal_scribe_call_encode(out, &call, e, (size_t)n), 0);
    for (int i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(e);
}

/* Sends an encoded call on fd: the ResultCode answered, or -1 if the connection closed. */
static int call_log(int fd, const fw_buf_t *call)
{
    send_all(fd, call->data, call->len);
    fw_buf_t in = FW_BUF_INIT;
    cal_scribe_reply_t r;
    int rc = read_reply(fd, &in, &r);
    if (rc == 0) {
        FWT_ASSERT_INT_EQ(r.type, CAL_THRIFT_REPLY);
        FWT_ASSERT_INT_EQ(r.value_type, CAL_THRIFT_I32);
        rc = (int)r.i;
    }
    fw_buf_free(&in);
    return rc;
}

static int log_messages(int fd, const char *cat, const char *prefix, int first, int n)
{
    fw_buf_t call = FW_BUF_INIT;
    log_call(&call, cat, prefix, first, n, ++next_seqid);
    int rc = call_log(fd, &call);
    fw_buf_free(&call);
    return rc;
}

/* ---- what the root holds ------------------------------------------------------------------- */

typedef struct count_s {
    const char *prefix;
    int n;
    int *seen;
    int other;
} count_t;

static void count_record(void *arg, uint32_t bucket, uint64_t segment_id,
                         const fw_block_header_t *hdr, const fw_record_t *rec)
{
    (void)bucket;
    (void)segment_id;
    (void)hdr;
    count_t *c = arg;
    size_t plen = strlen(c->prefix);
    char text[64];
    if (rec->value_len >= sizeof(text) || rec->value_len <= plen ||
        memcmp(rec->value, c->prefix, plen) != 0) {
        c->other++;
        return;
    }
    memcpy(text, rec->value, rec->value_len);
    text[rec->value_len] = '\0';
    int i = atoi(text + plen);
    if (i >= 0 && i < c->n)
        c->seen[i]++;
    else
        c->other++;
}

/* Every message PREFIX0..PREFIX<n-1> is in the category exactly once. */
static void assert_once(const char *cat, const char *prefix, int n)
{
    count_t c = {prefix, n, calloc((size_t)n, sizeof(int)), 0};
    FWT_ASSERT(c.seen != NULL);
    fwt_root_records(root, cat, count_record, &c);
    for (int i = 0; i < n; i++)
        if (c.seen[i] != 1)
            FWT_FAIL("%s%d stored %d times (want once)", prefix, i, c.seen[i]);
    free(c.seen);
}

/* ---- tests ----------------------------------------------------------------------------------- */

FWT_TEST(log_is_answered_ok_once_every_message_is_stored)
{
    fabric(4, NULL);
    int fd = fwt_wire_connect(scribe_addr);
    for (int i = 0; i < 10; i++)
        FWT_ASSERT_INT_EQ(log_messages(fd, "web", "m", i * 500, 500), CAL_SCRIBE_OK);
    close(fd);
    assert_once("web", "m", 5000);
    FWT_ASSERT(fwt_cal_metric(&w1, "freeway_calligraphus_scribe_messages_stored_total") == 5000);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

FWT_TEST(an_unknown_category_is_try_later_and_stores_nothing)
{
    fabric(2, NULL);
    int fd = fwt_wire_connect(scribe_addr);
    /* One message of a category that does not exist holds back the whole call. */
    fw_buf_t call = FW_BUF_INIT;
    cal_scribe_entry_t e[2] = {
        {{"web", 3}, {"a0", 2}},
        {{"nosuch", 6}, {"b0", 2}},
    };
    cal_scribe_call_t c = {.method = CAL_SCRIBE_LOG, .type = CAL_THRIFT_CALL, .seqid = 7};
    FWT_ASSERT_INT_EQ(cal_scribe_call_encode(&call, &c, e, 2), 0);
    FWT_ASSERT_INT_EQ(call_log(fd, &call), CAL_SCRIBE_TRY_LATER);
    FWT_ASSERT_INT_EQ((int)fwt_root_records(root, "web", NULL, NULL), 0);
    /* Once the category exists, the same call is stored. */
    fwt_category_create(spec, "nosuch", 1, NULL);
    fwt_cal_wait_owns(&w1, 3, "the writer to own the new category's bucket");
    FWT_ASSERT_INT_EQ(call_log(fd, &call), CAL_SCRIBE_OK);
    FWT_ASSERT_INT_EQ((int)fwt_root_records(root, "web", NULL, NULL), 1);
    FWT_ASSERT_INT_EQ((int)fwt_root_records(root, "nosuch", NULL, NULL), 1);
    fw_buf_free(&call);
    close(fd);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

FWT_TEST(a_message_that_can_never_be_stored_gets_an_exception)
{
    fabric(1, NULL);
    int fd = fwt_wire_connect(scribe_addr);
    fw_buf_t call = FW_BUF_INIT, in = FW_BUF_INIT;
    cal_scribe_entry_t e[2] = {
        {{"web", 3}, {"ok", 2}},
        {{"no spaces", 9}, {"x", 1}},
    };
    cal_scribe_call_t c = {.method = CAL_SCRIBE_LOG, .type = CAL_THRIFT_CALL, .seqid = 9};
    FWT_ASSERT_INT_EQ(cal_scribe_call_encode(&call, &c, e, 2), 0);
    send_all(fd, call.data, call.len);
    cal_scribe_reply_t r;
    FWT_ASSERT_INT_EQ(read_reply(fd, &in, &r), 0);
    FWT_ASSERT_INT_EQ(r.type, CAL_THRIFT_EXCEPTION);
    FWT_ASSERT_INT_EQ(r.seqid, 9);
    FWT_ASSERT(r.s.p != NULL && memmem(r.s.p, r.s.len, "no spaces", 9) != NULL);
    FWT_ASSERT_INT_EQ((int)fwt_root_records(root, "web", NULL, NULL), 0);
    /* The connection goes on. */
    FWT_ASSERT_INT_EQ(log_messages(fd, "web", "m", 0, 3), CAL_SCRIBE_OK);
    fw_buf_free(&call);
    fw_buf_free(&in);
    close(fd);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/*
 * A call whose blocks are partly stored is TRY_LATER; the same call again
 * sends only what was not stored. The category's share of the writer's
 * memory is so small that the second of a call's two blocks is refused
 * while the first is in flight.
 */
FWT_TEST(a_call_sent_again_after_try_later_stores_nothing_twice)
{
    /* --scribe-resubmit 0: the writer answers TRY_LATER at the first refusal, not after it
     * has sent the refused block again (the call would be answered OK in the end). */
    const char *flags[] = {"--scribe-listen",
                           "127.0.0.1:0",
                           "--category-inflight",
                           "1K",
                           "--scribe-resubmit",
                           "0",
                           NULL};
    fabric(1, flags);
    int fd = fwt_wire_connect(scribe_addr);
    /* Over 1 MiB of raw records: two blocks of the same bucket. */
    enum { N = 40000 };
    fw_buf_t call = FW_BUF_INIT;
    log_call(&call, "web", "retry-message-with-some-padding-", 0, N, 1);
    int first = call_log(fd, &call);
    FWT_ASSERT_INT_EQ(first, CAL_SCRIBE_TRY_LATER);
    uint64_t stored_after_first = fwt_root_records(root, "web", NULL, NULL);
    FWT_ASSERT(stored_after_first > 0 && stored_after_first < N);
    /* The client tries again until OK, as Scribe clients do. */
    int rc = CAL_SCRIBE_TRY_LATER;
    for (int tries = 0; tries < 100 && rc == CAL_SCRIBE_TRY_LATER; tries++)
        rc = call_log(fd, &call);
    FWT_ASSERT_INT_EQ(rc, CAL_SCRIBE_OK);
    assert_once("web", "retry-message-with-some-padding-", N);
    FWT_ASSERT(fwt_cal_metric(&w1, "freeway_calligraphus_scribe_retries_total") >= 1);
    FWT_ASSERT(fwt_cal_metric(&w1, "freeway_calligraphus_scribe_blocks_skipped_total") >= 1);
    fw_buf_free(&call);
    close(fd);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/*
 * A client that gives up on a call (its timeout) closes the connection and
 * sends the call again on a new one: stored once. The writer is stopped
 * while the call and the close arrive, so it sees both before the call's
 * blocks are on disk: the answer cannot have reached the client.
 */
FWT_TEST(a_call_sent_again_after_its_client_gave_up_stores_nothing_twice)
{
    fabric(2, NULL);
    fw_buf_t call = FW_BUF_INIT;
    log_call(&call, "web", "g", 0, 2000, 1);
    int fd = fwt_wire_connect(scribe_addr);
    fwt_proc_signal(&w1.proc, SIGSTOP);
    send_all(fd, call.data, call.len);
    close(fd);
    fwt_proc_signal(&w1.proc, SIGCONT);
    fd = fwt_wire_connect(scribe_addr);
    int rc = CAL_SCRIBE_TRY_LATER;
    /* TRY_LATER while the first try still runs. */
    for (int tries = 0; tries < 200 && rc == CAL_SCRIBE_TRY_LATER; tries++)
        rc = call_log(fd, &call);
    FWT_ASSERT_INT_EQ(rc, CAL_SCRIBE_OK);
    assert_once("web", "g", 2000);
    FWT_ASSERT(fwt_cal_metric(&w1, "freeway_calligraphus_scribe_retries_total") == 1);
    /* The same messages in a new call on a live connection after OK are new messages. */
    FWT_ASSERT_INT_EQ(call_log(fd, &call), CAL_SCRIBE_OK);
    count_t c = {"g", 2000, calloc(2000, sizeof(int)), 0};
    fwt_root_records(root, "web", count_record, &c);
    for (int i = 0; i < 2000; i++)
        FWT_ASSERT_INT_EQ(c.seen[i], 2);
    free(c.seen);
    fw_buf_free(&call);
    close(fd);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/* A oneway Log (no answer wanted) is stored and answered never; the next call's answer is next. */
FWT_TEST(a_oneway_log_is_stored_without_an_answer)
{
    fabric(1, NULL);
    int fd = fwt_wire_connect(scribe_addr);
    fw_buf_t call = FW_BUF_INIT;
    cal_scribe_entry_t e = {{"web", 3}, {"oneway0", 7}};
    cal_scribe_call_t c = {.method = CAL_SCRIBE_LOG, .type = CAL_THRIFT_ONEWAY, .seqid = 5};
    FWT_ASSERT_INT_EQ(cal_scribe_call_encode(&call, &c, &e, 1), 0);
    send_all(fd, call.data, call.len);
    fw_buf_free(&call);
    fw_buf_t in = FW_BUF_INIT;
    log_call(&call, "web", "m", 0, 1, 6);
    send_all(fd, call.data, call.len);
    cal_scribe_reply_t r;
    FWT_ASSERT_INT_EQ(read_reply(fd, &in, &r), 0);
    FWT_ASSERT_INT_EQ(r.seqid, 6); /* the first answer is the second call's */
    FWT_ASSERT_INT_EQ((int)r.i, CAL_SCRIBE_OK);
    assert_once("web", "oneway", 1);
    fw_buf_free(&call);
    fw_buf_free(&in);
    close(fd);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

FWT_TEST(a_malformed_frame_closes_only_its_own_connection)
{
    fabric(1, NULL);
    int good = fwt_wire_connect(scribe_addr);
    int bad = fwt_wire_connect(scribe_addr);
    FWT_ASSERT_INT_EQ(log_messages(good, "web", "m", 0, 10), CAL_SCRIBE_OK);
    /* A frame of 12 bytes that is no Thrift message. */
    static const uint8_t garbage[] = {0,    0,    0,    12,   0x80, 0x01, 0, 1,
                                      0x7f, 0xff, 0xff, 0xff, 1,    2,    3, 4};
    send_all(bad, garbage, sizeof(garbage));
    char byte;
    FWT_ASSERT_INT_EQ((int)recv(bad, &byte, 1, 0), 0); /* closed by the writer */
    FWT_ASSERT_INT_EQ(log_messages(good, "web", "m", 10, 10), CAL_SCRIBE_OK);
    assert_once("web", "m", 20);
    FWT_ASSERT(fwt_cal_metric(&w1, "freeway_calligraphus_bad_frames_total") == 1);
    close(good);
    close(bad);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

FWT_TEST(fb303_calls_answer_what_scribe_ctrl_asks)
{
    fabric(1, NULL);
    int fd = fwt_wire_connect(scribe_addr);
    FWT_ASSERT_INT_EQ(log_messages(fd, "web", "m", 0, 5), CAL_SCRIBE_OK);
    fw_buf_t out = FW_BUF_INIT, in = FW_BUF_INIT;
    cal_scribe_reply_t r;
    cal_scribe_call_t c = {.type = CAL_THRIFT_CALL, .seqid = 100};

    c.method = CAL_SCRIBE_GET_STATUS;
    FWT_ASSERT_INT_EQ(cal_scribe_call_encode(&out, &c, NULL, 0), 0);
    send_all(fd, out.data, out.len);
    FWT_ASSERT_INT_EQ(read_reply(fd, &in, &r), 0);
    FWT_ASSERT_INT_EQ((int)r.i, CAL_FB_ALIVE);

    fw_buf_reset(&out);
    c.method = CAL_SCRIBE_GET_COUNTERS;
    FWT_ASSERT_INT_EQ(cal_scribe_call_encode(&out, &c, NULL, 0), 0);
    send_all(fd, out.data, out.len);
    FWT_ASSERT_INT_EQ(read_reply(fd, &in, &r), 0);
    cal_scribe_map_iter_t it;
    cal_thrift_str_t key;
    int64_t value = -1, good = -1;
    cal_scribe_map_begin(&r, &it);
    while (cal_scribe_map_next(&it, &key, &value, NULL) == 1)
        if (key.len == 13 && memcmp(key.p, "received good", 13) == 0)
            good = value;
    FWT_ASSERT_INT_EQ((int)good, 5);

    fw_buf_reset(&out);
    c.method = CAL_SCRIBE_GET_VERSION;
    FWT_ASSERT_INT_EQ(cal_scribe_call_encode(&out, &c, NULL, 0), 0);
    send_all(fd, out.data, out.len);
    FWT_ASSERT_INT_EQ(read_reply(fd, &in, &r), 0);
    FWT_ASSERT(r.s.len > 0);

    /* A method Scribe does not have: UNKNOWN_METHOD, and the connection goes on. */
    fw_buf_reset(&out);
    c.method = CAL_SCRIBE_UNKNOWN;
    c.name = (cal_thrift_str_t){"frobnicate", 10};
    FWT_ASSERT_INT_EQ(cal_scribe_call_encode(&out, &c, NULL, 0), 0);
    send_all(fd, out.data, out.len);
    FWT_ASSERT_INT_EQ(read_reply(fd, &in, &r), 0);
    FWT_ASSERT_INT_EQ(r.type, CAL_THRIFT_EXCEPTION);
    FWT_ASSERT_INT_EQ(r.exc_type, CAL_THRIFT_EXC_UNKNOWN_METHOD);
    FWT_ASSERT_INT_EQ(log_messages(fd, "web", "m", 5, 5), CAL_SCRIBE_OK);

    fw_buf_free(&out);
    fw_buf_free(&in);
    close(fd);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/* Unkeyed messages stay with the writer that took the call: no forwarding hop. */
FWT_TEST(unkeyed_messages_go_to_a_bucket_the_writer_owns)
{
    fabric(4, NULL);
    char addr2[64];
    start_writer(&w2, "w2", scribe_flags, addr2);
    fwt_cal_wait_balanced(&w1, &w2, 2, "the writers to share the buckets");
    int fd = fwt_wire_connect(scribe_addr);
    int fd2 = fwt_wire_connect(addr2);
    for (int i = 0; i < 20; i++)
        FWT_ASSERT_INT_EQ(log_messages(i % 2 ? fd : fd2, "web", "f", i * 100, 100), CAL_SCRIBE_OK);
    assert_once("web", "f", 2000);
    FWT_ASSERT(fwt_cal_metric_sum(&w1, "freeway_calligraphus_blocks_forwarded_total") == 0);
    FWT_ASSERT(fwt_cal_metric_sum(&w2, "freeway_calligraphus_blocks_forwarded_total") == 0);
    close(fd);
    close(fd2);
    fwt_cal_stop(&w2);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/* ---- pipelining ------------------------------------------------------------------------------ */

/* Replies read from a stream: bytes past one reply are kept for the next. */
typedef struct reply_stream_s {
    fw_buf_t in;
    size_t used;
} reply_stream_t;

static void next_reply(int fd, reply_stream_t *st, cal_scribe_reply_t *r)
{
    if (st->used > 0) {
        memmove(st->in.data, st->in.data + st->used, st->in.len - st->used);
        st->in.len -= st->used;
        st->used = 0;
    }
    for (;;) {
        size_t need = 0;
        ssize_t n = cal_scribe_reply_decode(st->in.data, st->in.len, NULL, r, &need);
        FWT_ASSERT(n >= 0);
        if (n > 0) {
            st->used = (size_t)n;
            return;
        }
        FWT_ASSERT(fw_buf_reserve(&st->in, 65536) == 0);
        ssize_t got = recv(fd, st->in.data + st->in.len, st->in.cap - st->in.len, 0);
        if (got <= 0)
            FWT_FAIL("the connection closed with replies still due");
        st->in.len += (size_t)got;
    }
}

/*
 * A client that sends its calls without waiting (the npm client sends a
 * call per line) gets them stored together and every answer in the order
 * of its call, fb303's and immediate TRY_LATERs among them; the same bytes
 * twice in a row are two calls, stored twice, as when sent one by one.
 */
FWT_TEST(pipelined_calls_are_answered_in_order_and_each_stored)
{
    fabric(4, NULL);
    int fd = fwt_wire_connect(scribe_addr);
    enum { CALLS = 300, TWICE = 150, STATUS_AT = 100, STATUS_CALLS = 200, UNKNOWN_AT = 200 };
    fw_buf_t all = FW_BUF_INIT, one = FW_BUF_INIT;
    int32_t seqid = 0;
    for (int i = 0; i < CALLS; i++) {
        log_call(&one, "web", "p", i, 1, seqid++);
        FWT_ASSERT_OK(fw_buf_append(&all, one.data, one.len));
        if (i == TWICE) { /* the same bytes again: another call of the same line */
            log_call(&one, "web", "p", i, 1, seqid++);
            FWT_ASSERT_OK(fw_buf_append(&all, one.data, one.len));
        }
        /* More fb303 calls than a connection may have answers due: it reads them in turn. */
        for (int j = 0; i == STATUS_AT && j < STATUS_CALLS; j++) {
            cal_scribe_call_t c = {
                .method = CAL_SCRIBE_GET_STATUS, .type = CAL_THRIFT_CALL, .seqid = seqid++};
            fw_buf_reset(&one);
            FWT_ASSERT_INT_EQ(cal_scribe_call_encode(&one, &c, NULL, 0), 0);
            FWT_ASSERT_OK(fw_buf_append(&all, one.data, one.len));
        }
        if (i == UNKNOWN_AT) {
            log_call(&one, "nosuch", "u", 0, 1, seqid++);
            FWT_ASSERT_OK(fw_buf_append(&all, one.data, one.len));
        }
    }
    send_all(fd, all.data, all.len);
    reply_stream_t st = {FW_BUF_INIT, 0};
    int ok = 0, later = 0, status = 0;
    for (int32_t want = 0; want < seqid; want++) {
        cal_scribe_reply_t r;
        next_reply(fd, &st, &r);
        FWT_ASSERT_INT_EQ(r.seqid, want);
        FWT_ASSERT_INT_EQ(r.type, CAL_THRIFT_REPLY);
        if (r.name.len == 9 && memcmp(r.name.p, "getStatus", 9) == 0) {
            FWT_ASSERT_INT_EQ((int)r.i, CAL_FB_ALIVE);
            status++;
        } else if (r.i == CAL_SCRIBE_TRY_LATER) {
            later++;
        } else {
            FWT_ASSERT_INT_EQ((int)r.i, CAL_SCRIBE_OK);
            ok++;
        }
    }
    FWT_ASSERT_INT_EQ(ok, CALLS + 1);
    FWT_ASSERT_INT_EQ(later, 1); /* the unknown category's */
    FWT_ASSERT_INT_EQ(status, STATUS_CALLS);
    count_t c = {"p", CALLS, calloc(CALLS, sizeof(int)), 0};
    FWT_ASSERT(c.seen != NULL);
    fwt_root_records(root, "web", count_record, &c);
    for (int i = 0; i < CALLS; i++)
        if (c.seen[i] != (i == TWICE ? 2 : 1))
            FWT_FAIL("p%d stored %d times (want %d)", i, c.seen[i], i == TWICE ? 2 : 1);
    FWT_ASSERT_INT_EQ(c.other, 0);
    free(c.seen);
    fw_buf_free(&st.in);
    fw_buf_free(&all);
    fw_buf_free(&one);
    close(fd);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/* ---- keys ----------------------------------------------------------------------------------- */

typedef struct keyed_s {
    int records, misplaced, keyless;
} keyed_t;

static void check_keyed(void *arg, uint32_t bucket, uint64_t segment_id,
                        const fw_block_header_t *hdr, const fw_record_t *rec)
{
    (void)segment_id;
    (void)hdr;
    keyed_t *k = arg;
    k->records++;
    const char *colon = memchr(rec->value, ':', rec->value_len);
    if (!rec->has_key || colon == NULL ||
        rec->key_len != (size_t)(colon - (const char *)rec->value) ||
        memcmp(rec->key, rec->value, rec->key_len) != 0) {
        k->keyless++;
        return;
    }
    /* Where a freeway producer puts a record of that key. */
    if (fw_key_bucket(rec->key, rec->key_len, 8) != bucket)
        k->misplaced++;
}

/*
 * With the category's Scribe key delimiter, the text before it is the key
 * (the message is stored whole) and places the record as a producer's
 * keyed record is placed: both kinds of sender meet per key.
 */
FWT_TEST(a_key_delimiter_places_messages_as_producers_place_keys)
{
    fwt_zk_start(&zk);
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    const char *cat_flags[] = {"--scribe-key-delimiter", ":", NULL};
    fwt_category_create(spec, "keyed", 8, cat_flags);
    start_writer(&w1, "w1", scribe_flags, scribe_addr);
    char addr2[64];
    start_writer(&w2, "w2", scribe_flags, addr2);
    fwt_cal_wait_balanced(&w1, &w2, 4, "the writers to share the buckets");
    fwt_cal_wait_routed(&w1, "keyed", "the first writer to know the second's buckets");
    int fd = fwt_wire_connect(scribe_addr);
    enum { CALLS = 10, PER_CALL = 300 };
    for (int c = 0; c < CALLS; c++) {
        cal_scribe_entry_t e[PER_CALL];
        char text[PER_CALL][32];
        for (int i = 0; i < PER_CALL; i++) {
            int n = snprintf(text[i], sizeof(text[i]), "k%d:line %d", (c * PER_CALL + i) % 37,
                             c * PER_CALL + i);
            e[i].category = (cal_thrift_str_t){"keyed", 5};
            e[i].message = (cal_thrift_str_t){text[i], (uint32_t)n};
        }
        fw_buf_t call = FW_BUF_INIT;
        cal_scribe_call_t tc = {.method = CAL_SCRIBE_LOG, .type = CAL_THRIFT_CALL, .seqid = c};
        FWT_ASSERT_INT_EQ(cal_scribe_call_encode(&call, &tc, e, PER_CALL), 0);
        /* Half the buckets are the other writer's: their blocks are forwarded. */
        FWT_ASSERT_INT_EQ(call_log(fd, &call), CAL_SCRIBE_OK);
        fw_buf_free(&call);
    }
    keyed_t k = {0, 0, 0};
    fwt_root_records(root, "keyed", check_keyed, &k);
    FWT_ASSERT_INT_EQ(k.records, CALLS * PER_CALL);
    FWT_ASSERT_INT_EQ(k.keyless, 0);
    FWT_ASSERT_INT_EQ(k.misplaced, 0);
    close(fd);
    fwt_cal_stop(&w2);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/* ---- chains: the probe rule ---------------------------------------------------------------- */

typedef struct origin_s {
    uint64_t pid, seq;
    int records;
} origin_t;

typedef struct origins_s {
    origin_t v[16];
    int n;
} origins_t;

static void collect_origin(void *arg, uint32_t bucket, uint64_t segment_id,
                           const fw_block_header_t *hdr, const fw_record_t *rec)
{
    (void)bucket;
    (void)segment_id;
    (void)rec;
    origins_t *o = arg;
    for (int i = 0; i < o->n; i++)
        if (o->v[i].pid == hdr->producer_id && o->v[i].seq == hdr->sequence) {
            o->v[i].records++;
            return;
        }
    FWT_ASSERT(o->n < 16);
    o->v[o->n++] = (origin_t){hdr->producer_id, hdr->sequence, 1};
}

/*
 * An owner takes a producer id it does not know at any sequence and counts
 * the ones below as stored, so a connection's chain sends its first block
 * (sequence 1) alone: a call's further blocks for a new chain go under ids
 * of their own, each a sequence 1, and the chain goes on at 2 once its
 * first block is stored.
 */
FWT_TEST(a_new_chain_sends_its_first_block_alone)
{
    fabric(1, NULL);
    int fd = fwt_wire_connect(scribe_addr);
    /* Over 1 MiB of raw records in one bucket: two blocks. */
    enum { BIG = 40000, SMALL = 10 };
    FWT_ASSERT_INT_EQ(log_messages(fd, "web", "a-first-call-line-with-some-padding-", 0, BIG),
                      CAL_SCRIBE_OK);
    FWT_ASSERT_INT_EQ(log_messages(fd, "web", "b", 0, SMALL), CAL_SCRIBE_OK);
    origins_t o = {.n = 0};
    fwt_root_records(root, "web", collect_origin, &o);
    FWT_ASSERT_INT_EQ(o.n, 3);
    const origin_t *small = NULL;
    for (int i = 0; i < o.n; i++)
        if (o.v[i].records == SMALL)
            small = &o.v[i];
    FWT_ASSERT(small != NULL);
    FWT_ASSERT_UINT_EQ(small->seq, 2); /* the chain goes on */
    int probe = 0, own = 0;
    for (int i = 0; i < o.n; i++) {
        if (&o.v[i] == small)
            continue;
        FWT_ASSERT_UINT_EQ(o.v[i].seq, 1);
        if (o.v[i].pid == small->pid)
            probe++;
        else
            own++;
    }
    FWT_ASSERT_INT_EQ(probe, 1);
    FWT_ASSERT_INT_EQ(own, 1);
    close(fd);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/*
 * A block refused before it reached any bucket (its category over its share
 * of the writer's memory) is stored nowhere: the writer sends it again under
 * an id of its own at sequence 1, so nothing can overtake it or be taken for
 * it, and answers OK once it is stored. The connection's chain starts again
 * under a new id.
 */
FWT_TEST(a_block_refused_before_it_reached_a_bucket_goes_again_under_its_own_id)
{
    const char *flags[] = {"--scribe-listen", "127.0.0.1:0", "--category-inflight", "1K", NULL};
    fabric(1, flags);
    int fd = fwt_wire_connect(scribe_addr);
    enum { SMALL = 10, BIG = 40000 };
    FWT_ASSERT_INT_EQ(log_messages(fd, "web", "a", 0, SMALL), CAL_SCRIBE_OK); /* (P, 1) */
    /* Two blocks: (P, 2) takes the share, (P, 3) is refused at once and goes again as (Q, 1). */
    FWT_ASSERT_INT_EQ(log_messages(fd, "web", "b-second-call-line-with-some-padding-", 0, BIG),
                      CAL_SCRIBE_OK);
    FWT_ASSERT(fwt_cal_metric(&w1, "freeway_calligraphus_scribe_blocks_resubmitted_total") >= 1);
    FWT_ASSERT_INT_EQ(log_messages(fd, "web", "c", 0, SMALL), CAL_SCRIBE_OK); /* (R, 1) */
    origins_t o = {.n = 0};
    fwt_root_records(root, "web", collect_origin, &o);
    FWT_ASSERT_INT_EQ(o.n, 4);
    int total = 0;
    uint64_t p = 0;
    for (int i = 0; i < o.n; i++) {
        total += o.v[i].records;
        if (o.v[i].seq == 2)
            p = o.v[i].pid;
    }
    FWT_ASSERT_INT_EQ(total, 2 * SMALL + BIG);
    FWT_ASSERT(p != 0);
    int under_p = 0, firsts = 0;
    for (int i = 0; i < o.n; i++) {
        if (o.v[i].pid == p)
            under_p++;
        else
            firsts += o.v[i].seq == 1;
    }
    FWT_ASSERT_INT_EQ(under_p, 2); /* (P, 1) and (P, 2); (P, 3) never stored */
    FWT_ASSERT_INT_EQ(firsts, 2);  /* (Q, 1), and (R, 1): the restarted chain's first */
    close(fd);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/* ---- an owner that dies under a call ---------------------------------------------------- */

/* A call of n keyed lines "k<i % 37>:line <i>", i from first, in category "keyed". */
static void keyed_call(fw_buf_t *out, int first, int n, int32_t seqid)
{
    cal_scribe_entry_t *e = calloc((size_t)n, sizeof(*e));
    char(*text)[32] = calloc((size_t)n, sizeof(*text));
    FWT_ASSERT(e != NULL && text != NULL);
    for (int i = 0; i < n; i++) {
        int len = snprintf(text[i], sizeof(text[i]), "k%d:line %d", (first + i) % 37, first + i);
        e[i].category = (cal_thrift_str_t){"keyed", 5};
        e[i].message = (cal_thrift_str_t){text[i], (uint32_t)len};
    }
    cal_scribe_call_t tc = {.method = CAL_SCRIBE_LOG, .type = CAL_THRIFT_CALL, .seqid = seqid};
    fw_buf_reset(out);
    FWT_ASSERT_INT_EQ(cal_scribe_call_encode(out, &tc, e, (size_t)n), 0);
    free(text);
    free(e);
}

static void count_line(void *arg, uint32_t bucket, uint64_t segment_id,
                       const fw_block_header_t *hdr, const fw_record_t *rec)
{
    (void)bucket;
    (void)segment_id;
    (void)hdr;
    count_t *c = arg;
    char text[64];
    const char *line;
    if (rec->value_len >= sizeof(text)) {
        c->other++;
        return;
    }
    memcpy(text, rec->value, rec->value_len);
    text[rec->value_len] = '\0';
    int i = (line = strstr(text, ":line ")) != NULL ? atoi(line + 6) : -1;
    if (i >= 0 && i < c->n)
        c->seen[i]++;
    else
        c->other++;
}

/*
 * The owner of half the buckets is killed between two calls. The next
 * call's forwards to it fail; the writer sends those blocks again until the
 * buckets have moved to it (the dead writer's session expires) and answers
 * OK: the client never sees TRY_LATER for a passing failure, and every line
 * is stored once.
 */
FWT_TEST(a_call_whose_owner_dies_is_answered_ok_once_the_buckets_move)
{
    fwt_zk_start(&zk);
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    const char *cat_flags[] = {"--scribe-key-delimiter", ":", NULL};
    fwt_category_create(spec, "keyed", 4, cat_flags);
    const char *w1_flags[] = {"--scribe-listen", "127.0.0.1:0", "--scribe-resubmit", "60s", NULL};
    start_writer(&w1, "w1", w1_flags, scribe_addr);
    const char *w2_flags[] = {"--session-timeout", "2s", NULL};
    fwt_cal_start(&w2, "w2", spec, root, w2_flags);
    fwt_cal_wait_balanced(&w1, &w2, 2, "the writers to share the buckets");
    fwt_cal_wait_routed(&w1, "keyed", "the first writer to know the second's buckets");
    enum { PER_CALL = 400 };
    int fd = fwt_wire_connect(scribe_addr);
    fw_buf_t call = FW_BUF_INIT;
    keyed_call(&call, 0, PER_CALL, 1);
    FWT_ASSERT_INT_EQ(call_log(fd, &call), CAL_SCRIBE_OK);
    FWT_ASSERT(fwt_cal_metric(&w1, "freeway_calligraphus_scribe_blocks_resubmitted_total") == 0);
    fwt_cal_kill(&w2);
    keyed_call(&call, PER_CALL, PER_CALL, 2);
    FWT_ASSERT_INT_EQ(call_log(fd, &call), CAL_SCRIBE_OK);
    FWT_ASSERT(fwt_cal_metric(&w1, "freeway_calligraphus_scribe_blocks_resubmitted_total") > 0);
    FWT_ASSERT(fwt_cal_metric(&w1, "freeway_calligraphus_owned_buckets") == 4);
    FWT_ASSERT(
        fwt_cal_metric(&w1, "freeway_calligraphus_scribe_calls_total{result=\"try_later\"}") == 0);
    count_t c = {"", 2 * PER_CALL, calloc(2 * PER_CALL, sizeof(int)), 0};
    FWT_ASSERT(c.seen != NULL);
    fwt_root_records(root, "keyed", count_line, &c);
    for (int i = 0; i < 2 * PER_CALL; i++)
        if (c.seen[i] != 1)
            FWT_FAIL("line %d stored %d times (want once)", i, c.seen[i]);
    FWT_ASSERT_INT_EQ(c.other, 0);
    free(c.seen);
    fw_buf_free(&call);
    close(fd);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/* --scribe-unknown-category create: the category appears, and the call is stored once. */
FWT_TEST(an_unknown_category_is_created_when_the_deployment_says_so)
{
    const char *flags[] = {"--scribe-listen",
                           "127.0.0.1:0",
                           "--scribe-unknown-category",
                           "create",
                           "--scribe-new-category-buckets",
                           "3",
                           NULL};
    fabric(1, flags);
    int fd = fwt_wire_connect(scribe_addr);
    fw_buf_t call = FW_BUF_INIT;
    log_call(&call, "fresh", "n", 0, 100, 1);
    int rc = CAL_SCRIBE_TRY_LATER, tries = 0;
    while (rc == CAL_SCRIBE_TRY_LATER && tries++ < 300) {
        rc = call_log(fd, &call);
        if (rc == CAL_SCRIBE_TRY_LATER)
            usleep(100 * 1000); /* a client's retry interval, not a wait for an event */
    }
    FWT_ASSERT_INT_EQ(rc, CAL_SCRIBE_OK);
    FWT_ASSERT(tries > 1); /* the first answer was TRY_LATER: the category did not exist */
    assert_once("fresh", "n", 100);
    fwt_cal_wait_owns(&w1, 4, "the writer to own the created category's 3 buckets");
    fw_buf_free(&call);
    close(fd);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}
