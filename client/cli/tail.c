/*
 * freeway tail -c CATEGORY: prints a category's records through libfreeway's
 * consumer, one per line (raw: the value; json: an object with the
 * position, timestamp, key and value). With --checkpoint-file it starts from
 * the token saved there and saves, atomically, the token of exactly what it
 * has printed: after each checkpoint ptail marks and at exit, each time
 * after stdout was flushed. The last token is printed on stderr at exit.
 */
#include "cli.h"
#include "utf8.h"

#include "checkpoint.h"
#include "clock.h"
#include "config.h"
#include "error.h"
#include "freeway.h"
#include "fsutil.h"
#include "log.h"
#include "names.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN_FILE_MAX (1u << 20)

typedef struct tail_cfg_s {
    char *config;
    char *category;
    char *from;
    int64_t count;
    char *buckets;
    char *checkpoint_file;
    char *format;
    char *zk;
    char *ptail;
    int64_t timeout;
    int64_t checkpoint_records;
    int64_t checkpoint_every;
    uint64_t credit;
    char *name;
    int audit;
    int quiet;
    int verbose;
} tail_cfg_t;

static const fw_option_t tail_opts[] = {
    {"category", FW_OPT_STRING, offsetof(tail_cfg_t, category), NULL, "CATEGORY",
     "the category to read (also -c CATEGORY); required"},
    {"from", FW_OPT_STRING, offsetof(tail_cfg_t, from), "latest", "earliest|latest|@UNIX_MS|TOKEN",
     "where to start: the oldest record kept, only new records, the first block at or after a "
     "time (ms since the epoch), or after a checkpoint token"},
    {"count", FW_OPT_INT, offsetof(tail_cfg_t, count), NULL, "N", "exit after N records"},
    {"buckets", FW_OPT_STRING, offsetof(tail_cfg_t, buckets), NULL, "LIST",
     "only these buckets, e.g. 0,3,8-11 (default: every bucket)"},
    {"checkpoint-file", FW_OPT_STRING, offsetof(tail_cfg_t, checkpoint_file), NULL, "FILE",
     "start from the token in FILE if it exists (else from --from) and keep saving the token of "
     "what was printed there"},
    {"format", FW_OPT_STRING, offsetof(tail_cfg_t, format), "raw", "raw|json",
     "raw: each record's value and a newline; json: one object per line with bucket, segment, "
     "offset, index, ts, key and value (key_base64 / value_base64 when not UTF-8)"},
    {"zk", FW_OPT_STRING, offsetof(tail_cfg_t, zk), "${FREEWAY_ZK:-127.0.0.1:2181/freeway}",
     "HOSTS[/chroot]", "ZooKeeper ensemble and chroot, to find ptail"},
    {"ptail", FW_OPT_STRING, offsetof(tail_cfg_t, ptail), NULL, "ADDR[,ADDR...]",
     "ptail servers to use instead of ZooKeeper (host:port)"},
    {"timeout", FW_OPT_DURATION, offsetof(tail_cfg_t, timeout), NULL, "DURATION",
     "exit after this long without a record (default: run until SIGINT/SIGTERM or --count)"},
    {"checkpoint-every", FW_OPT_DURATION, offsetof(tail_cfg_t, checkpoint_every), "1s", "DURATION",
     "ptail marks a checkpoint this long after the last one (and the checkpoint file "
     "is saved then) ..."},
    {"checkpoint-records", FW_OPT_INT, offsetof(tail_cfg_t, checkpoint_records), "0", "N",
     "... or after this many records (0: by time only, so a backlog costs one fsync a second, "
     "not one per N records)"},
    {"credit", FW_OPT_SIZE, offsetof(tail_cfg_t, credit), "4M", "SIZE",
     "flow control: bytes ptail may send ahead of what was printed"},
    {"name", FW_OPT_STRING, offsetof(tail_cfg_t, name), NULL, "NAME",
     "a name for this consumer in ptail's metrics"},
    {"audit", FW_OPT_BOOL, offsetof(tail_cfg_t, audit), NULL, NULL,
     "report the records printed to the audit category freeway.audit (under --name, required), "
     "for `freeway audit`"},
    {"config", FW_OPT_STRING, offsetof(tail_cfg_t, config), NULL, "FILE",
     "read options from FILE (name = value lines)"},
    {"quiet", FW_OPT_BOOL, offsetof(tail_cfg_t, quiet), NULL, NULL,
     "print only errors and the last checkpoint on stderr"},
    {"verbose", FW_OPT_BOOL, offsetof(tail_cfg_t, verbose), NULL, NULL,
     "also log connections and subscriptions"},
    FW_OPTIONS_END,
};

