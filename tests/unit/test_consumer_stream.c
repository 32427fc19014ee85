/*
 * The consumer against a fake ptail: a thread that speaks the stream
 * protocol over a real loopback socket and follows a script per connection,
 * so a test can send what a real ptail would not: a damaged block, a replay
 * of records already delivered, records that skip ahead, errors, gaps. Checks
 * what reaches the application, what the consumer asks for when it resumes,
 * and that it grants back exactly the credit it used. (The real ptail is
 * exercised by tests/integration/test_consume.c.)
 */
#include "fwtest.h"
#include "fwt_wire.h"

#include "block.h"
#include "checkpoint.h"
#include "consumer_int.h"
#include "segment.h"
#include "error.h"
#include "frame.h"
#include "freeway.h"
#include "proto/stream.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define FIRST     47 /* segment header length for category "web": the first block's offset */
#define MAX_CONNS 8

/* ---- the fake ptail -------------------------------------------------------------------------- */

typedef struct fake_s fake_t;
typedef void (*script_fn)(fake_t *f, int fd, int conn);

struct fake_s {
    int lfd;
    char addr[64];
    pthread_t thread;
    script_fn script;
    int max_conns;
    atomic_int stop;
    /* per connection, written by the fake's thread, read after it ended */
    int conns;
    Fwpb__SubscribeRequest *subs[MAX_CONNS];
    uint64_t sent[MAX_CONNS];     /* STREAM bytes sent */
    uint64_t credited[MAX_CONNS]; /* CREDIT bytes received */
    fwt_wire_reader_t in[MAX_CONNS];
};

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    while (!atomic_load(&f->stop) && f->conns < f->max_conns) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        int conn = f->conns++;
        f->script(f, fd, conn);
        close(fd);
    }
    return NULL;
}

static void fake_start(fake_t *f, script_fn script, int max_conns)
{
    memset(f, 0, sizeof(*f));
    f->script = script;
    f->max_conns = max_conns;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FWT_ASSERT(f->lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    FWT_ASSERT(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    FWT_ASSERT(listen(f->lfd, 16) == 0);
    socklen_t len = sizeof(sa);
    getsockname(f->lfd, (struct sockaddr *)&sa, &len);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%u", ntohs(sa.sin_port));
    FWT_ASSERT(pthread_create(&f->thread, NULL, fake_main, f) == 0);
}

/* Ends the fake's thread; what it recorded stays readable until fake_free. */
static void fake_stop(fake_t *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->thread, NULL);
    close(f->lfd);
}

static void fake_free(fake_t *f)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        if (f->subs[i] != NULL)
            fwpb__subscribe_request__free_unpacked(f->subs[i], NULL);
        fw_buf_free(&f->in[i].buf);
    }
}

/* Reads the SUBSCRIBE of connection conn and keeps it. */
static void read_subscribe(fake_t *f, int fd, int conn)
{
    fw_frame_t fr;
    FWT_ASSERT_INT_EQ(fwt_wire_next(fd, 10000, &f->in[conn], &fr), 1);
    FWT_ASSERT_INT_EQ(fr.type, FW_FRAME_SUBSCRIBE);
    f->subs[conn] = fwpb__subscribe_request__unpack(NULL, fr.meta_len, fr.meta);
    FWT_ASSERT(f->subs[conn] != NULL);
    FWT_ASSERT_STR_EQ(f->subs[conn]->category, "web");
}

static void send_stream(fake_t *f, int fd, int conn, Fwpb__StreamMessage *m, const void *body,
                        size_t len)
{
    fw_buf_t frame = FW_BUF_INIT;
    FWT_ASSERT_OK(
        fw_frame_append(&frame, FW_FRAME_STREAM, &m->base, body, len, FW_FRAME_MAX_LIMIT));
    f->sent[conn] += frame.len;
    fwt_wire_write(fd, frame.data, frame.len); /* a consumer that left is not a failure */
    fw_buf_free(&frame);
}

static void send_subscribed(fake_t *f, int fd, int conn, uint32_t nbuckets)
{
    uint32_t list[16];
    for (uint32_t i = 0; i < nbuckets; i++)
        list[i] = i;
    Fwpb__Subscribed s = FWPB__SUBSCRIBED__INIT;
    s.bucket_count = nbuckets;
    s.n_buckets = nbuckets;
    s.buckets = list;
    Fwpb__StreamMessage m = FWPB__STREAM_MESSAGE__INIT;
    m.kind_case = FWPB__STREAM_MESSAGE__KIND_SUBSCRIBED;
    m.subscribed = &s;
    send_stream(f, fd, conn, &m, NULL, 0);
}

