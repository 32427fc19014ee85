/*
 * fwbench latency: end to end, from fw_producer_send() to the consumer's
 * on_record, in one process so both ends read the same monotonic clock. A
 * thread sends at a fixed rate; each record carries its sequence number and
 * send time in its first 32 bytes (hex, the rest is the input's line). The
 * main thread consumes the category through ptail from "latest". Records
 * sent during the warm-up are delivered but not measured. Also measured: the
 * producer's ack latency (send -> delivery callback) for the same records.
 */
#include "fwbench.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STAMP_LEN 32 /* 16 hex digits of sequence, 16 of send time */

typedef struct latency_s {
    fw_producer_t *p;
    fw_consumer_t *c;
    const char *category;
    const fwb_input_t *in;
    double rate;
    uint64_t total;                 /* records to send: rate x (warm-up + measured) */
    int64_t t0;                     /* the schedule's start */
    int64_t window_from, window_to; /* send times that are measured */
    _Atomic uint64_t sent, acked, failed;
    _Atomic int producer_done;
    int64_t max_behind_ns; /* how far the sender fell behind its schedule */
    fwb_samples_t e2e;     /* main thread only */
    fwb_samples_t ack;     /* producer I/O thread only */
    uint8_t *seen;         /* a bit per sequence number */
    uint64_t received, duplicates, foreign;
} latency_t;

static latency_t *g_run; /* the delivery callback's context (one run per process) */

static void put_hex(char *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = digits[v & 15];
}

static int get_hex(const char *in, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        char ch = in[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            d = (unsigned)(ch - 'a' + 10);
        else
            return -1;
        x = x << 4 | d;
    }
    *v = x;
    return 0;
}

static void on_delivery(const fw_delivery_t *d, void *arg)
{
    latency_t *r = g_run;
    int64_t sent_ns = (int64_t)(uintptr_t)arg;
    if (d->status != 0) {
        if (atomic_fetch_add(&r->failed, 1) == 0)
            fprintf(stderr, "fwbench latency: a record failed: %s\n", d->message);
        return;
    }
    atomic_fetch_add_explicit(&r->acked, 1, memory_order_relaxed);
    if (sent_ns >= r->window_from && sent_ns < r->window_to)
        fwb_samples_add(&r->ack, fwb_now_ns() - sent_ns);
}

static void on_record(const fw_consumer_record_t *rec, void *arg)
{
    latency_t *r = arg;
    int64_t now = fwb_now_ns();
    uint64_t seq, sent;
    if (rec->value_len < STAMP_LEN || get_hex(rec->value, &seq) < 0 ||
        get_hex((const char *)rec->value + 16, &sent) < 0 || seq >= r->total) {
        r->foreign++;
        return;
    }
    if (r->seen[seq / 8] & (1u << (seq % 8))) {
        r->duplicates++;
        return;
    }
    r->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
    r->received++;
    if ((int64_t)sent >= r->window_from && (int64_t)sent < r->window_to)
        fwb_samples_add(&r->e2e, now - (int64_t)sent);
}

static void on_producer_log(fw_producer_log_level_t level, const char *message, void *arg)
{
    (void)arg;
    fwb_log("latency producer", (int)level, message);
}

static void on_consumer_log(fw_consumer_log_level_t level, const char *message, void *arg)
{
    (void)arg;
    fwb_log("latency consumer", (int)level, message);
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    nanosleep(&ts, NULL);
}

