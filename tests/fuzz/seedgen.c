/*
 * Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/): a few
 * valid inputs of each format, made with freeway's own encoders. Run by
 * `make fuzz-seeds`; the output is committed so a fresh clone can fuzz.
 */
#include "block.h"
#include "checkpoint.h"
#include "error.h"
#include "frame.h"
#include "fsutil.h"
#include "metrics.h"
#include "metrics_text.h"
#include "proto/produce.pb-c.h"
#include "proto/stream.pb-c.h"
#include "scribe_thrift.h"
#include "segment.h"
#include "version.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *root;

static void write_seed(const char *target, const char *name, const void *a, size_t alen,
                       const void *b, size_t blen)
{
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/%s", root, target);
    if (fw_mkdir_p(dir) < 0) {
        perror(dir);
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(a, 1, alen, f) != alen || (blen && fwrite(b, 1, blen, f) != blen)) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

static void check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "seedgen: %s: %s\n", what, fw_strerror(rc));
        exit(1);
    }
}

/* Builds a block of n log-like records into out. */
static void make_block(fw_buf_t *out, int n, fw_codec_t codec, uint64_t seq)
{
    fw_block_builder_t b;
    fw_block_builder_init(&b, 0);
    for (int i = 0; i < n; i++) {
        char line[128], key[16];
        int len = snprintf(line, sizeof(line), "GET /item/%d 200 %dms user=%d", i, i % 17, i % 5);
        snprintf(key, sizeof(key), "user%d", i % 5);
        check(
            fw_block_builder_add(&b, 1700000000000 + i, key, strlen(key), i % 2, line, (size_t)len),
            "add");
    }
    const uint8_t *blk;
    size_t len;
    check(fw_block_builder_finish(&b, codec, 0x1234, seq, &blk, &len), "finish");
    fw_buf_reset(out);
    check(fw_buf_append(out, blk, len), "append");
    fw_block_builder_free(&b);
}

static void seeds_block(void)
{
    fw_buf_t blk = FW_BUF_INIT;
    const uint8_t plain = 0, resign = 1;
    make_block(&blk, 3, FW_CODEC_NONE, 1);
    write_seed("fuzz_block", "raw3", &plain, 1, blk.data, blk.len);
    write_seed("fuzz_block", "raw3-resign", &resign, 1, blk.data, blk.len);
    make_block(&blk, 40, FW_CODEC_LZ4, 2);
    write_seed("fuzz_block", "lz4-40", &plain, 1, blk.data, blk.len);
    write_seed("fuzz_block", "lz4-40-resign", &resign, 1, blk.data, blk.len);
    uint8_t seal[FW_BLOCK_HEADER_SIZE + FW_SEAL_PAYLOAD_SIZE];
    fw_seal_t s = {2, 43, 1000};
    fw_seal_encode(seal, &s, 1700000000000);
    write_seed("fuzz_block", "seal", &plain, 1, seal, sizeof(seal));
    fw_buf_free(&blk);
}

static void seeds_frame(void)
{
    fw_buf_t blk = FW_BUF_INIT, out = FW_BUF_INIT;
    make_block(&blk, 5, FW_CODEC_LZ4, 1);
    Fwpb__BlockRef ref = FWPB__BLOCK_REF__INIT;
    ref.category = "web_clicks";
    ref.bucket = 2;
    ref.length = (uint32_t)blk.len;
    Fwpb__BlockRef *refs[] = {&ref};
    Fwpb__ProduceRequest req = FWPB__PRODUCE_REQUEST__INIT;
    req.request_id = 1;
    req.n_blocks = 1;
    req.blocks = refs;
    check(fw_frame_append(&out, FW_FRAME_PRODUCE_REQ, &req.base, blk.data, blk.len, 0), "frame");
    write_seed("fuzz_frame", "produce", out.data, out.len, NULL, 0);

    fw_buf_reset(&out);
    uint32_t buckets[] = {0, 1, 5};
    Fwpb__SubscribeRequest sub = FWPB__SUBSCRIBE_REQUEST__INIT;
    sub.category = "web_clicks";
    sub.n_buckets = 3;
    sub.buckets = buckets;
    sub.start = FWPB__START_KIND__START_TIMESTAMP;
    sub.has_timestamp_ms = 1;
    sub.timestamp_ms = 1700000000000;
    check(fw_frame_append(&out, FW_FRAME_SUBSCRIBE, &sub.base, NULL, 0, 0), "frame");
    Fwpb__Credit credit = FWPB__CREDIT__INIT;
    credit.bytes = 1 << 20;
    check(fw_frame_append(&out, FW_FRAME_CREDIT, &credit.base, NULL, 0, 0), "frame");
    write_seed("fuzz_frame", "subscribe-credit", out.data, out.len, NULL, 0);

    fw_buf_reset(&out);
    Fwpb__Records recs = FWPB__RECORDS__INIT;
    recs.bucket = 2;
    recs.segment_id = 7;
    recs.offset = 100;
    Fwpb__StreamMessage sm = FWPB__STREAM_MESSAGE__INIT;
    sm.kind_case = FWPB__STREAM_MESSAGE__KIND_RECORDS;
    sm.records = &recs;
    check(fw_frame_append(&out, FW_FRAME_STREAM, &sm.base, blk.data, blk.len, 0), "frame");
    write_seed("fuzz_frame", "stream-records", out.data, out.len, NULL, 0);
    fw_buf_free(&blk);
    fw_buf_free(&out);
}