/* Block number `id` of a bucket: n records whose values are "<id>.<i>". */
static void make_block(fw_buf_t *out, int id, int n)
{
    fw_block_builder_t b;
    fw_block_builder_init(&b, FW_RECORD_MAX_HARD);
    for (int i = 0; i < n; i++) {
        char v[32];
        int len = snprintf(v, sizeof(v), "%d.%d", id, i);
        FWT_ASSERT_OK(fw_block_builder_add(&b, 1700000000000 + i, "k", 1, 1, v, (size_t)len));
    }
    const uint8_t *data;
    size_t len;
    FWT_ASSERT_OK(fw_block_builder_finish(&b, FW_CODEC_NONE, 1, (uint64_t)id, &data, &len));
    fw_buf_reset(out);
    FWT_ASSERT_OK(fw_buf_append(out, data, len));
    fw_block_builder_free(&b);
}

static void send_block(fake_t *f, int fd, int conn, uint32_t bucket, uint64_t seg, uint64_t off,
                       uint32_t first, const fw_buf_t *block)
{
    Fwpb__Records r = FWPB__RECORDS__INIT;
    r.bucket = bucket;
    r.segment_id = seg;
    r.offset = off;
    r.has_first_record = first > 0;
    r.first_record = first;
    Fwpb__StreamMessage m = FWPB__STREAM_MESSAGE__INIT;
    m.kind_case = FWPB__STREAM_MESSAGE__KIND_RECORDS;
    m.records = &r;
    send_stream(f, fd, conn, &m, block->data, block->len);
}

static void send_checkpoint(fake_t *f, int fd, int conn, const fw_position_t *pos, uint32_t n)
{
    fw_checkpoint_t cp = {.count = n, .positions = (fw_position_t *)pos};
    snprintf(cp.category, sizeof(cp.category), "web");
    fw_buf_t token = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_checkpoint_encode(&cp, &token));
    Fwpb__Checkpoint c = FWPB__CHECKPOINT__INIT;
    c.token.data = token.data;
    c.token.len = token.len;
    Fwpb__StreamMessage m = FWPB__STREAM_MESSAGE__INIT;
    m.kind_case = FWPB__STREAM_MESSAGE__KIND_CHECKPOINT;
    m.checkpoint = &c;
    send_stream(f, fd, conn, &m, NULL, 0);
    fw_buf_free(&token);
}

static void send_error(int fd, Fwpb__Status status, const char *message)
{
    Fwpb__ErrorReply e = FWPB__ERROR_REPLY__INIT;
    e.status = status;
    e.message = (char *)message;
    fw_buf_t frame = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_frame_append(&frame, FW_FRAME_ERROR, &e.base, NULL, 0, FW_FRAME_MAX_LIMIT));
    fwt_wire_write(fd, frame.data, frame.len);
    fw_buf_free(&frame);
}

/* Reads CREDIT frames until the consumer closes (or 20 s pass), adding them up. */
static void read_credit_until_eof(fake_t *f, int fd, int conn)
{
    for (;;) {
        fw_frame_t fr;
        int rc = fwt_wire_next(fd, 20000, &f->in[conn], &fr);
        if (rc != 1)
            return;
        FWT_ASSERT_INT_EQ(fr.type, FW_FRAME_CREDIT);
        Fwpb__Credit *c = fwpb__credit__unpack(NULL, fr.meta_len, fr.meta);
        FWT_ASSERT(c != NULL);
        f->credited[conn] += c->bytes;
        fwpb__credit__free_unpacked(c, NULL);
    }
}

/* The start token of connection conn's SUBSCRIBE, decoded. */
static void sub_token(const fake_t *f, int conn, fw_checkpoint_t *cp)
{
    const Fwpb__SubscribeRequest *s = f->subs[conn];
    FWT_ASSERT(s != NULL);
    FWT_ASSERT_INT_EQ(s->start, FWPB__START_KIND__START_CHECKPOINT);
    FWT_ASSERT(s->has_checkpoint);
    FWT_ASSERT_OK(fw_checkpoint_decode(s->checkpoint.data, s->checkpoint.len, cp));
}

/* ---- the application side -------------------------------------------------------------------- */

typedef struct app_s {
    fw_consumer_t *c;
    char values[64][16]; /* values delivered, in order */
    int n;
    int stop_at;
    int checkpoints;
    int gaps;
    fw_consumer_gap_t gap;
    int inner_poll_rc, inner_close_rc;
} app_t;

static void on_record(const fw_consumer_record_t *r, void *arg)
{
    app_t *a = arg;
    FWT_ASSERT(a->n < 64 && r->value_len < 16);
    memcpy(a->values[a->n], r->value, r->value_len);
    a->values[a->n][r->value_len] = '\0';
    a->n++;
    a->inner_poll_rc = fw_consumer_poll(a->c, 0);
    a->inner_close_rc = fw_consumer_close(a->c);
    if (a->stop_at && a->n == a->stop_at)
        fw_consumer_break(a->c);
}

static void on_checkpoint(const void *token, size_t len, void *arg)
{
    (void)token;
    (void)len;
    app_t *a = arg;
    a->checkpoints++;
}

static void on_gap(const fw_consumer_gap_t *g, void *arg)
{
    app_t *a = arg;
    a->gaps++;
    a->gap = *g;
}

