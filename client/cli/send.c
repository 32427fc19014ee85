/*
 * freeway send -c CATEGORY: sends stdin's lines to a category through
 * libfreeway's producer, one record per line (the trailing newline
 * stripped; with --key-sep the text before the first separator is the key).
 * At end of input it flushes, prints a summary and the first distinct
 * errors on stderr, and exits 0 only if every line was acked, or spooled
 * with --spool (1 if any failed, 2 for a usage error). With --spool it
 * first sends what the spool holds, and at the end waits up to --timeout
 * for the spool to drain; what is left stays there for the next run.
 */
#include "cli.h"

#include "block.h"
#include "config.h"
#include "freeway.h"
#include "log.h"
#include "names.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK     (1u << 20)
#define MAX_LINE       (FW_RECORD_MAX_HARD + 1u)
#define ERRORS_SHOWN   5
#define CLOSE_SLACK_MS 10000

typedef struct send_cfg_s {
    char *zk;
    char *category;
    char *key_sep;
    char *acks;
    uint64_t batch_bytes;
    int64_t linger;
    char *bootstrap;
    int64_t timeout;
    char *codec;
    uint64_t buffer;
    int64_t max_in_flight;
    int quiet;
    int verbose;
    char *spool;
    uint64_t spool_max;
    char *spool_sync;
    int64_t spool_after;
    char *spool_full;
} send_cfg_t;

static const fw_option_t send_opts[] = {
    {"category", FW_OPT_STRING, offsetof(send_cfg_t, category), NULL, "CATEGORY",
     "the category to send to (also -c CATEGORY); required"},
    {"key-sep", FW_OPT_STRING, offsetof(send_cfg_t, key_sep), NULL, "CHAR",
     "text before the first CHAR of a line is the record's key (\\t or tab for a tab)"},
    {"acks", FW_OPT_STRING, offsetof(send_cfg_t, acks), "durable", "durable|written|none",
     "when a writer acks: after fdatasync, after the write, or on receipt"},
    {"batch-bytes", FW_OPT_SIZE, offsetof(send_cfg_t, batch_bytes), "256K", "SIZE",
     "a bucket's batch becomes a block at this size"},
    {"linger", FW_OPT_DURATION, offsetof(send_cfg_t, linger), "5ms", "DURATION",
     "... or this long after its first record"},
    {"zk", FW_OPT_STRING, offsetof(send_cfg_t, zk), "${FREEWAY_ZK:-127.0.0.1:2181/freeway}",
     "HOSTS[/chroot]", "ZooKeeper ensemble and chroot, to find the writers"},
    {"bootstrap", FW_OPT_STRING, offsetof(send_cfg_t, bootstrap), NULL, "ADDR[,ADDR...]",
     "writers to ask instead of ZooKeeper (host:port)"},
    {"timeout", FW_OPT_DURATION, offsetof(send_cfg_t, timeout), "120s", "DURATION",
     "a record fails if not acked this long after it was read"},
    {"codec", FW_OPT_STRING, offsetof(send_cfg_t, codec), NULL, "lz4|none",
     "block compression (default: the category's)"},
    {"buffer", FW_OPT_SIZE, offsetof(send_cfg_t, buffer), "64M", "SIZE",
     "bytes of records read but not yet acked, at most"},
    {"max-in-flight", FW_OPT_INT, offsetof(send_cfg_t, max_in_flight), "8", "N",
     "produce requests awaiting an answer, per writer connection"},
    {"spool", FW_OPT_STRING, offsetof(send_cfg_t, spool), NULL, "DIR",
     "keep blocks no writer takes in this spool directory and send them later (docs/spool.md)"},
    {"spool-max", FW_OPT_SIZE, offsetof(send_cfg_t, spool_max), "1G", "SIZE",
     "the spool's size, at most"},
    {"spool-sync", FW_OPT_STRING, offsetof(send_cfg_t, spool_sync), "interval",
     "always|interval|never", "fdatasync spooled blocks before they count, every 100 ms, or never"},
    {"spool-after", FW_OPT_DURATION, offsetof(send_cfg_t, spool_after), "5s", "DURATION",
     "a bucket spools after its blocks waited this long with none accepted"},
    {"spool-full", FW_OPT_STRING, offsetof(send_cfg_t, spool_full), "block", "block|fail",
     "with memory and spool full: wait (up to --timeout) or fail the line at once"},
    {"quiet", FW_OPT_BOOL, offsetof(send_cfg_t, quiet), NULL, NULL,
     "print nothing unless something failed"},
    {"verbose", FW_OPT_BOOL, offsetof(send_cfg_t, verbose), NULL, NULL,
     "also log connections, retries and metadata"},
    FW_OPTIONS_END,
};