static void seeds_segment(const char *tmpdir)
{
    fw_seg_header_t h = {.segment_id = 42, .epoch = 3, .created_ms = 1700000000000, .bucket = 1};
    strcpy(h.category, "web_clicks");
    fw_buf_t blk = FW_BUF_INIT;
    for (int sealed = 0; sealed < 2; sealed++) {
        fw_segw_t *w;
        char path[600];
        h.segment_id = 42 + (uint64_t)sealed;
        check(fw_segw_create(tmpdir, &h, &w), "create");
        snprintf(path, sizeof(path), "%s", w->path);
        for (int i = 0; i < 3; i++) {
            make_block(&blk, 2 + i * 7, i == 1 ? FW_CODEC_LZ4 : FW_CODEC_NONE, (uint64_t)i + 1);
            struct iovec iov = {blk.data, blk.len};
            uint64_t off;
            check(fw_segw_append(w, &iov, 1, 1, 2 + (uint32_t)i * 7, &off), "append");
        }
        if (sealed)
            check(fw_segw_seal(w, 1700000001000), "seal");
        fw_segw_close(w);
        int fd = open(path, O_RDONLY);
        struct stat st;
        fstat(fd, &st);
        uint8_t *data = malloc((size_t)st.st_size);
        if (read(fd, data, (size_t)st.st_size) != st.st_size)
            exit(1);
        close(fd);
        unlink(path);
        write_seed("fuzz_segment", sealed ? "sealed" : "open", data, (size_t)st.st_size, NULL, 0);
        free(data);
    }
    fw_buf_free(&blk);
}

static void seeds_checkpoint(void)
{
    fw_position_t pos[3] = {{0, 0, 0, 0}, {1, 42, 4096, 3}, {7, 9, 55, 0}};
    fw_checkpoint_t cp = {"web_clicks", 3, pos};
    fw_buf_t bin = FW_BUF_INIT, text = FW_BUF_INIT;
    check(fw_checkpoint_encode(&cp, &bin), "token");
    const uint8_t plain = 0, resign = 1;
    write_seed("fuzz_checkpoint", "three", &plain, 1, bin.data, bin.len);
    write_seed("fuzz_checkpoint", "three-resign", &resign, 1, bin.data, bin.len);
    check(fw_checkpoint_to_text(&cp, &text), "text");
    write_seed("fuzz_checkpoint", "three-text", &plain, 1, text.data, text.len);
    fw_buf_free(&bin);
    fw_buf_free(&text);
}

/* ---- fuzz_consumer: two option bytes (see fuzz_consumer.c), then ptail's frames ---------- */

static void stream_frame(fw_buf_t *out, Fwpb__StreamMessage *sm, const fw_buf_t *body)
{
    check(fw_frame_append(out, FW_FRAME_STREAM, &sm->base, body ? body->data : NULL,
                          body ? body->len : 0, 0),
          "frame");
}