static void on_log(fw_consumer_log_level_t level, const char *message, void *arg)
{
    (void)arg;
    fprintf(stderr, "consumer [%d]: %s\n", (int)level, message);
}

static fw_consumer_t *app_open_credit(app_t *a, const fake_t *f, fw_start_t start, size_t credit)
{
    memset(a, 0, sizeof(*a));
    fw_consumer_options_t o;
    fw_consumer_options_init(&o);
    if (credit != 0)
        o.credit_bytes = credit;
    o.ptail = f->addr;
    o.category = "web";
    o.start = start;
    o.on_record = on_record;
    o.on_checkpoint = on_checkpoint;
    o.on_gap = on_gap;
    o.arg = a;
    o.log_cb = on_log;
    o.log_level = FW_CONSUMER_LOG_DEBUG;
    FWT_ASSERT_OK(fw_consumer_create(&a->c, &o));
    return a->c;
}

static fw_consumer_t *app_open(app_t *a, const fake_t *f, fw_start_t start)
{
    return app_open_credit(a, f, start, 0);
}

/* Polls until the application has n records (fails after 10 s). */
static void app_until(app_t *a, int n)
{
    int64_t deadline = fwt_now_ms() + 10000;
    while (a->n < n) {
        int rc = fw_consumer_poll(a->c, 100);
        if (rc < 0)
            FWT_FAIL("poll: %s: %s", fwt_strerror_hook(rc), fw_consumer_error(a->c));
        if (fwt_now_ms() > deadline)
            FWT_FAIL("%d of %d records after 10 s: %s", a->n, n, fw_consumer_error(a->c));
    }
}

static void expect_values(const app_t *a, const char *const *want, int n)
{
    FWT_ASSERT_INT_EQ(a->n, n);
    for (int i = 0; i < n; i++)
        FWT_ASSERT_STR_EQ(a->values[i], want[i]);
}

/* ---- scripts and tests ----------------------------------------------------------------------- */

/* Block 1 (3 records), then block 2 damaged; after the reconnect, block 2 intact. */
static void script_damaged(fake_t *f, int fd, int conn)
{
    fw_buf_t b1 = FW_BUF_INIT, b2 = FW_BUF_INIT;
    make_block(&b1, 1, 3);
    make_block(&b2, 2, 2);
    read_subscribe(f, fd, conn);
    send_subscribed(f, fd, conn, 1);
    if (conn == 0) {
        send_block(f, fd, conn, 0, 1, FIRST, 0, &b1);
        b2.data[b2.len - 1] ^= 0x20; /* the payload CRC no longer matches */
        send_block(f, fd, conn, 0, 1, FIRST + b1.len, 0, &b2);
    } else {
        send_block(f, fd, conn, 0, 1, FIRST + b1.len, 0, &b2);
    }
    read_credit_until_eof(f, fd, conn);
    fw_buf_free(&b1);
    fw_buf_free(&b2);
}

FWT_TEST(a_damaged_block_is_never_delivered_and_the_consumer_resumes_after_the_last_good_one)
{
    fake_t f;
    fake_start(&f, script_damaged, 2);
    app_t a;
    app_open(&a, &f, FW_START_EARLIEST);
    app_until(&a, 5);
    const char *want[] = {"1.0", "1.1", "1.2", "2.0", "2.1"};
    expect_values(&a, want, 5);
    fw_consumer_stats_t s;
    fw_consumer_stats(a.c, &s);
    FWT_ASSERT_UINT_EQ(s.bad_blocks, 1);
    FWT_ASSERT_UINT_EQ(s.subscriptions, 2);
    FWT_ASSERT_UINT_EQ(s.jumps, 0);
    /* Callbacks may not poll or close. */
    FWT_ASSERT_INT_EQ(a.inner_poll_rc, -EDEADLK);
    FWT_ASSERT_INT_EQ(a.inner_close_rc, -EDEADLK);
    FWT_ASSERT_OK(fw_consumer_close(a.c));
    fake_stop(&f);
    /* The first subscription started at the earliest record; the second right after block 1. */
    FWT_ASSERT_INT_EQ(f.subs[0]->start, FWPB__START_KIND__START_EARLIEST);
    fw_checkpoint_t cp;
    sub_token(&f, 1, &cp);
    FWT_ASSERT_UINT_EQ(cp.count, 1);
    FWT_ASSERT_UINT_EQ(cp.positions[0].segment_id, 1);
    fw_buf_t b1 = FW_BUF_INIT;
    make_block(&b1, 1, 3);
    FWT_ASSERT_UINT_EQ(cp.positions[0].offset, FIRST + b1.len);
    FWT_ASSERT_UINT_EQ(cp.positions[0].record_index, 0);
    fw_buf_free(&b1);
    fw_checkpoint_free(&cp);
    fake_free(&f);
}

/*
 * The first connection sends block 1 (4 records) and closes once the
 * application has stopped after two of them; the second replays block 1
 * whole (as a ptail resuming from an older checkpoint would) and goes on
 * with block 2.
 */
