/*
 * chaos_consumer: the consumer the fault-injection run (tests/chaos/test_chaos.c) starts and
 * kills -9 at random moments. It reads a category from the earliest record and keeps its
 * state in one append-only text file whose checkpoint lines commit it, so that "state +
 * checkpoint" is atomic across kill -9 and the run can check exactly-once delivery.
 *
 *   chaos_consumer --zk SPEC --category CAT --name NAME --state FILE [--audit]
 *                  [--checkpoint-records N]
 *
 * FILE holds one line per event:
 *
 *   R <bucket> <value>      a record handed to on_record (the value's bytes, unescaped)
 *   G <bucket> <reason>     a gap (newlines in the reason become spaces): a failure to report
 *   C <token in hex>        a checkpoint; written, then fflush + fdatasync: it commits the lines
 *                           before it
 *
 * At start everything after the last complete C line is cut off (it was not committed and
 * comes again from that checkpoint) and reading resumes from its token, or from the earliest
 * record if there is none. The file is also flushed (not synced) after each poll that
 * delivered records, so a kill -9 leaves uncommitted lines behind for the next start to cut.
 * On SIGTERM or SIGINT it commits a last checkpoint, closes and prints a summary. --audit
 * sends the consumer's audit reports through a producer of its own.
 *
 * Exit codes: 0 after a signal; 1 on a fatal consumer error or when FILE cannot be read,
 * written or synced; 2 for a usage error.
 */
#include "chaos_cli.h"
#include "freeway.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define STATE_BUFFER (1u << 20)

static volatile sig_atomic_t g_stop;
static fw_consumer_t *volatile g_consumer;
static char g_who[160] = "chaos_consumer";

typedef struct state_s {
    FILE *f;
    fw_consumer_t *c;
    int failed; /* FILE could not take a line: stop, exit 1 */
} state_t;

static const char *const level_words[] = {"DEBUG", "INFO", "WARN", "ERROR"};

__attribute__((format(printf, 2, 3))) static void say(int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %s %s\n", g_who, level_words[level & 3], msg);
}

static void on_log(fw_consumer_log_level_t level, const char *message, void *arg)
{
    (void)arg;
    say((int)level, "%s", message);
}

static void on_audit_log(fw_producer_log_level_t level, const char *message, void *arg)
{
    (void)arg;
    say((int)level, "audit producer: %s", message);
}

/* fw_consumer_wakeup is safe in a signal handler (freeway.h). */
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
    fw_consumer_t *c = g_consumer;
    if (c != NULL)
        fw_consumer_wakeup(c);
}

/* Notes the first error on FILE (in errno) and ends the poll: the run then exits 1. */
static void state_failed(state_t *s, const char *what)
{
    if (s->failed++)
        return;
    say(FW_CONSUMER_LOG_ERROR, "%s the state file: %s", what, strerror(errno ? errno : EIO));
    if (s->c != NULL)
        fw_consumer_break(s->c);
}

/* Appends "C <hex>" and makes FILE durable up to it: ptail's marks, and the one at exit. */
static void on_checkpoint(const void *token, size_t len, void *arg)
{
    state_t *s = arg;
    const unsigned char *t = token;
    fputs("C ", s->f);
    for (size_t i = 0; i < len; i++)
        fprintf(s->f, "%02x", t[i]);
    fputc('\n', s->f);
    if (fflush(s->f) != 0 || fdatasync(fileno(s->f)) != 0)
        state_failed(s, "committing");
}

static void on_record(const fw_consumer_record_t *r, void *arg)
{
    state_t *s = arg;
    fprintf(s->f, "R %" PRIu32 " ", r->bucket);
    fwrite(r->value, 1, r->value_len, s->f);
    fputc('\n', s->f);
    if (ferror(s->f))
        state_failed(s, "writing to");
}

static void on_gap(const fw_consumer_gap_t *g, void *arg)
{
    state_t *s = arg;
    fprintf(s->f, "G %" PRIu32 " ", g->bucket);
    for (const char *p = g->reason; *p != '\0'; p++)
        fputc(*p == '\n' ? ' ' : *p, s->f);
    fputc('\n', s->f);
    if (ferror(s->f))
        state_failed(s, "writing to");
}

