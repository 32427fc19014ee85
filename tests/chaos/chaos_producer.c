/*
 * chaos_producer: the producer the fault-injection run (tests/chaos/test_chaos.c) starts and
 * kills -9 at random moments. It sends numbered records at a steady rate through one spooled
 * producer and appends each delivery callback to an acked file, so the run can check that
 * every record the producer was told is safe is stored exactly once. It checks nothing itself.
 *
 *   chaos_producer --zk SPEC --category CAT --index I --life L --spool DIR --acked FILE
 *                  [--rate N] [--keys K] [--spool-after MS] [--timeout MS] [--drain-only]
 *
 * Record seq (0, 1, 2, ...) has key "k<seq % K>" and value "p<I>.l<L>.s<seq>". Each callback
 * appends one line to FILE with one write(2): "<value> <spooled 0|1>" on success, "<value> fail
 * <status>" otherwise. FILE is not fsync'd: the page cache survives kill -9, the fault studied.
 * On SIGTERM or SIGINT it stops sending, drains the spool, closes and prints a summary.
 * --drain-only sends nothing: it empties a killed producer's spool and exits the same way.
 *
 * Exit codes: 0 when the spool drained and the close delivered everything within --timeout
 * and FILE took every line; 1 when not, or the producer or FILE could not be opened; 2 for a
 * usage error.
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
#include <time.h>
#include <unistd.h>

#define NS_PER_S     1000000000LL
#define TICK_NS      (10 * 1000000LL) /* the send loop looks at the stop flag this often */
#define REBASE_NS    NS_PER_S         /* further behind than this: no burst to catch up */
#define WARN_EVERY_S 1

static volatile sig_atomic_t g_stop;
static char g_who[64] = "chaos_producer";
static unsigned long g_index, g_life;
static int g_acked_fd = -1;

/* Counted on the I/O thread; read after fw_producer_close has joined it. */
static uint64_t g_acked, g_spooled, g_failed, g_unwritten;

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

static void on_log(fw_producer_log_level_t level, const char *message, void *arg)
{
    (void)arg;
    say((int)level, "%s", message);
}

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* One line per callback, one write(2) per line: O_APPEND keeps lines whole across lives. */
static void on_delivery(const fw_delivery_t *d, void *arg)
{
    uint64_t seq = (uint64_t)(uintptr_t)arg;
    char line[128];
    int n;
    if (d->status == 0)
        n = snprintf(line, sizeof(line), "p%lu.l%lu.s%" PRIu64 " %d\n", g_index, g_life, seq,
                     d->spooled ? 1 : 0);
    else
        n = snprintf(line, sizeof(line), "p%lu.l%lu.s%" PRIu64 " fail %d\n", g_index, g_life, seq,
                     d->status);
    if (d->status != 0)
        g_failed++;
    else if (d->spooled)
        g_spooled++;
    else
        g_acked++;
    if (write(g_acked_fd, line, (size_t)n) != n && g_unwritten++ == 0)
        say(FW_PRODUCER_LOG_ERROR, "cannot append to the acked file: %s",
            strerror(errno ? errno : EIO));
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: chaos_producer --zk SPEC --category CAT --index I --life L --spool DIR\n"
            "                      --acked FILE [--rate N] [--keys K] [--spool-after MS]\n"
            "                      [--timeout MS] [--drain-only]\n\n"
            "Sends records \"p<I>.l<L>.s<seq>\" keyed \"k<seq %% K>\" at N a second (default 300,\n"
            "K default 64) and appends \"<value> <spooled 0|1>\" or \"<value> fail <status>\" to\n"
            "FILE for each delivery. SIGTERM/SIGINT: stop, drain the spool and close within\n"
            "--timeout (default 60000 ms). --spool-after defaults to 1000 ms. --drain-only sends\n"
            "nothing and only drains DIR. Exits 0 if the drain and the close succeeded, 1 if\n"
            "not, 2 for a usage error.\n");
}

/* A message and a pointer to --help: exit status 2. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    say(FW_PRODUCER_LOG_ERROR, "%s (chaos_producer --help for usage)", msg);
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

static int64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * NS_PER_S + t.tv_nsec;
}

/* Sleeps towards due_ns (CLOCK_MONOTONIC) for at most one tick; 1 once due_ns has come. */
static int sleep_towards(int64_t due_ns)
{
    int64_t now = mono_ns();
    if (now >= due_ns)
        return 1;
    int64_t until = due_ns - now > TICK_NS ? now + TICK_NS : due_ns;
    struct timespec ts = {.tv_sec = until / NS_PER_S, .tv_nsec = until % NS_PER_S};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    return 0;
}

/* Sends seq 0, 1, 2, ... on an absolute schedule until a signal; returns how many were taken. */
static uint64_t send_loop(fw_producer_t *p, const char *category, unsigned long rate,
                          unsigned long keys, uint64_t *refused)
{
    int64_t base_ns = mono_ns(), last_warn_ns = 0;
    uint64_t base_seq = 0, seq, quiet = 0;
    for (seq = 0; !g_stop; seq++) {
        int64_t due = base_ns + (int64_t)((seq - base_seq) * (uint64_t)NS_PER_S / rate);
        if (mono_ns() - due > REBASE_NS) {
            base_ns = due = mono_ns();
            base_seq = seq;
        }
        while (!g_stop && !sleep_towards(due))
            ;
        if (g_stop)
            break;
        char key[32], value[96];
        int klen = snprintf(key, sizeof(key), "k%lu", (unsigned long)(seq % keys));
        int vlen = snprintf(value, sizeof(value), "p%lu.l%lu.s%" PRIu64, g_index, g_life, seq);
        int rc = fw_producer_send(p, category, key, (size_t)klen, value, (size_t)vlen, 0,
                                  on_delivery, (void *)(uintptr_t)seq);
        if (rc == 0)
            continue;
        (*refused)++;
        int64_t now = mono_ns();
        if (now - last_warn_ns < WARN_EVERY_S * NS_PER_S) {
            quiet++;
            continue;
        }
        say(FW_PRODUCER_LOG_WARN, "fw_producer_send of %s: %s (%" PRIu64 " more not said)", value,
            fw_strerror(rc), quiet);
        last_warn_ns = now;
        quiet = 0;
    }
    return seq - *refused;
}