static void script_replay(fake_t *f, int fd, int conn)
{
    fw_buf_t b1 = FW_BUF_INIT, b2 = FW_BUF_INIT;
    make_block(&b1, 1, 4);
    make_block(&b2, 2, 2);
    read_subscribe(f, fd, conn);
    send_subscribed(f, fd, conn, 1);
    send_block(f, fd, conn, 0, 1, FIRST, 0, &b1);
    if (conn == 1)
        send_block(f, fd, conn, 0, 1, FIRST + b1.len, 0, &b2);
    if (conn == 0) {
        /* Wait for the consumer's first credit: it has handled everything, then drop it. */
        fw_frame_t fr;
        fwt_wire_next(fd, 10000, &f->in[conn], &fr);
    } else {
        read_credit_until_eof(f, fd, conn);
    }
    fw_buf_free(&b1);
    fw_buf_free(&b2);
}

FWT_TEST(records_already_delivered_are_not_delivered_again_after_a_resume)
{
    fake_t f;
    fake_start(&f, script_replay, 2);
    app_t a;
    app_open(&a, &f, FW_START_EARLIEST);
    a.stop_at = 2;
    /* The poll ends inside block 1; the rest stays buffered for the next poll. */
    int64_t deadline = fwt_now_ms() + 10000;
    while (a.n < 2 && fwt_now_ms() < deadline)
        FWT_ASSERT_INT_OP(fw_consumer_poll(a.c, 100), >=, 0);
    FWT_ASSERT_INT_EQ(a.n, 2);
    void *token;
    size_t len;
    FWT_ASSERT_OK(fw_consumer_checkpoint(a.c, &token, &len));
    fw_checkpoint_t cp;
    FWT_ASSERT_OK(fw_checkpoint_decode(token, len, &cp));
    FWT_ASSERT_UINT_EQ(cp.positions[0].offset, FIRST);
    FWT_ASSERT_UINT_EQ(cp.positions[0].record_index, 2);
    fw_checkpoint_free(&cp);
    free(token);
    a.stop_at = 0;
    app_until(&a, 6);
    const char *want[] = {"1.0", "1.1", "1.2", "1.3", "2.0", "2.1"};
    expect_values(&a, want, 6);
    fw_consumer_stats_t s;
    fw_consumer_stats(a.c, &s);
    FWT_ASSERT_UINT_EQ(s.records_skipped, 4);
    FWT_ASSERT_UINT_EQ(s.records, 6);
    FWT_ASSERT_OK(fw_consumer_close(a.c));
    fake_stop(&f);
    /* Every byte ptail sent on the second connection was credited back once handled. */
    FWT_ASSERT_UINT_EQ(f.credited[1], f.sent[1]);
    fake_free(&f);
}

/* Checkpoints, a gap to the start of segment 3, then a block that skips ahead unannounced. */
static void script_marks(fake_t *f, int fd, int conn)
{
    fw_buf_t b1 = FW_BUF_INIT, b2 = FW_BUF_INIT, b3 = FW_BUF_INIT;
    make_block(&b1, 1, 2);
    make_block(&b2, 2, 2);
    make_block(&b3, 3, 1);
    read_subscribe(f, fd, conn);
    send_subscribed(f, fd, conn, 2);
    /* Where LATEST put the two buckets. */
    fw_position_t start[] = {{0, 1, 5000, 0}, {1, 0, 0, 0}};
    send_checkpoint(f, fd, conn, start, 2);
    send_block(f, fd, conn, 0, 1, 5000, 0, &b1);
    fw_position_t after[] = {{0, 1, 5000 + b1.len, 0}, {1, 0, 0, 0}};
    send_checkpoint(f, fd, conn, after, 2);
    /* A gap in bucket 0 from there to segment 3's start. */
    Fwpb__Position from = FWPB__POSITION__INIT, to = FWPB__POSITION__INIT;
    from.bucket = to.bucket = 0;
    from.segment_id = 1;
    from.offset = 5000 + b1.len;
    to.segment_id = 3;
    Fwpb__Gap g = FWPB__GAP__INIT;
    g.bucket = 0;
    g.from = &from;
    g.to = &to;
    g.reason = "segment 2 no longer exists (retention?)";
    Fwpb__StreamMessage m = FWPB__STREAM_MESSAGE__INIT;
    m.kind_case = FWPB__STREAM_MESSAGE__KIND_GAP;
    m.gap = &g;
    send_stream(f, fd, conn, &m, NULL, 0);
    send_block(f, fd, conn, 0, 3, FIRST, 0, &b2);
    /* Skips a block of bucket 0 (a ptail fault): delivered, but counted and logged. */
    send_block(f, fd, conn, 0, 3, FIRST + b2.len + 100, 0, &b3);
    read_credit_until_eof(f, fd, conn);
    fw_buf_free(&b1);
    fw_buf_free(&b2);
    fw_buf_free(&b3);
}