/* What the callbacks saw. Written on the I/O thread, read after fw_producer_close. */
typedef struct tally_s {
    uint64_t acked;
    uint64_t spooled;
    uint64_t failed;
    uint64_t duplicates;
    struct {
        char text[256];
        uint64_t count;
    } errors[ERRORS_SHOWN];
    int nerrors;
    uint64_t more_errors; /* failures whose message was not among those kept */
} tally_t;

static void tally_error(tally_t *t, int status, const char *message)
{
    char text[256];
    snprintf(text, sizeof(text), "%s: %s", fw_err_name(status), message);
    for (int i = 0; i < t->nerrors; i++) {
        if (strcmp(t->errors[i].text, text) == 0) {
            t->errors[i].count++;
            return;
        }
    }
    if (t->nerrors == ERRORS_SHOWN) {
        t->more_errors++;
        return;
    }
    snprintf(t->errors[t->nerrors].text, sizeof(t->errors[0].text), "%s", text);
    t->errors[t->nerrors++].count = 1;
}

static void on_delivery(const fw_delivery_t *d, void *arg)
{
    tally_t *t = arg;
    if (d->status == 0 && d->spooled) {
        t->spooled++;
        return;
    }
    if (d->status == 0) {
        t->acked++;
        t->duplicates += d->duplicate != 0;
        return;
    }
    t->failed++;
    tally_error(t, d->status, d->message);
}

static void on_log(fw_producer_log_level_t level, const char *message, void *arg)
{
    (void)level;
    (void)arg;
    fprintf(stderr, "freeway send: %s\n", message);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: freeway send -c CATEGORY [OPTIONS] < LINES\n\n"
                 "Sends each line of stdin as one record (without its newline). Exits 0\n"
                 "only if every line was acked, 1 if any failed, 2 for a usage error.\n\n"
                 "options:\n");
    fw_config_usage(send_opts, out);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static int parse_key_sep(const char *text, int *sep)
{
    *sep = -1;
    if (text == NULL)
        return 0;
    if (strcmp(text, "\\t") == 0 || strcmp(text, "tab") == 0) {
        *sep = '\t';
        return 0;
    }
    if (strlen(text) != 1)
        return -EINVAL;
    *sep = (unsigned char)text[0];
    return 0;
}

/* Counters of the reading side (main thread). */
typedef struct reader_s {
    fw_producer_t *p;
    const char *category;
    int sep;
    tally_t *tally;
    uint64_t lines;
    uint64_t bytes;
    uint64_t refused; /* fw_producer_send said no: no callback will come */
    tally_t sync;     /* their messages */
} reader_t;

static void send_line(reader_t *r, const char *line, size_t len)
{
    const char *key = NULL, *value = line;
    size_t key_len = 0, value_len = len;
    if (r->sep >= 0) {
        const char *s = memchr(line, r->sep, len);
        if (s != NULL) {
            key = line;
            key_len = (size_t)(s - line);
            value = s + 1;
            value_len = len - key_len - 1;
        }
    }
    r->lines++;
    r->bytes += len;
    int rc = fw_producer_send(r->p, r->category, key, key_len, value, value_len, 0, on_delivery,
                              r->tally);
    if (rc < 0) {
        r->refused++;
        tally_error(&r->sync, rc, fw_strerror(rc));
    }
}

/* Reads stdin to its end, sending each line. 0, or -errno on a read error. */
static int read_lines(reader_t *r)
{
    size_t cap = READ_CHUNK, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return -ENOMEM;
    int skipping = 0; /* inside a line too long to send: drop up to its newline */
    int rc = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_LINE) {
                /* A line over the hard record limit: count it failed, skip the rest of it. */
                if (!skipping) {
                    r->lines++;
                    r->refused++;
                    tally_error(&r->sync, FW_ERECORD_TOO_LARGE, "line longer than 16 MiB");
                }
                skipping = 1;
                len = 0;
            } else {
                size_t ncap = cap * 2 > MAX_LINE ? MAX_LINE : cap * 2;
                char *nbuf = realloc(buf, ncap);
                if (nbuf == NULL) {
                    rc = -ENOMEM;
                    break;
                }
                buf = nbuf;
                cap = ncap;
            }
        }
        ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0) {
            if (len > 0 && !skipping)
                send_line(r, buf, len); /* a last line without a newline */
            break;
        }
        /* Lines start at `start`; only the new bytes can hold a newline not yet seen. */
        size_t end = len + (size_t)n, start = 0, scan = len;
        const char *nl;
        while ((nl = memchr(buf + scan, '\n', end - scan)) != NULL) {
            size_t line_end = (size_t)(nl - buf);
            if (skipping)
                skipping = 0;
            else
                send_line(r, buf + start, line_end - start);
            start = scan = line_end + 1;
        }
        /* Keep the partial line at the front. */
        memmove(buf, buf + start, end - start);
        len = end - start;
    }
    free(buf);
    return rc;
}