typedef struct tail_s {
    fw_consumer_t *c;
    int json;
    int64_t count; /* 0: no limit */
    uint64_t printed;
    const char *ckpt_file; /* NULL: none */
    int out_error;         /* errno of a failed write to stdout */
    int save_error;        /* a negative code: the checkpoint file could not be saved */
    void *last_token;      /* the token of the last point where stdout was flushed */
    size_t last_len;
} tail_t;

static fw_consumer_t *volatile g_consumer;
static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
    fw_consumer_t *c = g_consumer;
    if (c != NULL)
        fw_consumer_wakeup(c);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: freeway tail -c CATEGORY [OPTIONS]\n\n"
                 "Prints a category's records as ptail streams them, in stored order within\n"
                 "each bucket. Exits 0 after --count records, after --timeout without a record,\n"
                 "or on SIGINT/SIGTERM; 1 on a fatal error (an unknown category, a refused\n"
                 "token, a checkpoint file that cannot be saved); 2 for a usage error. At exit\n"
                 "the token of what was printed goes to stderr as \"checkpoint TOKEN\".\n\n"
                 "options:\n");
    fw_config_usage(tail_opts, out);
}

/* ---- output ---------------------------------------------------------------------------------- */

/* "name":"text", or "name_base64":"..." for bytes that are not UTF-8 (JSON strings are text). */
static void json_bytes(FILE *out, const char *name, const void *p, size_t len)
{
    if (fw_utf8_valid(p, len)) {
        fprintf(out, "\"%s\":", name);
        fw_cli_json_string(out, p, len);
        return;
    }
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *s = p;
    fprintf(out, "\"%s_base64\":\"", name);
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        fputc(b64[v >> 18], out);
        fputc(b64[(v >> 12) & 63], out);
        fputc(b64[(v >> 6) & 63], out);
        fputc(b64[v & 63], out);
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        fprintf(out, "%c%c==", b64[v >> 18], b64[(v >> 12) & 63]);
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        fprintf(out, "%c%c%c=", b64[v >> 18], b64[(v >> 12) & 63], b64[(v >> 6) & 63]);
    }
    fputc('"', out);
}

static void print_record(tail_t *t, const fw_consumer_record_t *r)
{
    if (!t->json) {
        fwrite(r->value, 1, r->value_len, stdout);
        fputc('\n', stdout);
        return;
    }
    printf("{\"bucket\":%" PRIu32 ",\"segment\":%" PRIu64 ",\"offset\":%" PRIu64
           ",\"index\":%" PRIu32 ",\"ts\":%" PRId64 ",",
           r->bucket, r->segment_id, r->offset, r->record_index, r->timestamp);
    if (r->has_key)
        json_bytes(stdout, "key", r->key, r->key_len);
    else
        fputs("\"key\":null", stdout);
    fputc(',', stdout);
    json_bytes(stdout, "value", r->value, r->value_len);
    fputs("}\n", stdout);
}

/*
 * Notes a failed write to stdout. After one, stdio has dropped what it
 * could not write and a later fflush() returns 0 with nothing to write, so
 * the error flag is the only sign left that records were lost.
 */
static void check_out(tail_t *t)
{
    if (t->out_error == 0 && ferror(stdout))
        t->out_error = errno ? errno : EIO;
}

/* 0 once stdout holds every record printed; else records the error. */
static int flush_out(tail_t *t)
{
    if (t->out_error == 0 && fflush(stdout) != 0)
        t->out_error = errno ? errno : EIO;
    check_out(t);
    return t->out_error == 0 ? 0 : -1;
}