FWT_TEST(latest_waits_for_ptail_positions_and_gaps_and_jumps_are_reported)
{
    fake_t f;
    fake_start(&f, script_marks, 1);
    app_t a;
    app_open(&a, &f, FW_START_LATEST);
    void *token;
    size_t len;
    /* Before ptail named where each bucket starts, there is no token to give. */
    FWT_ASSERT_INT_EQ(fw_consumer_checkpoint(a.c, &token, &len), -EAGAIN);
    app_until(&a, 5);
    const char *want[] = {"1.0", "1.1", "2.0", "2.1", "3.0"};
    expect_values(&a, want, 5);
    FWT_ASSERT_INT_EQ(a.checkpoints, 2);
    FWT_ASSERT_INT_EQ(a.gaps, 1);
    FWT_ASSERT_UINT_EQ(a.gap.bucket, 0);
    FWT_ASSERT_UINT_EQ(a.gap.to.segment_id, 3);
    fw_consumer_stats_t s;
    fw_consumer_stats(a.c, &s);
    FWT_ASSERT_UINT_EQ(s.jumps, 1);
    FWT_ASSERT_UINT_EQ(s.gaps, 1);
    /* Now the token names both buckets: bucket 1 where ptail put it. */
    FWT_ASSERT_OK(fw_consumer_checkpoint(a.c, &token, &len));
    fw_checkpoint_t cp;
    FWT_ASSERT_OK(fw_checkpoint_decode(token, len, &cp));
    FWT_ASSERT_UINT_EQ(cp.count, 2);
    FWT_ASSERT_UINT_EQ(cp.positions[0].segment_id, 3);
    FWT_ASSERT_UINT_EQ(cp.positions[1].segment_id, 0);
    fw_checkpoint_free(&cp);
    /* Text form round trip. */
    char *text;
    FWT_ASSERT_OK(fw_consumer_token_to_text(token, len, &text));
    void *back;
    size_t back_len;
    FWT_ASSERT_OK(fw_consumer_token_from_text(text, &back, &back_len));
    FWT_ASSERT_UINT_EQ(back_len, len);
    FWT_ASSERT_MEM_EQ(back, token, len);
    FWT_ASSERT_INT_EQ(fw_consumer_token_from_text("not a token", &back, &back_len) < 0, 1);
    free(back);
    free(text);
    free(token);
    FWT_ASSERT_OK(fw_consumer_close(a.c));
    fake_stop(&f);
    FWT_ASSERT_INT_EQ(f.subs[0]->start, FWPB__START_KIND__START_LATEST);
    fake_free(&f);
}

static void script_refuse(fake_t *f, int fd, int conn)
{
    read_subscribe(f, fd, conn);
    if (conn == 0)
        send_error(fd, FWPB__STATUS__STATUS_SHUTTING_DOWN, "stopping");
    else
        send_error(fd, FWPB__STATUS__STATUS_UNKNOWN_CATEGORY, "no category web");
}

FWT_TEST(an_error_retrying_cannot_fix_is_returned_by_every_poll)
{
    fake_t f;
    fake_start(&f, script_refuse, 2);
    app_t a;
    app_open(&a, &f, FW_START_EARLIEST);
    int rc = 0;
    int64_t deadline = fwt_now_ms() + 10000;
    while (rc == 0 && fwt_now_ms() < deadline)
        rc = fw_consumer_poll(a.c, 100);
    /* SHUTTING_DOWN was retried; UNKNOWN_CATEGORY is final. */
    FWT_ASSERT_INT_EQ(rc, FW_EUNKNOWN_CATEGORY);
    FWT_ASSERT_INT_EQ(fw_consumer_poll(a.c, 0), FW_EUNKNOWN_CATEGORY);
    FWT_ASSERT(strstr(fw_consumer_error(a.c), "no category web") != NULL);
    FWT_ASSERT_OK(fw_consumer_close(a.c));
    fake_stop(&f);
    FWT_ASSERT_INT_EQ(f.conns, 2);
    fake_free(&f);
}

/* A block, then a reset (SO_LINGER 0) while the consumer is about to grant credit for it. */
static void script_reset(fake_t *f, int fd, int conn)
{
    fw_buf_t b = FW_BUF_INIT;
    make_block(&b, 1, 3);
    read_subscribe(f, fd, conn);
    send_subscribed(f, fd, conn, 1);
    send_block(f, fd, conn, 0, 1, FIRST, 0, &b);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    fw_buf_free(&b);
}

/*
 * Writing to a connection ptail reset raises SIGPIPE, whose default action
 * ends the process: the consumer must keep it from the application.
 */