/* The sender: record k is due at t0 + k / rate; whatever is due is sent at once. */
static void *sender_main(void *arg)
{
    latency_t *r = arg;
    char value[4096];
    uint64_t k = 0;
    while (k < r->total) {
        int64_t now = fwb_now_ns();
        uint64_t due = (uint64_t)((double)(now - r->t0) * r->rate / 1e9) + 1;
        if (due > r->total)
            due = r->total;
        if (k >= due) {
            int64_t next = r->t0 + (int64_t)((double)k * 1e9 / r->rate);
            sleep_ns(next - now > 1000000 ? 1000000 : next - now);
            continue;
        }
        int64_t behind = now - (r->t0 + (int64_t)((double)k * 1e9 / r->rate));
        if (behind > r->max_behind_ns)
            r->max_behind_ns = behind;
        for (; k < due; k++) {
            size_t n = (size_t)(k % r->in->count);
            size_t len = r->in->lengths[n];
            if (len > sizeof(value))
                len = sizeof(value);
            memcpy(value, r->in->data + r->in->offsets[n], len);
            if (len < STAMP_LEN) {
                memset(value + len, '.', STAMP_LEN - len);
                len = STAMP_LEN;
            }
            int64_t sent = fwb_now_ns();
            put_hex(value, k);
            put_hex(value + 16, (uint64_t)sent);
            int rc = fw_producer_send(r->p, r->category, NULL, 0, value, len, 0, on_delivery,
                                      (void *)(uintptr_t)sent);
            if (rc < 0) {
                fprintf(stderr, "fwbench latency: send refused: %s\n", fw_strerror(rc));
                atomic_fetch_add(&r->failed, 1);
            } else {
                atomic_fetch_add_explicit(&r->sent, 1, memory_order_relaxed);
            }
        }
    }
    fw_producer_flush(r->p, -1);
    atomic_store(&r->producer_done, 1);
    fw_consumer_wakeup(r->c);
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: fwbench latency --category C --input FILE --rate R [OPTIONS]\n\n"
                 "  --rate R              records per second\n"
                 "  --seconds S           measured seconds (default 10)\n"
                 "  --warmup S            seconds sent before, not measured (default 2)\n"
                 "  --cdf FILE            write the end-to-end latency CDF for gnuplot\n"
                 "  --ptail ADDRS         ptail servers instead of ZooKeeper discovery\n"
                 "  producer flags as in fwbench produce: --zk --acks --codec --batch-bytes\n"
                 "  --linger-ms --buffer --max-in-flight\n");
}

static void print_quantiles(const char *name, fwb_samples_t *s)
{
    fwb_samples_sort(s);
    printf("\"%s\": {\"samples\": %zu, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"p999_ms\": %.3f, \"max_ms\": %.3f}",
           name, s->len, fwb_samples_quantile_ms(s, 0.5), fwb_samples_quantile_ms(s, 0.9),
           fwb_samples_quantile_ms(s, 0.99), fwb_samples_quantile_ms(s, 0.999),
           fwb_samples_quantile_ms(s, 1.0));
}