/* ---- the checkpoint file --------------------------------------------------------------------- */

/*
 * Replaces path with text and a newline, atomically: a temporary file in the
 * same directory, fsync, rename over path, fsync the directory. A crash
 * leaves the old token or the new one, never a torn one.
 */
static int save_token_file(const char *path, const char *text)
{
    char dir[4096], tmp[4200];
    int rc = fw_dirname(path, dir, sizeof(dir));
    if (rc < 0)
        return rc;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, base) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = mkstemp(tmp);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    rc = 0;
    if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1)
        rc = errno ? -errno : -EIO;
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    return fw_fsync_dir(dir);
}

/*
 * Reads the token in path. 0 and *token (malloc'd binary), -ENOENT if there
 * is no file, or another error with a message in err.
 */
static int load_token_file(const char *path, const char *category, void **token, size_t *len,
                           char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int rc = -errno;
        if (rc != -ENOENT)
            snprintf(err, cap, "cannot read %s: %s", path, strerror(-rc));
        return rc;
    }
    char *text = malloc(TOKEN_FILE_MAX + 1);
    size_t n = text ? fread(text, 1, TOKEN_FILE_MAX, f) : 0;
    int read_error = ferror(f);
    fclose(f);
    if (text == NULL || read_error) {
        free(text);
        snprintf(err, cap, "cannot read %s", path);
        return -EIO;
    }
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        n--;
    text[n] = '\0';
    fw_checkpoint_t cp;
    int rc = fw_checkpoint_from_text(text, n, &cp);
    free(text);
    if (rc < 0) {
        snprintf(err, cap, "%s does not hold a checkpoint token: %s", path, fw_strerror(rc));
        return rc;
    }
    if (strcmp(cp.category, category) != 0) {
        snprintf(err, cap, "%s holds a checkpoint of category %s, not %s", path, cp.category,
                 category);
        fw_checkpoint_free(&cp);
        return FW_ETOKEN_BAD;
    }
    fw_buf_t b = FW_BUF_INIT;
    rc = fw_checkpoint_encode(&cp, &b);
    fw_checkpoint_free(&cp);
    if (rc < 0) {
        fw_buf_free(&b);
        snprintf(err, cap, "%s: %s", path, fw_strerror(rc));
        return rc;
    }
    *token = b.data;
    *len = b.len;
    return 0;
}

/* stdout is flushed: token is now the state of what was printed. Saves it if asked. */
static void mark_printed(tail_t *t, const void *token, size_t len)
{
    void *copy = malloc(len);
    if (copy != NULL) {
        memcpy(copy, token, len);
        free(t->last_token);
        t->last_token = copy;
        t->last_len = len;
    }
    if (t->ckpt_file == NULL || t->save_error != 0)
        return;
    char *text = NULL;
    int rc = fw_consumer_token_to_text(token, len, &text);
    if (rc == 0)
        rc = save_token_file(t->ckpt_file, text);
    free(text);
    if (rc < 0) {
        t->save_error = rc;
        fprintf(stderr, "freeway tail: cannot save the checkpoint in %s: %s\n", t->ckpt_file,
                fw_strerror(rc));
    }
}

/* ---- consumer callbacks ---------------------------------------------------------------------- */

static void on_record(const fw_consumer_record_t *r, void *arg)
{
    tail_t *t = arg;
    print_record(t, r);
    t->printed++;
    check_out(t);
    if ((t->count > 0 && t->printed >= (uint64_t)t->count) || t->out_error != 0)
        fw_consumer_break(t->c);
}

static void on_checkpoint(const void *token, size_t len, void *arg)
{
    tail_t *t = arg;
    if (flush_out(t) == 0)
        mark_printed(t, token, len);
    if (t->out_error != 0 || t->save_error != 0)
        fw_consumer_break(t->c);
}

static void on_gap(const fw_consumer_gap_t *g, void *arg)
{
    (void)arg;
    fprintf(stderr,
            "freeway tail: bucket %" PRIu32 ": records from segment %" PRIu64 " offset %" PRIu64
            " to segment %" PRIu64 " offset %" PRIu64 " cannot be delivered: %s\n",
            g->bucket, g->from.segment_id, g->from.offset, g->to.segment_id, g->to.offset,
            g->reason);
}