FWT_TEST(a_reset_connection_does_not_kill_the_application)
{
    signal(SIGPIPE, SIG_DFL);
    fake_t f;
    fake_start(&f, script_reset, 6);
    app_t a;
    app_open_credit(&a, &f, FW_START_EARLIEST, 64); /* a CREDIT after every frame */
    int64_t deadline = fwt_now_ms() + 20000;
    fw_consumer_stats_t s;
    do {
        FWT_ASSERT_INT_OP(fw_consumer_poll(a.c, 50), >=, 0);
        fw_consumer_stats(a.c, &s);
    } while (s.subscriptions < 6 && fwt_now_ms() < deadline);
    FWT_ASSERT_INT_EQ(s.subscriptions, 6);
    const char *want[] = {"1.0", "1.1", "1.2"};
    expect_values(&a, want, 3);
    FWT_ASSERT_OK(fw_consumer_close(a.c));
    fake_stop(&f);
    fake_free(&f);
}

static void script_none(fake_t *f, int fd, int conn)
{
    (void)f;
    (void)fd;
    (void)conn;
}

FWT_TEST(create_checks_its_options_and_wakeup_ends_a_poll)
{
    fake_t f;
    fake_start(&f, script_none, 0);
    fw_consumer_options_t o;
    fw_consumer_options_init(&o);
    fw_consumer_t *c = NULL;
    app_t a;
    memset(&a, 0, sizeof(a));
    o.ptail = f.addr;
    o.on_record = on_record;
    o.arg = &a;
    FWT_ASSERT_INT_EQ(fw_consumer_create(&c, &o), -EINVAL); /* no category */
    o.category = "no/such";
    FWT_ASSERT_INT_EQ(fw_consumer_create(&c, &o), FW_EBAD_CATEGORY);
    o.category = "web";
    uint32_t buckets[] = {1, 70000};
    o.buckets = buckets;
    o.nbuckets = 2;
    FWT_ASSERT_INT_EQ(fw_consumer_create(&c, &o), -EINVAL);
    o.buckets = NULL;
    o.nbuckets = 0;
    o.ptail = "nowhere";
    FWT_ASSERT_INT_EQ(fw_consumer_create(&c, &o), -EINVAL);
    o.ptail = f.addr;
    o.credit_bytes = 0;
    FWT_ASSERT_INT_EQ(fw_consumer_create(&c, &o), -EINVAL);
    o.credit_bytes = 1 << 20;
    /* A token of another category. */
    fw_position_t p = {0, 1, fw_seg_first_block(strlen("other")), 0};
    fw_checkpoint_t cp = {.count = 1, .positions = &p};
    snprintf(cp.category, sizeof(cp.category), "other");
    fw_buf_t token = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_checkpoint_encode(&cp, &token));
    o.start = FW_START_CHECKPOINT;
    o.start_token = token.data;
    o.start_token_len = token.len;
    FWT_ASSERT_INT_EQ(fw_consumer_create(&c, &o), FW_ETOKEN_BAD);
    o.start_token_len = token.len - 1;
    FWT_ASSERT_INT_OP(fw_consumer_create(&c, &o), <, 0);
    fw_buf_free(&token);
    FWT_ASSERT(c == NULL);

    /* A valid consumer; a wakeup from elsewhere ends its poll before the timeout. */
    o.start = FW_START_EARLIEST;
    o.ptail = "127.0.0.1:1 127.0.0.1:2,127.0.0.1:3"; /* spaces separate addresses too */
    FWT_ASSERT_OK(fw_consumer_create(&c, &o));
    FWT_ASSERT_OK(fw_consumer_close(c));
    o.ptail = f.addr;
    FWT_ASSERT_OK(fw_consumer_create(&c, &o));
    fw_consumer_wakeup(c);
    int64_t t0 = fwt_now_ms();
    FWT_ASSERT_INT_EQ(fw_consumer_poll(c, 5000), 0);
    FWT_ASSERT_INT_OP(fwt_now_ms() - t0, <, 4000);
    FWT_ASSERT_INT_EQ(fw_consumer_poll(c, 0), 0);
    FWT_ASSERT_OK(fw_consumer_close(c));
    FWT_ASSERT_OK(fw_consumer_close(NULL));
    fake_stop(&f);
    fake_free(&f);
}

/*
 * Frames a broken or hostile ptail could send, one per connection, each of
 * which must cost a reconnect and deliver nothing: a block in segment 0
 * ("nothing consumed" in a token), a block whose end wraps past 2^64, a
 * block inside the segment header, a gap that ends in segment 0.
 * The last connection is sound.
 */