/* n lowercase hex digits into *out (malloc'd) and *len; 0, or -1 if they are not that. */
static int hex_decode(const char *hex, size_t n, void **out, size_t *len)
{
    unsigned char *t = n > 0 && n % 2 == 0 ? malloc(n / 2) : NULL;
    for (size_t i = 0; t != NULL && i < n; i++) {
        int c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) {
            free(t);
            return -1;
        }
        t[i / 2] = (unsigned char)(i % 2 ? t[i / 2] | v : v << 4);
    }
    if (t == NULL)
        return -1;
    *out = t;
    *len = n / 2;
    return 0;
}

/*
 * Reads the state file at path, if any: *token (malloc'd, NULL if there is no complete C
 * line) is the last checkpoint's, and the file is cut just after that line. Returns an fd
 * open for appending, or -1 with a message.
 */
static int state_recover(const char *path, void **token, size_t *token_len)
{
    *token = NULL;
    *token_len = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    FILE *f = fd < 0 ? NULL : fdopen(dup(fd), "r");
    if (f == NULL) {
        say(FW_CONSUMER_LOG_ERROR, "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char *line = NULL, *last = NULL;
    size_t cap = 0, last_len = 0;
    ssize_t n;
    off_t pos = 0, keep = 0;
    /* Whole lines only: a torn last line was never committed. */
    while ((n = getline(&line, &cap, f)) > 0 && line[n - 1] == '\n') {
        pos += n;
        if (line[0] == 'C' && line[1] == ' ') {
            free(last);
            last = malloc((size_t)n);
            if (last != NULL)
                memcpy(last, line, (size_t)n);
            last_len = (size_t)n;
            keep = pos;
        }
    }
    int bad = ferror(f) ||
              (keep > 0 && (last == NULL || hex_decode(last + 2, last_len - 3, token, token_len)));
    free(line);
    free(last);
    fclose(f);
    off_t end = bad ? -1 : lseek(fd, 0, SEEK_END);
    if (end < 0 || ftruncate(fd, keep) != 0) {
        say(FW_CONSUMER_LOG_ERROR, "%s: %s", path,
            bad ? "cannot read its last checkpoint" : strerror(errno));
        free(*token);
        *token = NULL;
        close(fd);
        return -1;
    }
    say(FW_CONSUMER_LOG_INFO, "state %s: %lld bytes committed, %lld uncommitted bytes cut", path,
        (long long)keep, (long long)(end - keep));
    return fd;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: chaos_consumer --zk SPEC --category CAT --name NAME --state FILE\n"
                 "                      [--audit] [--checkpoint-records N (default 200)]\n"
                 "Appends R, G and C (checkpoint) lines to FILE; resumes from its last C line.\n"
                 "Exits 0 after SIGTERM/SIGINT, 1 on a fatal error, 2 for a usage error.\n");
}

/* A message and a pointer to --help: exit status 2. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    say(FW_CONSUMER_LOG_ERROR, "%s (chaos_consumer --help for usage)", msg);
    return 2;
}

/* A decimal in [lo, hi] into *out; else -1 after a usage error. */
static int parse_num(const char *flag, const char *text, unsigned long lo, unsigned long hi,
                     unsigned long *out)
{
    if (chaos_number(text, lo, hi, out) == 0)
        return 0;
    usage_error("--%s wants a number from %lu to %lu, not \"%s\"", flag, lo, hi, text);
    return -1;
}

int main(int argc, char **argv)
{
    const char *zk = NULL, *category = NULL, *name = NULL, *path = NULL, *every_text = "200";
    int audit = 0, help = 0, opt, i;
    /* The options with a value, in the order of `values`; then the switches. */
    const struct option longopts[] = {
        {"zk", required_argument, NULL, 0},
        {"category", required_argument, NULL, 0},
        {"name", required_argument, NULL, 0},
        {"state", required_argument, NULL, 0},
        {"checkpoint-records", required_argument, NULL, 0},
        {"audit", no_argument, &audit, 1},
        {"help", no_argument, &help, 1},
        {NULL, 0, NULL, 0},
    };
    const char **values[] = {&zk, &category, &name, &path, &every_text};
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, &i)) != -1) {
        if (opt != 0)
            return usage_error("unknown option or missing value: %s", argv[optind - 1]);
        if (longopts[i].has_arg)
            *values[i] = optarg;
    }
    if (help) {
        usage(stdout);
        return 0;
    }
    if (optind < argc)
        return usage_error("unexpected argument \"%s\"", argv[optind]);
    if (!zk || !category || !name || name[0] == '\0' || !path)
        return usage_error("--zk, --category, --name and --state are required");
    unsigned long every;
    if (parse_num("checkpoint-records", every_text, 0, UINT32_MAX, &every) < 0)
        return 2;
    snprintf(g_who, sizeof(g_who), "chaos_consumer[%s]", name);

    void *token;
    size_t token_len;
    int fd = state_recover(path, &token, &token_len);
    if (fd < 0)
        return 1;
    state_t s = {.f = fdopen(fd, "a")};
    if (s.f == NULL || setvbuf(s.f, NULL, _IOFBF, STATE_BUFFER) != 0) {
        say(FW_CONSUMER_LOG_ERROR, "cannot open %s for appending: %s", path, strerror(errno));
        free(token);
        return 1;
    }

    fw_consumer_options_t o;
    fw_consumer_options_init(&o);
    o.zk = zk;
    o.category = category;
    o.name = name;
    o.start = token != NULL ? FW_START_CHECKPOINT : FW_START_EARLIEST;
    o.start_token = token;
    o.start_token_len = token_len;
    o.checkpoint_every_records = (uint32_t)every;
    o.on_record = on_record;
    o.on_checkpoint = on_checkpoint;
    o.on_gap = on_gap;
    o.arg = &s;
    o.log_cb = on_log;

    /* The library's threads inherit a mask without SIGINT/SIGTERM: they come to this thread. */
    sigset_t old;
    chaos_catch_stops(on_signal, &old);

    int status = 1, rc = 0;
    fw_producer_t *ap = NULL;
    if (audit) {
        /* The reports' own producer; it does not report on itself. */
        fw_producer_options_t po;
        fw_producer_options_init(&po);
        po.zk = zk;
        po.audit_category = NULL;
        po.log_cb = on_audit_log;
        if ((rc = fw_producer_create(&ap, &po)) < 0) {
            say(FW_CONSUMER_LOG_ERROR, "fw_producer_create (--audit): %s", fw_strerror(rc));
            goto out;
        }
        o.audit_producer = ap;
    }
    if ((rc = fw_consumer_create(&s.c, &o)) < 0) {
        say(FW_CONSUMER_LOG_ERROR, "fw_consumer_create: %s", fw_strerror(rc));
        goto out;
    }
    g_consumer = s.c;
    sigprocmask(SIG_SETMASK, &old, NULL);
    say(FW_CONSUMER_LOG_INFO, "reading %s from %s", category,
        token != NULL ? "the last checkpoint" : "the earliest record");

    while (!g_stop && !s.failed) {
        rc = fw_consumer_poll(s.c, 200);
        if (rc < 0) {
            say(FW_CONSUMER_LOG_ERROR, "fw_consumer_poll: %s (%s)", fw_strerror(rc),
                fw_consumer_error(s.c));
            break;
        }
        /* Visible, not committed: a kill -9 now leaves lines for the next start to cut. */
        if (rc > 0 && fflush(s.f) != 0)
            state_failed(&s, "flushing");
    }
    chaos_block_stops(NULL);
    g_consumer = NULL;
    if (rc >= 0 && !s.failed) {
        void *last;
        size_t len;
        int crc = fw_consumer_checkpoint(s.c, &last, &len);
        if (crc == 0) {
            on_checkpoint(last, len, &s);
            free(last);
        } else if (crc != -EAGAIN) {
            say(FW_CONSUMER_LOG_ERROR, "fw_consumer_checkpoint: %s", fw_strerror(crc));
            s.failed = 1;
        }
        status = s.failed ? 1 : 0;
    }
    fw_consumer_stats_t st;
    fw_consumer_stats(s.c, &st);
    say(FW_CONSUMER_LOG_INFO,
        "summary: %" PRIu64 " records (%" PRIu64 " skipped on resume) in %" PRIu64
        " blocks, %" PRIu64 " checkpoints, %" PRIu64 " gaps, %" PRIu64 " subscriptions, %" PRIu64
        " disconnects, %" PRIu64 " bad blocks, %" PRIu64 " jumps",
        st.records, st.records_skipped, st.blocks, st.checkpoints, st.gaps, st.subscriptions,
        st.disconnects, st.bad_blocks, st.jumps);
out:
    fw_consumer_close(s.c);
    if (ap != NULL && fw_producer_close(ap, 10000) < 0)
        say(FW_CONSUMER_LOG_WARN, "the last audit report was not delivered within 10 s");
    fclose(s.f);
    free(token);
    return status;
}