static void put_subscribed(fw_buf_t *out, const uint32_t *buckets, size_t n)
{
    Fwpb__Subscribed s = FWPB__SUBSCRIBED__INIT;
    s.bucket_count = 8;
    s.n_buckets = n;
    s.buckets = (uint32_t *)buckets;
    Fwpb__StreamMessage sm = FWPB__STREAM_MESSAGE__INIT;
    sm.kind_case = FWPB__STREAM_MESSAGE__KIND_SUBSCRIBED;
    sm.subscribed = &s;
    stream_frame(out, &sm, NULL);
}

static void put_records(fw_buf_t *out, uint32_t bucket, uint64_t seg, uint64_t offset,
                        uint32_t first, const fw_buf_t *blk)
{
    Fwpb__Records r = FWPB__RECORDS__INIT;
    r.bucket = bucket;
    r.segment_id = seg;
    r.offset = offset;
    r.has_first_record = first != 0;
    r.first_record = first;
    Fwpb__StreamMessage sm = FWPB__STREAM_MESSAGE__INIT;
    sm.kind_case = FWPB__STREAM_MESSAGE__KIND_RECORDS;
    sm.records = &r;
    stream_frame(out, &sm, blk);
}

static void put_checkpoint(fw_buf_t *out, fw_position_t *pos, uint32_t n)
{
    fw_checkpoint_t cp = {"web_clicks", n, pos};
    fw_buf_t tok = FW_BUF_INIT;
    check(fw_checkpoint_encode(&cp, &tok), "token");
    Fwpb__Checkpoint m = FWPB__CHECKPOINT__INIT;
    m.token.data = tok.data;
    m.token.len = tok.len;
    Fwpb__StreamMessage sm = FWPB__STREAM_MESSAGE__INIT;
    sm.kind_case = FWPB__STREAM_MESSAGE__KIND_CHECKPOINT;
    sm.checkpoint = &m;
    stream_frame(out, &sm, NULL);
    fw_buf_free(&tok);
}

static void put_gap(fw_buf_t *out, uint32_t bucket, uint64_t from_seg, uint64_t from_off,
                    uint64_t to_seg, uint64_t to_off)
{
    Fwpb__Position from = FWPB__POSITION__INIT, to = FWPB__POSITION__INIT;
    from.bucket = to.bucket = bucket;
    from.segment_id = from_seg;
    from.offset = from_off;
    to.segment_id = to_seg;
    to.offset = to_off;
    Fwpb__Gap g = FWPB__GAP__INIT;
    g.bucket = bucket;
    g.from = &from;
    g.to = &to;
    g.reason = "deleted by retention";
    Fwpb__StreamMessage sm = FWPB__STREAM_MESSAGE__INIT;
    sm.kind_case = FWPB__STREAM_MESSAGE__KIND_GAP;
    sm.gap = &g;
    stream_frame(out, &sm, NULL);
}

/* An error: in a StreamMessage (in_stream) or as an ERROR frame of its own. */
static void put_error(fw_buf_t *out, Fwpb__Status status, const char *message, int in_stream)
{
    Fwpb__ErrorReply e = FWPB__ERROR_REPLY__INIT;
    e.status = status;
    e.message = (char *)message;
    if (!in_stream) {
        check(fw_frame_append(out, FW_FRAME_ERROR, &e.base, NULL, 0, 0), "frame");
        return;
    }
    Fwpb__StreamMessage sm = FWPB__STREAM_MESSAGE__INIT;
    sm.kind_case = FWPB__STREAM_MESSAGE__KIND_ERROR;
    sm.error = &e;
    stream_frame(out, &sm, NULL);
}

/* Option byte 0 of fuzz_consumer: start kind, callbacks, re-signing, break every n records. */
enum { START_EARLIEST = 0, START_LATEST = 1, START_CHECKPOINT = 2, START_TIMESTAMP = 3 };
#define OPT(start, cp_cb, gap_cb, resign, brk)                                                     \
    ((start) | (cp_cb) << 2 | (gap_cb) << 3 | (resign) << 4 | (brk) << 5)

static void write_consumer(const char *name, uint8_t opt, uint8_t mask, const fw_buf_t *frames)
{
    uint8_t hdr[2] = {opt, mask};
    write_seed("fuzz_consumer", name, hdr, 2, frames->data, frames->len);
}