#define HOSTILE_CONNS 5
static void script_hostile(fake_t *f, int fd, int conn)
{
    fw_buf_t b = FW_BUF_INIT;
    make_block(&b, 1, 2);
    read_subscribe(f, fd, conn);
    send_subscribed(f, fd, conn, 1);
    switch (conn) {
    case 0:
        send_block(f, fd, conn, 0, 0, FIRST, 0, &b);
        break;
    case 1:
        send_block(f, fd, conn, 0, 1, UINT64_MAX - 10, 0, &b);
        break;
    case 2:
        send_block(f, fd, conn, 0, 1, 10, 0, &b);
        break;
    case 3: {
        Fwpb__Position from = FWPB__POSITION__INIT, to = FWPB__POSITION__INIT;
        from.segment_id = 1;
        from.offset = FIRST;
        Fwpb__Gap g = FWPB__GAP__INIT;
        g.from = &from;
        g.to = &to; /* segment 0: nowhere */
        g.reason = "no end";
        Fwpb__StreamMessage m = FWPB__STREAM_MESSAGE__INIT;
        m.kind_case = FWPB__STREAM_MESSAGE__KIND_GAP;
        m.gap = &g;
        send_stream(f, fd, conn, &m, NULL, 0);
        break;
    }
    default:
        send_block(f, fd, conn, 0, 1, FIRST, 0, &b);
        break;
    }
    read_credit_until_eof(f, fd, conn);
    fw_buf_free(&b);
}

FWT_TEST(positions_ptail_cannot_mean_are_refused_and_cost_a_reconnect)
{
    fake_t f;
    fake_start(&f, script_hostile, HOSTILE_CONNS);
    app_t a;
    app_open(&a, &f, FW_START_EARLIEST);
    app_until(&a, 2);
    const char *want[] = {"1.0", "1.1"};
    expect_values(&a, want, 2);
    fw_consumer_stats_t s;
    fw_consumer_stats(a.c, &s);
    FWT_ASSERT_UINT_EQ(s.subscriptions, HOSTILE_CONNS);
    FWT_ASSERT_UINT_EQ(s.gaps, 0);
    /* Nothing was delivered before the sound connection: every resume started from scratch. */
    void *token;
    size_t len;
    FWT_ASSERT_OK(fw_consumer_checkpoint(a.c, &token, &len));
    fw_checkpoint_t cp;
    FWT_ASSERT_OK(fw_checkpoint_decode(token, len, &cp));
    FWT_ASSERT_UINT_EQ(cp.count, 1);
    FWT_ASSERT_UINT_EQ(cp.positions[0].segment_id, 1);
    fw_buf_t b = FW_BUF_INIT;
    make_block(&b, 1, 2);
    FWT_ASSERT_UINT_EQ(cp.positions[0].offset, FIRST + b.len);
    fw_buf_free(&b);
    fw_checkpoint_free(&cp);
    free(token);
    FWT_ASSERT_OK(fw_consumer_close(a.c));
    fake_stop(&f);
    for (int i = 0; i < HOSTILE_CONNS; i++)
        FWT_ASSERT_INT_EQ(f.subs[i]->start, FWPB__START_KIND__START_EARLIEST);
    fake_free(&f);
}

/*
 * The loop's clock stands still between polls: a poll that follows a busy
 * stretch of the application must still wait its whole timeout.
 */
FWT_TEST(a_poll_after_the_application_was_busy_waits_its_whole_timeout)
{
    fake_t f;
    fake_start(&f, script_none, 0); /* accepts nothing: no answer ends the poll */
    app_t a;
    app_open(&a, &f, FW_START_EARLIEST);
    FWT_ASSERT_INT_EQ(fw_consumer_poll(a.c, 0), 0);
    usleep(1500 * 1000); /* the application at work, not a wait for a condition */
    int64_t t0 = fwt_now_ms();
    FWT_ASSERT_INT_EQ(fw_consumer_poll(a.c, 500), 0);
    int64_t took = fwt_now_ms() - t0;
    FWT_ASSERT_INT_OP(took, >=, 450);
    FWT_ASSERT_INT_OP(took, <, 3000);
    FWT_ASSERT_OK(fw_consumer_close(a.c));
    fake_stop(&f);
    fake_free(&f);
}

/* ---- the audit's stretches ------------------------------------------------------------------- */

/*
 * A consumer with the audit on (its reports go to a producer that never
 * reaches a writer: only the stretches it keeps matter here), starting from
 * token (NULL: at the latest records).
 */
static fw_producer_t *audit_open(app_t *a, const fake_t *f, const fw_buf_t *token)
{
    memset(a, 0, sizeof(*a));
    fw_producer_options_t po;
    fw_producer_options_init(&po);
    po.bootstrap = "127.0.0.1:1";
    po.audit_category = NULL;
    fw_producer_t *p = NULL;
    FWT_ASSERT_OK(fw_producer_create(&p, &po));
    fw_consumer_options_t o;
    fw_consumer_options_init(&o);
    o.ptail = f->addr;
    o.category = "web";
    o.start = token != NULL ? FW_START_CHECKPOINT : FW_START_LATEST;
    o.start_token = token != NULL ? token->data : NULL;
    o.start_token_len = token != NULL ? token->len : 0;
    o.on_record = on_record;
    o.on_gap = on_gap;
    o.arg = a;
    o.log_cb = on_log;
    o.name = "audited";
    o.audit_producer = p;
    o.audit_interval_ms = 3600000; /* no report while the test looks */
    FWT_ASSERT_OK(fw_consumer_create(&a->c, &o));
    return p;
}

