/*
 * puma_counter: a small Puma-style consumer. It reads one or more
 * categories through ptail and counts records per category and minute (of
 * the records' own timestamps), the way Facebook's Puma turned Data Freeway
 * streams into numbers in real time.
 *
 * Exactly once, with nothing but the public API (client/freeway.h): the
 * counts and the checkpoint token of every category go into one state file,
 * written atomically (temp file, fsync, rename, fsync the directory), at the
 * checkpoints ptail marks. A token taken with fw_consumer_checkpoint() covers
 * exactly the records handed to on_record so far, which are exactly the
 * records counted, so the file always holds counts and positions that
 * agree. Killed at any moment, the counter restarts from the file: the
 * records after its tokens are counted on top of its counts, none twice and
 * none missed.
 *
 *   puma_counter --state FILE (--ptail HOST:PORT | --zk CONNECT) -c CATEGORY [-c ...]
 *
 * The state file is text, one fact per line:
 *
 *   puma-counter 1
 *   token CATEGORY BASE64URL-TOKEN      (or "-": start at the earliest record)
 *   count CATEGORY MINUTE COUNT         (MINUTE: the timestamp / 60000)
 *   end LINES                           (how many lines came before it)
 */
#include "client/freeway.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CATEGORIES 16

/* One minute's count. */
typedef struct minute_s {
    int64_t minute;
    uint64_t count;
} minute_t;

/* A category: its consumer, the token it started from, and its counts by minute (sorted). */
typedef struct category_s {
    char name[129];
    fw_consumer_t *consumer;
    char *start_token; /* text, from the state file; NULL: earliest */
    minute_t *minutes;
    size_t nminutes, cap;
    struct counter_s *counter;
} category_t;

typedef struct counter_s {
    const char *state_path;
    category_t cats[MAX_CATEGORIES];
    int ncats;
    int failed; /* the state could not be saved: stop, since counting on would lose it */
} counter_t;

static volatile sig_atomic_t g_stop;
static counter_t *g_counter;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
    for (int i = 0; g_counter != NULL && i < g_counter->ncats; i++)
        if (g_counter->cats[i].consumer != NULL)
            fw_consumer_wakeup(g_counter->cats[i].consumer);
}

/* ---- counts ------------------------------------------------------------------------------ */

/* The count of a minute, created at 0; records mostly come in time order, so look at the end. */
static uint64_t *count_of(category_t *c, int64_t minute)
{
    size_t lo = 0, hi = c->nminutes;
    if (hi > 0 && c->minutes[hi - 1].minute == minute)
        return &c->minutes[hi - 1].count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->minutes[mid].minute < minute)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < c->nminutes && c->minutes[lo].minute == minute)
        return &c->minutes[lo].count;
    if (c->nminutes == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        minute_t *m = realloc(c->minutes, cap * sizeof(*m));
        if (m == NULL)
            return NULL;
        c->minutes = m;
        c->cap = cap;
    }
    memmove(&c->minutes[lo + 1], &c->minutes[lo], (c->nminutes - lo) * sizeof(*c->minutes));
    c->minutes[lo] = (minute_t){minute, 0};
    c->nminutes++;
    return &c->minutes[lo].count;
}

static category_t *category_named(counter_t *k, const char *name)
{
    for (int i = 0; i < k->ncats; i++)
        if (strcmp(k->cats[i].name, name) == 0)
            return &k->cats[i];
    return NULL;
}

/* ---- the state file ---------------------------------------------------------------------- */

/* Writes path atomically: a crash leaves the old file or the new one, never a mix. */
static int write_atomically(const char *path, const char *data, size_t len)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno != EINTR)
            rc = -errno;
        else if (n > 0)
            off += (size_t)n;
    }
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
    /* The rename lives in the directory: sync it too, or a crash may undo it. */
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    rc = fsync(dfd) < 0 ? -errno : 0;
    close(dfd);
    return rc;
}

/* A growing text buffer for the state file. */
typedef struct text_s {
    char *data;
    size_t len, cap;
    int lines;
    int failed;
} text_t;

static void text_line(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_line(text_t *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            t->lines++;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *d = realloc(t->data, cap);
        if (d == NULL) {
            t->failed = 1;
            return;
        }
        t->data = d;
        t->cap = cap;
    }
}