static void seeds_consumer(void)
{
    const uint64_t first = fw_seg_first_block(strlen("web_clicks"));
    const uint32_t all4[] = {0, 1, 2, 3}, two[] = {1, 2};
    fw_buf_t lz = FW_BUF_INIT, raw = FW_BUF_INIT, out = FW_BUF_INIT;
    make_block(&lz, 40, FW_CODEC_LZ4, 1);
    make_block(&raw, 3, FW_CODEC_NONE, 2);

    /* A whole session: records in two buckets, a checkpoint after them, a gap. */
    put_subscribed(&out, all4, 4);
    put_records(&out, 1, 5, first, 0, &lz);
    put_records(&out, 2, 5, first, 0, &raw);
    put_records(&out, 2, 5, first + raw.len, 0, &raw);
    fw_position_t pos[] = {{0, 0, 0, 0}, {1, 5, first + lz.len, 0}, {2, 5, first + 2 * raw.len, 0}};
    put_checkpoint(&out, pos, 3);
    put_gap(&out, 3, 0, 0, 7, 0);
    write_consumer("session", OPT(START_EARLIEST, 1, 1, 1, 0), 0, &out);

    /* Polls that end inside a block (a break every 3 records) and resume in it. */
    fw_buf_reset(&out);
    put_subscribed(&out, two, 2);
    put_records(&out, 1, 9, first, 0, &lz);
    put_checkpoint(&out, pos + 1, 2);
    write_consumer("latest-break", OPT(START_LATEST, 1, 0, 0, 3), 0x06, &out);

    /* From a start token (bucket 1 at segment 3, record 1 of a block): replays skipped, a bad gap.
     */
    fw_buf_reset(&out);
    put_subscribed(&out, all4, 4);
    put_records(&out, 1, 3, first + 100, 0, &raw);
    put_records(&out, 1, 3, first + 100, 2, &raw);
    put_records(&out, 1, 3, first + 100 + raw.len, 0, &raw);
    put_gap(&out, 2, 3, first, 0, 0); /* refused: a gap must end in a real segment */
    write_consumer("checkpoint-start", OPT(START_CHECKPOINT, 1, 1, 1, 0), 0x0f, &out);

    /* A retryable error, a new connection that replays, then a fatal ERROR frame. */
    fw_buf_reset(&out);
    put_subscribed(&out, NULL, 0);
    put_records(&out, 0, 2, first, 0, &raw);
    put_error(&out, FWPB__STATUS__STATUS_SHUTTING_DOWN, "ptail is stopping", 1);
    /* (the harness answers the new connection's SUBSCRIBE with a Subscribed) */
    put_records(&out, 0, 2, first, 0, &raw);
    put_records(&out, 0, 2, first + raw.len, 1, &raw);
    put_error(&out, FWPB__STATUS__STATUS_UNKNOWN_CATEGORY, "no such category", 0);
    write_consumer("error-reconnect", OPT(START_TIMESTAMP, 0, 0, 0, 0), 0, &out);

    fw_buf_free(&lz);
    fw_buf_free(&raw);
    fw_buf_free(&out);
}

/* ---- fuzz_metrics_text: what our daemons' /metrics pages look like ---------------------- */

static void write_metrics(const char *name, fw_metrics_t *reg)
{
    fw_buf_t out = FW_BUF_INIT;
    check(fw_metrics_render(reg, &out), "render");
    write_seed("fuzz_metrics_text", name, out.data, out.len, NULL, 0);
    fw_buf_free(&out);
}

static double read_seed_value(void *arg)
{
    return *(double *)arg;
}