static void print_errors(const tally_t *t)
{
    for (int i = 0; i < t->nerrors; i++)
        fprintf(stderr, "freeway send:   %" PRIu64 " x %s\n", t->errors[i].count,
                t->errors[i].text);
    if (t->more_errors > 0)
        fprintf(stderr, "freeway send:   %" PRIu64 " more with other messages\n", t->more_errors);
}

int fw_cli_send(int argc, char **argv)
{
    send_cfg_t o;
    memset(&o, 0, sizeof(o));
    char err[512];
    char **rest;
    int nrest;
    char *spare = NULL;
    char **args = fw_cli_short_category(argc, argv, &spare);
    if (args == NULL) {
        fprintf(stderr, "freeway send: out of memory\n");
        return 1;
    }
    int rc = fw_config_parse(send_opts, &o, argc, args, &rest, &nrest, err, sizeof(err));
    int status = 2;
    if ((rc = fw_cli_parsed("send", rc, err, usage)) >= 0) {
        status = rc;
        goto out;
    }
    if (nrest > 0) {
        fprintf(stderr, "freeway send: unexpected argument \"%s\" (lines come from stdin)\n",
                rest[0]);
        goto out;
    }
    if (o.category == NULL) {
        fprintf(stderr, "freeway send: -c CATEGORY is required\n\n");
        usage(stderr);
        goto out;
    }
    if (!fw_category_valid(o.category)) {
        fprintf(stderr,
                "freeway send: \"%s\" is not a valid category name ([A-Za-z0-9_.-]{1,128})\n",
                o.category);
        goto out;
    }

    fw_producer_options_t po;
    fw_producer_options_init(&po);
    int sep;
    if (parse_key_sep(o.key_sep, &sep) < 0) {
        fprintf(stderr, "freeway send: --key-sep wants one character (or \\t)\n");
        goto out;
    }
    if (strcmp(o.acks, "durable") == 0)
        po.acks = FW_ACKS_DURABLE;
    else if (strcmp(o.acks, "written") == 0)
        po.acks = FW_ACKS_WRITTEN;
    else if (strcmp(o.acks, "none") == 0)
        po.acks = FW_ACKS_NONE;
    else {
        fprintf(stderr, "freeway send: --acks must be durable, written or none\n");
        goto out;
    }
    if (o.codec == NULL)
        po.codec = FW_PRODUCER_CODEC_DEFAULT;
    else if (strcmp(o.codec, "lz4") == 0)
        po.codec = FW_PRODUCER_CODEC_LZ4;
    else if (strcmp(o.codec, "none") == 0)
        po.codec = FW_PRODUCER_CODEC_NONE;
    else {
        fprintf(stderr, "freeway send: --codec must be lz4 or none\n");
        goto out;
    }
    if (o.batch_bytes == 0 || o.batch_bytes > FW_BLOCK_MAX_PAYLOAD) {
        fprintf(stderr, "freeway send: --batch-bytes must be 1..32M\n");
        goto out;
    }
    if (o.timeout <= 0 || o.timeout > UINT32_MAX || o.linger < 0 || o.linger > 60000) {
        fprintf(stderr, "freeway send: --timeout must be positive and --linger at most 1m\n");
        goto out;
    }
    if (o.buffer < (1u << 20) || o.max_in_flight < 1 || o.max_in_flight > 1024) {
        fprintf(stderr, "freeway send: --buffer must be at least 1M, --max-in-flight 1..1024\n");
        goto out;
    }
    if (o.spool != NULL) {
        po.spool_dir = o.spool;
        po.spool_max_bytes = o.spool_max;
        if (strcmp(o.spool_sync, "always") == 0)
            po.spool_sync = FW_SPOOL_SYNC_ALWAYS;
        else if (strcmp(o.spool_sync, "interval") == 0)
            po.spool_sync = FW_SPOOL_SYNC_INTERVAL;
        else if (strcmp(o.spool_sync, "never") == 0)
            po.spool_sync = FW_SPOOL_SYNC_NEVER;
        else {
            fprintf(stderr, "freeway send: --spool-sync must be always, interval or never\n");
            goto out;
        }
        if (strcmp(o.spool_full, "block") == 0)
            po.spool_full = FW_SPOOL_FULL_BLOCK;
        else if (strcmp(o.spool_full, "fail") == 0)
            po.spool_full = FW_SPOOL_FULL_FAIL;
        else {
            fprintf(stderr, "freeway send: --spool-full must be block or fail\n");
            goto out;
        }
        if (o.spool_max < (1u << 20) || o.spool_after <= 0 || o.spool_after > UINT32_MAX) {
            fprintf(stderr, "freeway send: --spool-max must be at least 1M and --spool-after "
                            "positive\n");
            goto out;
        }
        po.spool_after_ms = (uint32_t)o.spool_after;
        po.spool_block_ms = (uint32_t)o.timeout;
    }
    po.zk = o.zk;
    po.bootstrap = o.bootstrap;
    po.batch_bytes = o.batch_bytes;
    po.linger_ms = (uint32_t)o.linger;
    po.delivery_timeout_ms = (uint32_t)o.timeout;
    /* A full buffer is backpressure here: wait as long as a record may take. */
    po.send_timeout_ms = (uint32_t)o.timeout;
    po.max_buffer_bytes = o.buffer;
    po.max_in_flight = (uint32_t)o.max_in_flight;
    po.log_cb = on_log;
    po.log_level = o.verbose ? FW_PRODUCER_LOG_DEBUG
                   : o.quiet ? FW_PRODUCER_LOG_ERROR
                             : FW_PRODUCER_LOG_WARN;
    /* The ZooKeeper session code logs through the daemons' logger. */
    fw_log_set_level(o.verbose ? FW_LOG_INFO : FW_LOG_ERROR);

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fw_producer_t *p;
    rc = fw_producer_create(&p, &po);
    if (rc < 0) {
        /* A spool that cannot be opened has been described through on_log. */
        if (o.spool == NULL || rc == -EINVAL)
            fprintf(stderr, "freeway send: %s\n",
                    rc == -EINVAL ? "bad --zk or --bootstrap address list" : fw_strerror(rc));
        status = rc == -EINVAL ? 2 : 1;
        goto out;
    }
    tally_t tally;
    memset(&tally, 0, sizeof(tally));
    reader_t r = {.p = p, .category = o.category, .sep = sep, .tally = &tally};
    int read_rc = read_lines(&r);
    int drain_rc = o.spool != NULL ? fw_producer_drain_spool(p, (int)o.timeout) : 0;
    fw_producer_stats_t st;
    fw_producer_stats(p, &st);
    /* Spooled is delivered (the exit status says so), but the operator should know it waits. */
    if (drain_rc == -ETIMEDOUT && !o.quiet)
        fprintf(stderr,
                "freeway send: the spool %s still holds %" PRIu64 " records no writer has "
                "acked; the next producer on it sends them\n",
                o.spool, st.spool_records);
    int close_rc = fw_producer_close(p, (int)(o.timeout + CLOSE_SLACK_MS));
    double secs = seconds_since(&t0);

    uint64_t failed = tally.failed + r.refused;
    /* A spooled block refused for good lost records: not a success either. */
    int ok = read_rc == 0 && close_rc == 0 && failed == 0 && st.records_replay_failed == 0 &&
             tally.acked + tally.spooled == r.lines;
    if (!ok || !o.quiet) {
        double rate = secs > 0 ? (double)r.lines / secs : 0;
        double mbs = secs > 0 ? (double)r.bytes / secs / 1e6 : 0;
        fprintf(stderr,
                "freeway send: %" PRIu64 " records read, %" PRIu64 " acked (%" PRIu64
                " duplicates), %" PRIu64 " spooled, %" PRIu64
                " failed in %.2f s: %.0f records/s, %.1f MB/s\n",
                r.lines, tally.acked, tally.duplicates, tally.spooled, failed, secs, rate, mbs);
    }
    if (o.spool != NULL && (!o.quiet || st.spool_blocks > 0))
        fprintf(stderr,
                "freeway send: spool %s: %" PRIu64 " records sent from it and acked, %" PRIu64
                " refused for good; %" PRIu64 " records queued, %" PRIu64 " in flight; %" PRIu64
                " records (%" PRIu64 " blocks, %" PRIu64 " bytes) left in it%s\n",
                o.spool, st.records_replay_acked, st.records_replay_failed, st.records_queued,
                st.records_in_flight, st.spool_records, st.spool_blocks, st.spool_bytes,
                st.spool_blocks > 0 ? ": the next freeway send --spool on it sends them" : "");
    if (read_rc < 0)
        fprintf(stderr, "freeway send: reading stdin: %s\n", strerror(-read_rc));
    if (failed > 0) {
        fprintf(stderr, "freeway send: first errors:\n");
        print_errors(&r.sync);
        print_errors(&tally);
    }
    status = ok ? 0 : 1;
out:
    fw_config_free(send_opts, &o);
    free(args);
    free(spare);
    return status;
}