/*
 * Saves every category's counts with a token of exactly the records counted.
 * 0, or -EAGAIN when a category cannot name its place yet (a later
 * checkpoint saves), or an error.
 */
static int save_state(counter_t *k)
{
    text_t t = {.data = malloc(4096), .cap = 4096};
    if (t.data == NULL)
        return -ENOMEM;
    text_line(&t, "puma-counter 1\n");
    int rc = 0;
    for (int i = 0; i < k->ncats && rc == 0; i++) {
        category_t *c = &k->cats[i];
        void *token;
        size_t len;
        rc = fw_consumer_checkpoint(c->consumer, &token, &len);
        if (rc == -EAGAIN) {
            /* No place known yet: fine if nothing was counted since the start token. */
            fw_consumer_stats_t st;
            fw_consumer_stats(c->consumer, &st);
            if (st.records != 0)
                break;
            text_line(&t, "token %s %s\n", c->name, c->start_token ? c->start_token : "-");
            rc = 0;
        } else if (rc == 0) {
            char *text;
            rc = fw_consumer_token_to_text(token, len, &text);
            free(token);
            if (rc == 0) {
                text_line(&t, "token %s %s\n", c->name, text);
                free(text);
            }
        }
        for (size_t m = 0; rc == 0 && m < c->nminutes; m++)
            text_line(&t, "count %s %" PRId64 " %" PRIu64 "\n", c->name, c->minutes[m].minute,
                      c->minutes[m].count);
    }
    if (rc == 0) {
        text_line(&t, "end %d\n", t.lines);
        rc = t.failed ? -ENOMEM : write_atomically(k->state_path, t.data, t.len);
    }
    free(t.data);
    return rc;
}

/* Loads the state file if there is one. 0, or -1 with a message on stderr. */
static int load_state(counter_t *k)
{
    FILE *f = fopen(k->state_path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0; /* the first run */
        fprintf(stderr, "puma_counter: %s: %s\n", k->state_path, strerror(errno));
        return -1;
    }
    char line[8192], name[129], value[8000];
    int lines = 0, ended = 0, ok = 1;
    while (ok && !ended && fgets(line, sizeof(line), f) != NULL) {
        int64_t minute;
        uint64_t count;
        int end_lines;
        if (lines == 0) {
            ok = strcmp(line, "puma-counter 1\n") == 0;
        } else if (sscanf(line, "token %128s %7999s", name, value) == 2) {
            category_t *c = category_named(k, name);
            if (c != NULL && strcmp(value, "-") != 0)
                ok = (c->start_token = strdup(value)) != NULL;
        } else if (sscanf(line, "count %128s %" SCNd64 " %" SCNu64, name, &minute, &count) == 3) {
            category_t *c = category_named(k, name);
            uint64_t *n = c != NULL ? count_of(c, minute) : NULL;
            ok = c == NULL || n != NULL;
            if (n != NULL)
                *n = count;
        } else if (sscanf(line, "end %d", &end_lines) == 1) {
            ok = end_lines == lines;
            ended = 1;
        } else {
            ok = 0;
        }
        lines++;
    }
    fclose(f);
    if (!ok || !ended) {
        fprintf(stderr, "puma_counter: %s is not a complete state file (line %d)\n", k->state_path,
                lines);
        return -1;
    }
    return 0;
}

/* ---- the consumers ----------------------------------------------------------------------- */

static void on_record(const fw_consumer_record_t *r, void *arg)
{
    category_t *c = arg;
    /* Floor division: records before 1970 land in the right minute too. */
    int64_t minute = r->timestamp >= 0 ? r->timestamp / 60000 : -((-r->timestamp + 59999) / 60000);
    uint64_t *n = count_of(c, minute);
    if (n == NULL) {
        fprintf(stderr, "puma_counter: out of memory\n");
        abort(); /* the state on disk is still consistent; a restart resumes from it */
    }
    (*n)++;
}

static void on_checkpoint(const void *token, size_t len, void *arg)
{
    (void)token;
    (void)len;
    category_t *c = arg;
    counter_t *k = c->counter;
    int rc = save_state(k);
    if (rc < 0 && rc != -EAGAIN) {
        fprintf(stderr, "puma_counter: cannot save %s: %s\n", k->state_path, strerror(-rc));
        k->failed = 1;
        fw_consumer_break(c->consumer);
    }
}