static void seeds_metrics_text(void)
{
    static const double fsync_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                          0.01,   0.025,   0.05,   0.1,   0.25,   1.0};
    static double inflight = 1048576;
    fw_metrics_t *reg = fw_metrics_create();
    if (reg == NULL)
        exit(1);
    /* A calligraphus: a histogram, gauges, per-category counters, log counters. */
    fw_metric_histogram_t *h;
    check(fw_metrics_histogram(reg, &h, "freeway_calligraphus_fsync_seconds",
                               "Latency of each group-commit fdatasync.", fsync_bounds,
                               sizeof(fsync_bounds) / sizeof(fsync_bounds[0]), NULL),
          "histogram");
    for (int i = 0; i < 50; i++)
        fw_metric_observe(h, 0.00007 * (i % 13) + 0.0009 * (i % 3));
    fw_metric_gauge_t *g;
    check(fw_metrics_gauge(reg, &g, "freeway_calligraphus_connections", "Open connections.", NULL),
          "gauge");
    fw_metric_set(g, 12);
    check(fw_metrics_gauge_fn(reg, "freeway_calligraphus_inflight_bytes",
                              "Block bytes received and not yet answered.", read_seed_value,
                              &inflight, NULL),
          "gauge_fn");
    const char *categories[] = {"web_clicks", "ad_impressions", "caf\xc3\xa9"};
    for (int i = 0; i < 3; i++) {
        fw_metric_counter_t *c;
        check(fw_metrics_counter(reg, &c, "freeway_calligraphus_records_received_total",
                                 "Records received from producers.", "category", categories[i],
                                 NULL),
              "counter");
        fw_metric_add(c, 1000003ULL * (uint64_t)(i + 1));
    }
    check(fw_metrics_add_process(reg, "calligraphus", FW_VERSION_STRING), "process series");
    write_metrics("calligraphus", reg);
    fw_metrics_destroy(reg);

    /* What needs escaping, and values that are hard to write. */
    reg = fw_metrics_create();
    if (reg == NULL)
        exit(1);
    static const double values[] = {NAN, INFINITY, -INFINITY, -0.0, 0.1, 1e21, 5e-324, 1.0 / 3};
    const char *paths[] = {"C:\\dir \"x\"\nend", "\xf0\x9f\x9a\x80", "", "{a=\"b\"} 1 # \\n"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char idx[8];
        snprintf(idx, sizeof(idx), "%zu", i);
        check(fw_metrics_gauge(reg, &g, "freeway_copier_lag_seconds",
                               "Age of the \"oldest\" block\nnot yet copied (C:\\).", "destination",
                               "hdfs", "bucket", idx, "path", paths[i % 4], NULL),
              "gauge");
        fw_metric_set(g, values[i]);
    }
    static const double bounds[] = {-1, 0, 0.5};
    check(fw_metrics_histogram(reg, &h, "freeway_copier_delay_seconds", "Delay.", bounds, 3,
                               "destination", "a\\b", NULL),
          "histogram");
    fw_metric_observe(h, -2);
    fw_metric_observe(h, NAN);
    write_metrics("escapes", reg);

    /* The same page with CRLF line ends, timestamps and a comment of our own. */
    fw_buf_t out = FW_BUF_INIT, crlf = FW_BUF_INIT;
    check(fw_metrics_render(reg, &out), "render");
    check(fw_buf_append(&crlf, "# scraped by hand\r\n\r\n", 21), "append");
    for (size_t at = 0; at < out.len;) {
        const char *line = (const char *)out.data + at;
        size_t n = (size_t)((const char *)memchr(line, '\n', out.len - at) - line);
        check(fw_buf_append(&crlf, line, n), "append");
        if (line[0] != '#')
            check(fw_buf_append(&crlf, " 1700000000000", 14), "append");
        check(fw_buf_append(&crlf, "\r\n", 2), "append");
        at += n + 1;
    }
    write_seed("fuzz_metrics_text", "crlf-timestamps", crlf.data, crlf.len, NULL, 0);
    fw_buf_free(&out);
    fw_buf_free(&crlf);
    fw_metrics_destroy(reg);

    /* More labels than a registry renders: the reader's limit, and one past it. */
    fw_buf_reset(&out);
    for (int n = FW_METRICS_TEXT_MAX_LABELS - 1; n <= FW_METRICS_TEXT_MAX_LABELS + 1; n++) {
        char line[64];
        check(fw_buf_append(&out, "freeway_wide{", 13), "append");
        for (int i = 0; i < n; i++) {
            int len = snprintf(line, sizeof(line), "%sl%d=\"%d\"", i ? "," : "", i, i);
            check(fw_buf_append(&out, line, (size_t)len), "append");
        }
        int len = snprintf(line, sizeof(line), "} %d\n", n);
        check(fw_buf_append(&out, line, (size_t)len), "append");
    }
    write_seed("fuzz_metrics_text", "max-labels", out.data, out.len, NULL, 0);
    fw_buf_free(&out);
}