/* The first position of the stretch the consumer is counting in bucket 0. */
static fw_position_t open_stretch_first(const app_t *a)
{
    const fw_caudit_t *au = &a->c->audit;
    for (size_t i = 0; i < au->nbuckets; i++)
        if (au->buckets[i].bucket == 0 && au->buckets[i].open)
            return au->buckets[i].first;
    FWT_FAIL("no stretch open in bucket 0");
    return (fw_position_t){0};
}

/* Resumed at record 1 of block 1, ptail starts at record 2 (a fault at the resume point). */
static void script_skip_at_resume(fake_t *f, int fd, int conn)
{
    fw_buf_t b1 = FW_BUF_INIT;
    make_block(&b1, 1, 3);
    read_subscribe(f, fd, conn);
    send_subscribed(f, fd, conn, 1);
    send_block(f, fd, conn, 0, 1, FIRST, 2, &b1);
    read_credit_until_eof(f, fd, conn);
    fw_buf_free(&b1);
}

/*
 * Records ptail skips right where a consumer resumes lie inside its first
 * stretch, so the audit counts them as stored but not consumed (a stretch
 * that began at the first record delivered would hide them).
 */
FWT_TEST(the_audit_stretch_of_a_resumed_consumer_starts_at_its_token)
{
    fake_t f;
    fake_start(&f, script_skip_at_resume, 1);
    fw_position_t at = {0, 1, FIRST, 1};
    fw_checkpoint_t cp = {.count = 1, .positions = &at};
    snprintf(cp.category, sizeof(cp.category), "web");
    fw_buf_t token = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_checkpoint_encode(&cp, &token));
    app_t a;
    fw_producer_t *p = audit_open(&a, &f, &token);
    app_until(&a, 1);
    const char *want[] = {"1.2"};
    expect_values(&a, want, 1);
    fw_position_t first = open_stretch_first(&a);
    FWT_ASSERT_UINT_EQ(first.segment_id, 1);
    FWT_ASSERT_UINT_EQ(first.offset, FIRST);
    FWT_ASSERT_UINT_EQ(first.record_index, 1);
    FWT_ASSERT_OK(fw_consumer_close(a.c));
    fw_producer_close(p, 0);
    fake_stop(&f);
    fake_free(&f);
    fw_buf_free(&token);
}

/* Latest puts bucket 0 at segment 1; a gap to segment 3; its first block skipped. */
static void script_skip_after_gap(fake_t *f, int fd, int conn)
{
    fw_buf_t b1 = FW_BUF_INIT, b2 = FW_BUF_INIT;
    make_block(&b1, 1, 2);
    make_block(&b2, 2, 2);
    read_subscribe(f, fd, conn);
    send_subscribed(f, fd, conn, 1);
    fw_position_t start = {0, 1, FIRST, 0};
    send_checkpoint(f, fd, conn, &start, 1);
    send_block(f, fd, conn, 0, 1, FIRST, 0, &b1);
    Fwpb__Position from = FWPB__POSITION__INIT, to = FWPB__POSITION__INIT;
    from.segment_id = 1;
    from.offset = FIRST + b1.len;
    to.segment_id = 3;
    Fwpb__Gap g = FWPB__GAP__INIT;
    g.bucket = 0;
    g.from = &from;
    g.to = &to;
    g.reason = "segment 2 no longer exists (retention?)";
    Fwpb__StreamMessage m = FWPB__STREAM_MESSAGE__INIT;
    m.kind_case = FWPB__STREAM_MESSAGE__KIND_GAP;
    m.gap = &g;
    send_stream(f, fd, conn, &m, NULL, 0);
    /* Segment 3's first block (at FIRST) never comes: a fault right after the gap. */
    send_block(f, fd, conn, 0, 3, FIRST + 100, 0, &b2);
    read_credit_until_eof(f, fd, conn);
    fw_buf_free(&b1);
    fw_buf_free(&b2);
}

FWT_TEST(the_audit_stretch_after_a_gap_starts_at_the_gaps_end)
{
    fake_t f;
    fake_start(&f, script_skip_after_gap, 1);
    app_t a;
    fw_producer_t *p = audit_open(&a, &f, NULL);
    app_until(&a, 4);
    FWT_ASSERT_INT_EQ(a.gaps, 1);
    fw_position_t first = open_stretch_first(&a);
    FWT_ASSERT_UINT_EQ(first.segment_id, 3);
    FWT_ASSERT_UINT_EQ(first.offset, 0);
    FWT_ASSERT_UINT_EQ(first.record_index, 0);
    /* The stretch before the gap began where latest placed the bucket. */
    FWT_ASSERT_UINT_EQ(a.c->audit.nclosed, 1);
    FWT_ASSERT_UINT_EQ(a.c->audit.closed[0].first_segment, 1);
    FWT_ASSERT_UINT_EQ(a.c->audit.closed[0].first_offset, FIRST);
    FWT_ASSERT_OK(fw_consumer_close(a.c));
    fw_producer_close(p, 0);
    fake_stop(&f);
    fake_free(&f);
}