static void on_log(fw_consumer_log_level_t level, const char *message, void *arg)
{
    (void)level;
    (void)arg;
    fprintf(stderr, "freeway tail: %s\n", message);
}

/* The reports' producer (--audit): a report that goes nowhere is said, not hidden. */
static void on_audit_log(fw_producer_log_level_t level, const char *message, void *arg)
{
    (void)level;
    (void)arg;
    fprintf(stderr, "freeway tail: --audit: %s\n", message);
}

/* ---- arguments ------------------------------------------------------------------------------- */

/* "0,3,8-11" into a malloc'd list. 0 or -EINVAL. */
static int parse_buckets(const char *text, uint32_t **out, size_t *n)
{
    size_t cap = 16, len = 0;
    uint32_t *v = malloc(cap * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    const char *p = text;
    while (*p != '\0') {
        char *end;
        errno = 0;
        unsigned long lo = strtoul(p, &end, 10), hi = lo;
        if (end == p || errno != 0 || *p == '-' || *p == '+' || *p == ' ')
            goto bad;
        p = end;
        if (*p == '-') {
            p++;
            if (*p < '0' || *p > '9')
                goto bad;
            hi = strtoul(p, &end, 10);
            if (errno != 0)
                goto bad;
            p = end;
        }
        if (lo > hi || hi >= FW_BUCKETS_MAX || hi - lo >= FW_BUCKETS_MAX)
            goto bad;
        for (unsigned long b = lo; b <= hi; b++) {
            if (len == cap) {
                uint32_t *nv = realloc(v, 2 * cap * sizeof(*v));
                if (nv == NULL) {
                    free(v);
                    return -ENOMEM;
                }
                v = nv;
                cap *= 2;
            }
            v[len++] = (uint32_t)b;
        }
        if (*p == ',')
            p++;
        else if (*p != '\0')
            goto bad;
    }
    if (len == 0)
        goto bad;
    *out = v;
    *n = len;
    return 0;
bad:
    free(v);
    return -EINVAL;
}

/* --from into the options; the token (if any) into *token. 0 or -EINVAL. */
static int parse_from(const char *from, fw_consumer_options_t *co, void **token)
{
    if (strcmp(from, "earliest") == 0) {
        co->start = FW_START_EARLIEST;
    } else if (strcmp(from, "latest") == 0) {
        co->start = FW_START_LATEST;
    } else if (from[0] == '@') {
        if (fw_parse_i64(from + 1, 0, INT64_MAX, &co->start_ts_ms) < 0)
            return -EINVAL;
        co->start = FW_START_TIMESTAMP;
    } else {
        size_t len = 0;
        if (fw_consumer_token_from_text(from, token, &len) < 0)
            return -EINVAL;
        co->start = FW_START_CHECKPOINT;
        co->start_token = *token;
        co->start_token_len = len;
    }
    return 0;
}

/* Reads records until --count, --timeout, a signal or an error. 0 or a fatal code. */
static int run(tail_t *t, int64_t timeout)
{
    int64_t last = fw_clock_mono_ms();
    while (!g_stop && t->out_error == 0 && t->save_error == 0 &&
           (t->count == 0 || t->printed < (uint64_t)t->count)) {
        int wait = -1;
        if (timeout >= 0) {
            int64_t left = timeout - (fw_clock_mono_ms() - last);
            if (left <= 0)
                break;
            wait = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        int rc = fw_consumer_poll(t->c, wait);
        if (rc < 0)
            return rc;
        if (rc > 0) {
            last = fw_clock_mono_ms();
            /* Promptly visible to whoever reads the pipe. */
            flush_out(t);
        }
    }
    return 0;
}

int fw_cli_tail(int argc, char **argv)
{
    tail_cfg_t o;
    memset(&o, 0, sizeof(o));
    o.timeout = -1;
    char err[512];
    char **rest;
    int nrest;
    char *spare = NULL;
    uint32_t *buckets = NULL;
    void *from_token = NULL, *file_token = NULL;
    tail_t t;
    memset(&t, 0, sizeof(t));
    fw_producer_t *audit_producer = NULL; /* --audit: carries the consumer's reports */
    int status = 2;
    char **args = fw_cli_short_category(argc, argv, &spare);
    if (args == NULL) {
        fprintf(stderr, "freeway tail: out of memory\n");
        return 1;
    }
    int rc = fw_config_parse(tail_opts, &o, argc, args, &rest, &nrest, err, sizeof(err));
    if ((rc = fw_cli_parsed("tail", rc, err, usage)) >= 0) {
        status = rc;
        goto out;
    }
    if (nrest > 0) {
        fprintf(stderr, "freeway tail: unexpected argument \"%s\"\n", rest[0]);
        goto out;
    }
    if (o.category == NULL) {
        fprintf(stderr, "freeway tail: -c CATEGORY is required\n\n");
        usage(stderr);
        goto out;
    }
    if (!fw_category_valid(o.category)) {
        fprintf(stderr,
                "freeway tail: \"%s\" is not a valid category name ([A-Za-z0-9_.-]{1,128})\n",
                o.category);
        goto out;
    }
    fw_consumer_options_t co;
    fw_consumer_options_init(&co);
    if (parse_from(o.from, &co, &from_token) < 0) {
        fprintf(stderr, "freeway tail: --from wants earliest, latest, @UNIX_MS or a checkpoint "
                        "token\n");
        goto out;
    }
    if (co.start == FW_START_CHECKPOINT) {
        fw_checkpoint_t cp;
        if (fw_checkpoint_decode(co.start_token, co.start_token_len, &cp) == 0) {
            int same = strcmp(cp.category, o.category) == 0;
            if (!same)
                fprintf(stderr, "freeway tail: the --from token is for category %s\n", cp.category);
            fw_checkpoint_free(&cp);
            if (!same)
                goto out;
        }
    }
    if (strcmp(o.format, "raw") != 0 && strcmp(o.format, "json") != 0) {
        fprintf(stderr, "freeway tail: --format must be raw or json\n");
        goto out;
    }
    if (o.count < 0 || (o.timeout < 0 && o.timeout != -1) || o.checkpoint_records < 0 ||
        o.checkpoint_records > UINT32_MAX || o.checkpoint_every < 0 ||
        o.checkpoint_every > UINT32_MAX || o.credit == 0) {
        fprintf(stderr, "freeway tail: --count, --timeout and the checkpoint intervals must not "
                        "be negative, --credit must be positive\n");
        goto out;
    }
    size_t nbuckets = 0;
    if (o.buckets != NULL && parse_buckets(o.buckets, &buckets, &nbuckets) < 0) {
        fprintf(stderr, "freeway tail: --buckets wants a list such as 0,3,8-11 (buckets below "
                        "65536)\n");
        goto out;
    }
    status = 1;
    if (o.checkpoint_file != NULL) {
        size_t len = 0;
        rc = load_token_file(o.checkpoint_file, o.category, &file_token, &len, err, sizeof(err));
        if (rc == 0) {
            co.start = FW_START_CHECKPOINT;
            co.start_token = file_token;
            co.start_token_len = len;
        } else if (rc != -ENOENT) {
            fprintf(stderr, "freeway tail: %s\n", err);
            goto out;
        }
    }

    t.json = strcmp(o.format, "json") == 0;
    t.count = o.count;
    t.ckpt_file = o.checkpoint_file;
    co.zk = o.zk;
    co.ptail = o.ptail;
    co.category = o.category;
    co.buckets = buckets;
    co.nbuckets = nbuckets;
    co.checkpoint_every_records = (uint32_t)o.checkpoint_records;
    co.checkpoint_every_ms = (uint32_t)o.checkpoint_every;
    co.credit_bytes = o.credit;
    co.name = o.name;
    if (o.audit) {
        if (o.name == NULL || o.name[0] == '\0') {
            fprintf(stderr, "freeway tail: --audit needs --name NAME (the audit shows the "
                            "consumer by it)\n");
            goto out;
        }
        /* The reports' own producer: found like the writers, not audited itself. */
        fw_producer_options_t po;
        fw_producer_options_init(&po);
        po.zk = o.zk;
        po.audit_category = NULL;
        po.log_cb = on_audit_log;
        po.log_level = o.verbose ? FW_PRODUCER_LOG_DEBUG
                       : o.quiet ? FW_PRODUCER_LOG_ERROR
                                 : FW_PRODUCER_LOG_WARN;
        if ((rc = fw_producer_create(&audit_producer, &po)) < 0) {
            fprintf(stderr, "freeway tail: --audit: %s\n", fw_strerror(rc));
            goto out;
        }
        co.audit_producer = audit_producer;
    }
    co.on_record = on_record;
    co.on_checkpoint = on_checkpoint;
    co.on_gap = on_gap;
    co.arg = &t;
    co.log_cb = on_log;
    co.log_level = o.verbose ? FW_CONSUMER_LOG_DEBUG
                   : o.quiet ? FW_CONSUMER_LOG_ERROR
                             : FW_CONSUMER_LOG_WARN;
    fw_log_set_level(o.verbose ? FW_LOG_INFO : FW_LOG_ERROR);

    /*
     * A write to a closed pipe is an error to handle (stop, keep the last
     * good token), not a reason to die. SIGINT and SIGTERM are blocked while
     * the consumer starts, so that the ZooKeeper client's threads inherit the
     * mask and the handler runs on this thread only.
     */
    signal(SIGPIPE, SIG_IGN);
    sigset_t stops, old;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigprocmask(SIG_BLOCK, &stops, &old);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    /* A signal must not fail a write to stdout with EINTR (that would lose records). */
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = fw_consumer_create(&t.c, &co);
    if (rc < 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        fprintf(stderr, "freeway tail: %s\n",
                rc == -EINVAL ? "bad --zk or --ptail address list" : fw_strerror(rc));
        goto out;
    }
    g_consumer = t.c;
    sigprocmask(SIG_SETMASK, &old, NULL);

    rc = run(&t, o.timeout);

    sigprocmask(SIG_BLOCK, &stops, NULL);
    g_consumer = NULL;
    if (rc < 0)
        fprintf(stderr, "freeway tail: %s\n",
                fw_consumer_error(t.c)[0] ? fw_consumer_error(t.c) : fw_strerror(rc));
    /* The final token: what stdout holds now, unless it could not take everything. */
    if (flush_out(&t) == 0) {
        void *token;
        size_t len = 0;
        if (fw_consumer_checkpoint(t.c, &token, &len) == 0) {
            mark_printed(&t, token, len);
            free(token);
        }
    }
    fw_consumer_close(t.c);
    /* The consumer's final report is in the producer: deliver it before leaving. */
    if (audit_producer != NULL && fw_producer_close(audit_producer, 10000) < 0)
        fprintf(stderr, "freeway tail: the last audit report was not delivered within 10 s\n");
    audit_producer = NULL;
    if (t.out_error != 0 && t.out_error != EPIPE)
        fprintf(stderr, "freeway tail: writing records: %s\n", strerror(t.out_error));
    char *text = NULL;
    if (t.last_token != NULL && fw_consumer_token_to_text(t.last_token, t.last_len, &text) == 0)
        fprintf(stderr, "freeway tail: checkpoint %s\n", text);
    else
        fprintf(stderr, "freeway tail: no checkpoint yet\n");
    free(text);
    if (!o.quiet)
        fprintf(stderr, "freeway tail: %" PRIu64 " records\n", t.printed);
    /* A reader that went away (EPIPE) ends the run like --count does. */
    status = rc < 0 || t.save_error != 0 || (t.out_error != 0 && t.out_error != EPIPE) ? 1 : 0;
out:
    if (audit_producer != NULL)
        fw_producer_close(audit_producer, 0);
    free(t.last_token);
    free(buckets);
    free(from_token);
    free(file_token);
    fw_config_free(tail_opts, &o);
    free(args);
    free(spare);
    return status;
}