static cal_thrift_str_t seed_str(const char *s)
{
    cal_thrift_str_t t = {s, (uint32_t)strlen(s)};
    return t;
}

static void seed_call(fw_buf_t *out, cal_scribe_method_t m, int strict, uint8_t type, int32_t seqid)
{
    cal_scribe_call_t c;
    memset(&c, 0, sizeof(c));
    c.method = m;
    c.type = type;
    c.strict = (uint8_t)strict;
    c.seqid = seqid;
    if (m == CAL_SCRIBE_GET_COUNTER || m == CAL_SCRIBE_GET_OPTION || m == CAL_SCRIBE_SET_OPTION)
        c.key = seed_str("max_msg_per_second");
    if (m == CAL_SCRIBE_SET_OPTION)
        c.value = seed_str("100000");
    if (m == CAL_SCRIBE_GET_CPU_PROFILE)
        c.profile_seconds = 5;
    check(cal_scribe_call_encode(out, &c, NULL, 0), "scribe call");
}

/* Scribe's Thrift interface: calls as scribe_cat, scribe_ctrl and libraries send them. */
static void seeds_scribe_thrift(void)
{
    fw_buf_t out = FW_BUF_INIT;
    cal_scribe_entry_t es[3] = {
        {seed_str("web"), seed_str("GET /item/1 200 3ms user=1")},
        {seed_str("web"), seed_str("")},
        {seed_str("ads.clicks"), seed_str("id=7\tcampaign=3")},
    };
    cal_scribe_call_t log;
    memset(&log, 0, sizeof(log));
    log.method = CAL_SCRIBE_LOG;
    log.type = CAL_THRIFT_CALL;
    log.strict = 1;
    log.seqid = 1;
    check(cal_scribe_call_encode(&out, &log, es, 3), "scribe log");
    write_seed("fuzz_scribe_thrift", "log-strict", out.data, out.len, NULL, 0);
    /* The same call unframed, behind an odd first byte: the target frames it. */
    write_seed("fuzz_scribe_thrift", "log-strict-unframed", "\x01", 1, out.data + 4, out.len - 4);

    /* scribe_cat: old headers, seqid 0; three calls back to back. */
    fw_buf_reset(&out);
    log.strict = 0;
    log.seqid = 0;
    for (size_t n = 1; n <= 3; n++)
        check(cal_scribe_call_encode(&out, &log, es, n), "scribe log");
    write_seed("fuzz_scribe_thrift", "log-old-pipelined", out.data, out.len, NULL, 0);

    /* Forty entries in one call, unframed behind an odd first byte. */
    fw_buf_reset(&out);
    cal_scribe_entry_t many[40];
    for (size_t i = 0; i < 40; i++)
        many[i] = es[i % 3];
    check(cal_scribe_call_encode(&out, &log, many, 40), "scribe log");
    write_seed("fuzz_scribe_thrift", "log-old-40-unframed", "\x01", 1, out.data + 4, out.len - 4);

    /* scribe_ctrl: status, version, name, alive, counters, reload, stop. */
    fw_buf_reset(&out);
    static const cal_scribe_method_t ctrl[] = {
        CAL_SCRIBE_GET_STATUS, CAL_SCRIBE_GET_STATUS_DETAILS, CAL_SCRIBE_GET_VERSION,
        CAL_SCRIBE_GET_NAME,   CAL_SCRIBE_ALIVE_SINCE,        CAL_SCRIBE_GET_COUNTERS};
    for (size_t i = 0; i < sizeof(ctrl) / sizeof(ctrl[0]); i++)
        seed_call(&out, ctrl[i], 1, CAL_THRIFT_CALL, 0);
    seed_call(&out, CAL_SCRIBE_REINITIALIZE, 1, CAL_THRIFT_ONEWAY, 0);
    seed_call(&out, CAL_SCRIBE_SHUTDOWN, 1, CAL_THRIFT_ONEWAY, 0);
    write_seed("fuzz_scribe_thrift", "fb303-ctrl", out.data, out.len, NULL, 0);

    fw_buf_reset(&out);
    static const cal_scribe_method_t with_args[] = {CAL_SCRIBE_GET_COUNTER, CAL_SCRIBE_SET_OPTION,
                                                    CAL_SCRIBE_GET_OPTION, CAL_SCRIBE_GET_OPTIONS,
                                                    CAL_SCRIBE_GET_CPU_PROFILE};
    for (size_t i = 0; i < sizeof(with_args) / sizeof(with_args[0]); i++)
        seed_call(&out, with_args[i], 0, CAL_THRIFT_CALL, (int32_t)i + 10);
    write_seed("fuzz_scribe_thrift", "fb303-args", out.data, out.len, NULL, 0);

    /* An unknown method whose arguments hold every container, and a Log entry with extras. */
    static const uint8_t unknown[] = {
        0x00, 0x00, 0x00, 0x56, 0x80, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x09, 0x67, 0x65, 0x74,
        0x4c, 0x69, 0x6d, 0x69, 0x74, 0x73, 0x00, 0x00, 0x00, 0x05, 0x0c, 0x00, 0x01, 0x0d, 0x00,
        0x01, 0x0b, 0x0f, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x6b, 0x0e, 0x00, 0x00,
        0x00, 0x01, 0x06, 0x00, 0x00, 0x00, 0x01, 0x00, 0x03, 0x0a, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x2a, 0x10, 0x00, 0x03, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36,
        0x37, 0x38, 0x39, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x00, 0x02, 0x00, 0x04, 0x01, 0x00};
    write_seed("fuzz_scribe_thrift", "unknown-method", unknown, sizeof(unknown), NULL, 0);
    static const uint8_t log_extra[] = {
        0x00, 0x00, 0x00, 0x3d, 0x00, 0x00, 0x00, 0x03, 0x4c, 0x6f, 0x67, 0x01, 0x00,
        0x00, 0x00, 0x04, 0x08, 0x00, 0x07, 0x00, 0x00, 0x00, 0x01, 0x0f, 0x00, 0x01,
        0x0c, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x03, 0x40, 0x09, 0x21, 0xfb, 0x54,
        0x44, 0x2d, 0x18, 0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x68, 0x69, 0x0b,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x61, 0x03, 0x00, 0x04, 0x7f, 0x00, 0x00};
    write_seed("fuzz_scribe_thrift", "log-extra-fields", log_extra, sizeof(log_extra), NULL, 0);
    write_seed("fuzz_scribe_thrift", "log-extra-fields-unframed", "\x01", 1, log_extra + 4,
               sizeof(log_extra) - 4);
    write_seed("fuzz_scribe_thrift", "unknown-method-unframed", "\x01", 1, unknown + 4,
               sizeof(unknown) - 4);

    /* Replies, for the reply decoder: OK, counters, options, an exception. */
    fw_buf_reset(&out);
    cal_scribe_call_t c;
    memset(&c, 0, sizeof(c));
    c.strict = 1;
    c.seqid = 3;
    c.method = CAL_SCRIBE_LOG;
    c.name = seed_str("Log");
    check(cal_scribe_reply_log(&out, &c, CAL_SCRIBE_OK), "scribe reply");
    c.method = CAL_SCRIBE_GET_COUNTERS;
    c.name = seed_str("getCounters");
    cal_scribe_counter_t counters[] = {{"scribe_overall:received good", 100000}, {"x", -1}};
    check(cal_scribe_reply_counters(&out, &c, counters, 2), "scribe reply");
    c.strict = 0;
    c.method = CAL_SCRIBE_GET_OPTIONS;
    c.name = seed_str("getOptions");
    cal_scribe_option_t options[] = {{"port", "1463"}};
    check(cal_scribe_reply_options(&out, &c, options, 1), "scribe reply");
    c.method = CAL_SCRIBE_UNKNOWN;
    c.name = seed_str("getLimits");
    check(cal_scribe_reply_unknown_method(&out, &c), "scribe reply");
    write_seed("fuzz_scribe_thrift", "replies", out.data, out.len, NULL, 0);
    fw_buf_free(&out);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seedgen CORPUS_DIR\n");
        return 2;
    }
    root = argv[1];
    char tmpdir[] = "/tmp/freeway-seedgen-XXXXXX";
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    seeds_block();
    seeds_frame();
    seeds_segment(tmpdir);
    seeds_checkpoint();
    seeds_consumer();
    seeds_metrics_text();
    seeds_scribe_thrift();
    rmdir(tmpdir);
    return 0;
}