static void on_log(fw_consumer_log_level_t level, const char *message, void *arg)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    fprintf(stderr, "puma_counter: %s: %s: %s\n", (const char *)arg,
            level <= FW_CONSUMER_LOG_ERROR ? names[level] : "?", message);
}

static int start_consumer(category_t *c, const char *ptail, const char *zk, uint32_t every_ms)
{
    fw_consumer_options_t o;
    fw_consumer_options_init(&o);
    o.category = c->name;
    o.ptail = ptail;
    o.zk = zk;
    o.name = "puma_counter";
    o.on_record = on_record;
    o.on_checkpoint = on_checkpoint;
    o.arg = c;
    o.log_cb = on_log;
    o.log_arg = c->name;
    o.checkpoint_every_records = 0; /* by time: one fsync per interval, whatever the rate */
    o.checkpoint_every_ms = every_ms;
    void *token = NULL;
    size_t len = 0;
    o.start = FW_START_EARLIEST;
    if (c->start_token != NULL) {
        int rc = fw_consumer_token_from_text(c->start_token, &token, &len);
        if (rc < 0) {
            fprintf(stderr, "puma_counter: the saved token of %s does not decode (%d)\n", c->name,
                    rc);
            return -1;
        }
        o.start = FW_START_CHECKPOINT;
        o.start_token = token;
        o.start_token_len = len;
    }
    int rc = fw_consumer_create(&c->consumer, &o);
    free(token);
    if (rc < 0) {
        fprintf(stderr, "puma_counter: cannot read %s: %d\n", c->name, rc);
        return -1;
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: puma_counter --state FILE (--ptail HOST:PORT[,...] | --zk CONNECT) -c CATEGORY "
            "[-c CATEGORY ...] [--checkpoint-ms MS]\n"
            "Counts records per category and minute, exactly once across crashes: the counts and\n"
            "the stream positions are saved together, atomically, in FILE at every checkpoint.\n"
            "SIGTERM or SIGINT saves and exits 0.\n");
}

int main(int argc, char **argv)
{
    static counter_t k;
    const char *ptail = NULL, *zk = NULL;
    uint32_t every_ms = 1000;
    static const struct option longopts[] = {
        {"state", required_argument, NULL, 's'},
        {"ptail", required_argument, NULL, 'p'},
        {"zk", required_argument, NULL, 'z'},
        {"category", required_argument, NULL, 'c'},
        {"checkpoint-ms", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            k.state_path = optarg;
            break;
        case 'p':
            ptail = optarg;
            break;
        case 'z':
            zk = optarg;
            break;
        case 'c':
            if (k.ncats == MAX_CATEGORIES || strlen(optarg) > 128) {
                fprintf(stderr, "puma_counter: at most %d categories of 128 bytes\n",
                        MAX_CATEGORIES);
                return 2;
            }
            snprintf(k.cats[k.ncats].name, sizeof(k.cats[k.ncats].name), "%s", optarg);
            k.cats[k.ncats].counter = &k;
            k.ncats++;
            break;
        case 'm':
            every_ms = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (k.state_path == NULL || k.ncats == 0 || optind != argc || every_ms == 0) {
        usage(stderr);
        return 2;
    }
    if (load_state(&k) < 0)
        return 1;
    for (int i = 0; i < k.ncats; i++)
        if (start_consumer(&k.cats[i], ptail, zk, every_ms) < 0)
            return 1;
    g_counter = &k;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int status = 0;
    while (!g_stop && !k.failed && status == 0) {
        for (int i = 0; i < k.ncats && !g_stop && !k.failed; i++) {
            /* One thread serves every consumer: short polls take turns. */
            int rc = fw_consumer_poll(k.cats[i].consumer, k.ncats == 1 ? 1000 : 50);
            if (rc < 0) {
                fprintf(stderr, "puma_counter: %s: %s\n", k.cats[i].name,
                        fw_consumer_error(k.cats[i].consumer));
                status = 1;
                break;
            }
        }
    }
    if (!k.failed && save_state(&k) < 0) {
        fprintf(stderr, "puma_counter: cannot save the final state\n");
        status = 1;
    }
    g_counter = NULL;
    for (int i = 0; i < k.ncats; i++) {
        fw_consumer_close(k.cats[i].consumer);
        free(k.cats[i].minutes);
        free(k.cats[i].start_token);
    }
    return k.failed ? 1 : status;
}