int fwb_cmd_latency(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"zk", required_argument, NULL, 'z'},
        {"category", required_argument, NULL, 'c'},
        {"input", required_argument, NULL, 'i'},
        {"rate", required_argument, NULL, 'r'},
        {"seconds", required_argument, NULL, 's'},
        {"warmup", required_argument, NULL, 'w'},
        {"cdf", required_argument, NULL, 'o'},
        {"ptail", required_argument, NULL, 'p'},
        {"acks", required_argument, NULL, 'a'},
        {"codec", required_argument, NULL, 'C'},
        {"batch-bytes", required_argument, NULL, 'b'},
        {"linger-ms", required_argument, NULL, 'l'},
        {"buffer", required_argument, NULL, 'B'},
        {"max-in-flight", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    fw_producer_options_t po;
    fw_producer_options_init(&po);
    po.log_cb = on_producer_log;
    po.log_level = FW_PRODUCER_LOG_WARN;
    const char *category = NULL, *input = NULL, *cdf = NULL, *ptail = NULL;
    double rate = 0, seconds = 10, warmup = 2;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        int rc = fwb_producer_flag(&po, opt, optarg);
        if (rc == 1)
            continue;
        if (rc < 0) {
            fprintf(stderr, "fwbench latency: bad value '%s'\n", optarg);
            return 2;
        }
        switch (opt) {
        case 'c':
            category = optarg;
            break;
        case 'i':
            input = optarg;
            break;
        case 'r':
            rate = atof(optarg);
            break;
        case 's':
            seconds = atof(optarg);
            break;
        case 'w':
            warmup = atof(optarg);
            break;
        case 'o':
            cdf = optarg;
            break;
        case 'p':
            ptail = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (category == NULL || input == NULL || rate <= 0 || seconds <= 0 || warmup < 0) {
        usage(stderr);
        return 2;
    }

    fwb_input_t in;
    int rc = fwb_input_open(&in, input);
    if (rc < 0) {
        fprintf(stderr, "fwbench latency: %s: %s\n", input, fw_strerror(rc));
        return 1;
    }
    latency_t r = {.category = category, .in = &in, .rate = rate};
    g_run = &r;
    r.total = (uint64_t)(rate * (warmup + seconds));
    r.seen = calloc(r.total / 8 + 1, 1);
    if (r.seen == NULL)
        abort();

    fw_consumer_options_t co;
    fw_consumer_options_init(&co);
    co.zk = po.zk;
    co.ptail = ptail;
    co.category = category;
    co.start = FW_START_LATEST;
    co.name = "fwbench-latency";
    co.on_record = on_record;
    co.arg = &r;
    co.log_cb = on_consumer_log;
    co.log_level = FW_CONSUMER_LOG_WARN;
    int status = 1;
    if ((rc = fw_consumer_create(&r.c, &co)) < 0) {
        fprintf(stderr, "fwbench latency: consumer: %s\n", fw_strerror(rc));
        goto out;
    }
    /* Subscribed first, so "latest" is before the first record sent. */
    fw_consumer_stats_t cs;
    int64_t deadline = fwb_now_ns() + 30 * (int64_t)1000000000;
    do {
        if ((rc = fw_consumer_poll(r.c, 100)) < 0) {
            fprintf(stderr, "fwbench latency: consumer: %s\n", fw_consumer_error(r.c));
            goto out;
        }
        fw_consumer_stats(r.c, &cs);
    } while (cs.subscriptions == 0 && fwb_now_ns() < deadline);
    if (cs.subscriptions == 0) {
        fprintf(stderr, "fwbench latency: no ptail subscription within 30 s\n");
        goto out;
    }
    if ((rc = fw_producer_create(&r.p, &po)) < 0) {
        fprintf(stderr, "fwbench latency: producer: %s\n", fw_strerror(rc));
        goto out;
    }

    double cpu0 = fwb_cpu_seconds();
    r.t0 = fwb_now_ns();
    r.window_from = r.t0 + (int64_t)(warmup * 1e9);
    r.window_to = r.window_from + (int64_t)(seconds * 1e9);
    pthread_t sender;
    if (pthread_create(&sender, NULL, sender_main, &r) != 0)
        abort();
    /* Consume until every acked record has arrived, or 30 s after the last ack. */
    int64_t done_at = 0;
    for (;;) {
        if ((rc = fw_consumer_poll(r.c, 100)) < 0) {
            fprintf(stderr, "fwbench latency: consumer: %s\n", fw_consumer_error(r.c));
            break;
        }
        if (!atomic_load(&r.producer_done))
            continue;
        if (done_at == 0)
            done_at = fwb_now_ns();
        if (r.received >= atomic_load(&r.acked) ||
            fwb_now_ns() - done_at > 30 * (int64_t)1000000000)
            break;
    }
    pthread_join(sender, NULL);
    double cpu = fwb_cpu_seconds() - cpu0;

    uint64_t acked = atomic_load(&r.acked), failed = atomic_load(&r.failed);
    fw_consumer_stats(r.c, &cs);
    printf("{\"rate\": %.1f, \"seconds\": %.3f, \"warmup\": %.3f, \"sent\": %llu, "
           "\"acked\": %llu, \"failed\": %llu, \"received\": %llu, \"duplicates\": %llu, "
           "\"foreign\": %llu, \"sender_max_behind_ms\": %.3f, \"cpu_s\": %.3f, ",
           rate, seconds, warmup, (unsigned long long)atomic_load(&r.sent),
           (unsigned long long)acked, (unsigned long long)failed, (unsigned long long)r.received,
           (unsigned long long)r.duplicates, (unsigned long long)r.foreign, r.max_behind_ns / 1e6,
           cpu);
    print_quantiles("end_to_end", &r.e2e);
    printf(", ");
    print_quantiles("ack", &r.ack);
    printf("}\n");
    fflush(stdout);
    if (cdf != NULL && (rc = fwb_samples_write_cdf(&r.e2e, cdf)) < 0)
        fprintf(stderr, "fwbench latency: %s: %s\n", cdf, fw_strerror(rc));
    status = failed == 0 && r.received == acked && r.duplicates == 0 && r.e2e.len > 0 ? 0 : 1;
out:
    fw_producer_close(r.p, 10000);
    fw_consumer_close(r.c);
    fwb_samples_free(&r.e2e);
    fwb_samples_free(&r.ack);
    free(r.seen);
    fwb_input_close(&in);
    return status;
}