int main(int argc, char **argv)
{
    const char *zk = NULL, *category = NULL, *index = NULL, *life = NULL, *spool = NULL,
               *acked = NULL, *rate_text = "300", *keys_text = "64", *after_text = "1000",
               *timeout_text = "60000";
    int drain_only = 0, help = 0, opt, i;
    /* The options with a value, in the order of `values`; then the switches. */
    const struct option longopts[] = {
        {"zk", required_argument, NULL, 0},
        {"category", required_argument, NULL, 0},
        {"index", required_argument, NULL, 0},
        {"life", required_argument, NULL, 0},
        {"spool", required_argument, NULL, 0},
        {"acked", required_argument, NULL, 0},
        {"rate", required_argument, NULL, 0},
        {"keys", required_argument, NULL, 0},
        {"spool-after", required_argument, NULL, 0},
        {"timeout", required_argument, NULL, 0},
        {"drain-only", no_argument, &drain_only, 1},
        {"help", no_argument, &help, 1},
        {NULL, 0, NULL, 0},
    };
    const char **values[] = {&zk,    &category,  &index,     &life,       &spool,
                             &acked, &rate_text, &keys_text, &after_text, &timeout_text};
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
    if (!zk || !category || !index || !life || !spool || !acked)
        return usage_error("--zk, --category, --index, --life, --spool and --acked are required");
    unsigned long rate, keys, spool_after, timeout;
    if (parse_num("index", index, 0, UINT32_MAX, &g_index) < 0 ||
        parse_num("life", life, 0, UINT32_MAX, &g_life) < 0 ||
        parse_num("rate", rate_text, 1, 1000000, &rate) < 0 ||
        parse_num("keys", keys_text, 1, 1000000, &keys) < 0 ||
        parse_num("spool-after", after_text, 1, UINT32_MAX, &spool_after) < 0 ||
        parse_num("timeout", timeout_text, 1, INT32_MAX, &timeout) < 0)
        return 2;
    snprintf(g_who, sizeof(g_who), "chaos_producer[%lu.%lu]", g_index, g_life);

    g_acked_fd = open(acked, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (g_acked_fd < 0) {
        say(FW_PRODUCER_LOG_ERROR, "cannot open %s: %s", acked, strerror(errno));
        return 1;
    }
    fw_producer_options_t o;
    fw_producer_options_init(&o);
    o.zk = zk;
    o.spool_dir = spool;
    o.spool_after_ms = (uint32_t)spool_after;
    o.log_cb = on_log;

    /* The producer's threads inherit a mask without SIGINT/SIGTERM: they come to this thread. */
    sigset_t old;
    chaos_catch_stops(on_signal, &old);
    fw_producer_t *p;
    int rc = fw_producer_create(&p, &o);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        say(FW_PRODUCER_LOG_ERROR, "fw_producer_create: %s", fw_strerror(rc));
        close(g_acked_fd);
        return 1;
    }
    if (drain_only)
        say(FW_PRODUCER_LOG_INFO, "draining the spool %s", spool);
    else
        say(FW_PRODUCER_LOG_INFO, "sending to %s at %lu records/s, spool %s", category, rate,
            spool);

    uint64_t refused = 0, sent = 0;
    if (!drain_only)
        sent = send_loop(p, category, rate, keys, &refused);
    int drain_rc = fw_producer_drain_spool(p, (int)timeout);
    if (drain_rc < 0)
        say(FW_PRODUCER_LOG_ERROR, "fw_producer_drain_spool: %s", fw_strerror(drain_rc));
    fw_producer_stats_t st;
    fw_producer_stats(p, &st);
    int close_rc = fw_producer_close(p, (int)timeout);
    if (close_rc < 0)
        say(FW_PRODUCER_LOG_ERROR, "fw_producer_close: %s", fw_strerror(close_rc));
    close(g_acked_fd);
    say(FW_PRODUCER_LOG_INFO,
        "summary: sent %" PRIu64 " (%" PRIu64 " refused by send); callbacks: acked %" PRIu64
        ", spooled %" PRIu64 ", failed %" PRIu64 ", not written to the acked file %" PRIu64
        "; producer: acked %" PRIu64 ", spooled %" PRIu64 ", failed %" PRIu64
        ", replayed and acked %" PRIu64 ", replay refused %" PRIu64 ", left in the spool %" PRIu64,
        sent, refused, g_acked, g_spooled, g_failed, g_unwritten, st.records_acked,
        st.records_spooled, st.records_failed, st.records_replay_acked, st.records_replay_failed,
        st.spool_records);
    return drain_rc == 0 && close_rc == 0 && g_unwritten == 0 ? 0 : 1;
}
