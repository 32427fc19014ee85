/*
 * fwbench produce: ingest throughput. N threads share one producer (as an
 * application's threads would) and send the input's records round the
 * file; the clock runs from the first send to the last ack. One record is
 * sent and flushed first, so the connection and the category's metadata are
 * in place before the clock starts (the writer counts it too: "warmup").
 * With --touch-buckets N, one keyed record goes to each of buckets 0..N-1
 * first, so every bucket has its open segment before the clock starts: the
 * scale runs measure open buckets, not the creation of their first segments.
 */
#include "fwbench.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct produce_s {
    fw_producer_t *p;
    const char *category;
    const fwb_input_t *in;
    uint64_t records;
    int threads;
    _Atomic uint64_t acked;
    _Atomic uint64_t failed;
    _Atomic uint64_t refused;
    _Atomic int first_error;
} produce_t;

typedef struct worker_s {
    produce_t *run;
    uint64_t from, to; /* record numbers [from, to) */
    pthread_t thread;
} worker_t;

static void on_delivery(const fw_delivery_t *d, void *arg)
{
    produce_t *r = arg;
    if (d->status == 0) {
        atomic_fetch_add_explicit(&r->acked, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&r->failed, 1, memory_order_relaxed);
    int none = 0;
    if (atomic_compare_exchange_strong(&r->first_error, &none, d->status))
        fprintf(stderr, "fwbench produce: a record failed: %s\n", d->message);
}

static void on_log(fw_producer_log_level_t level, const char *message, void *arg)
{
    (void)arg;
    fwb_log("produce", (int)level, message);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    produce_t *r = w->run;
    const fwb_input_t *in = r->in;
    for (uint64_t i = w->from; i < w->to; i++) {
        size_t n = (size_t)(i % in->count);
        int rc = fw_producer_send(r->p, r->category, NULL, 0, in->data + in->offsets[n],
                                  in->lengths[n], 0, on_delivery, r);
        if (rc < 0) {
            atomic_fetch_add_explicit(&r->refused, 1, memory_order_relaxed);
            int none = 0;
            if (atomic_compare_exchange_strong(&r->first_error, &none, rc))
                fprintf(stderr, "fwbench produce: send refused: %s\n", fw_strerror(rc));
        }
    }
    return NULL;
}

/* One keyed record to each of buckets 0..n-1 (keys tried in turn until each is hit). */
static int touch_buckets(produce_t *r, uint32_t n, uint64_t *sent)
{
    uint8_t *hit = calloc(n, 1);
    if (hit == NULL)
        return -ENOMEM;
    uint32_t left = n;
    int rc = 0;
    char key[32];
    for (uint64_t i = 0; left > 0 && rc == 0; i++) {
        int len = snprintf(key, sizeof(key), "touch-%llu", (unsigned long long)i);
        uint32_t b = fw_key_bucket(key, (size_t)len, n);
        if (hit[b])
            continue;
        hit[b] = 1;
        left--;
        rc = fw_producer_send(r->p, r->category, key, (size_t)len, r->in->data, r->in->lengths[0],
                              0, on_delivery, r);
        *sent += rc == 0;
    }
    free(hit);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: fwbench produce --category C --input FILE [OPTIONS]\n\n"
        "  --zk HOSTS            ZooKeeper (default: $FREEWAY_ZK, else 127.0.0.1:2181/freeway)\n"
        "  --category C          the category to send to (it must exist)\n"
        "  --input FILE          records, one per line\n"
        "  --records N           records to send (default: the file's count), round the file\n"
        "  --threads N           sending threads sharing the producer (default 1)\n"
        "  --acks LEVEL          durable (default), written or none\n"
        "  --codec C             lz4 or none (default: the category's)\n"
        "  --batch-bytes SIZE    (default 256K)\n"
        "  --linger-ms MS        (default 5)\n"
        "  --buffer SIZE         the producer's max_buffer_bytes (default 64M)\n"
        "  --max-in-flight N     requests per connection (default 8)\n");
}

int fwb_producer_flag(fw_producer_options_t *o, int opt, const char *arg)
{
    int64_t v;
    switch (opt) {
    case 'z':
        o->zk = arg;
        return 1;
    case 'a':
        if (strcmp(arg, "durable") == 0)
            o->acks = FW_ACKS_DURABLE;
        else if (strcmp(arg, "written") == 0)
            o->acks = FW_ACKS_WRITTEN;
        else if (strcmp(arg, "none") == 0)
            o->acks = FW_ACKS_NONE;
        else
            return -1;
        return 1;
    case 'C':
        if (strcmp(arg, "lz4") == 0)
            o->codec = FW_PRODUCER_CODEC_LZ4;
        else if (strcmp(arg, "none") == 0)
            o->codec = FW_PRODUCER_CODEC_NONE;
        else
            return -1;
        return 1;
    case 'b':
        if ((v = fwb_parse_size(arg)) <= 0)
            return -1;
        o->batch_bytes = (size_t)v;
        return 1;
    case 'l':
        if ((v = fwb_parse_size(arg)) < 0)
            return -1;
        o->linger_ms = (uint32_t)v;
        return 1;
    case 'B':
        if ((v = fwb_parse_size(arg)) <= 0)
            return -1;
        o->max_buffer_bytes = (size_t)v;
        return 1;
    case 'f':
        if ((v = fwb_parse_size(arg)) <= 0)
            return -1;
        o->max_in_flight = (uint32_t)v;
        return 1;
    }
    return 0;
}

int fwb_cmd_produce(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"zk", required_argument, NULL, 'z'},
        {"category", required_argument, NULL, 'c'},
        {"input", required_argument, NULL, 'i'},
        {"records", required_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'},
        {"acks", required_argument, NULL, 'a'},
        {"codec", required_argument, NULL, 'C'},
        {"batch-bytes", required_argument, NULL, 'b'},
        {"linger-ms", required_argument, NULL, 'l'},
        {"buffer", required_argument, NULL, 'B'},
        {"touch-buckets", required_argument, NULL, 'T'},
        {"max-in-flight", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    fw_producer_options_t o;
    fw_producer_options_init(&o);
    o.log_cb = on_log;
    o.log_level = FW_PRODUCER_LOG_WARN;
    const char *category = NULL, *input = NULL;
    int64_t records = -1, threads = 1, touch = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        int rc = fwb_producer_flag(&o, opt, optarg);
        if (rc == 1)
            continue;
        if (rc < 0) {
            fprintf(stderr, "fwbench produce: bad value '%s'\n", optarg);
            return 2;
        }
        switch (opt) {
        case 'c':
            category = optarg;
            break;
        case 'i':
            input = optarg;
            break;
        case 'n':
            records = fwb_parse_size(optarg);
            break;
        case 't':
            threads = fwb_parse_size(optarg);
            break;
        case 'T':
            touch = fwb_parse_size(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (category == NULL || input == NULL || threads < 1 || threads > 256 || touch < 0 ||
        touch > 65536) {
        usage(stderr);
        return 2;
    }

    fwb_input_t in;
    int rc = fwb_input_open(&in, input);
    if (rc < 0) {
        fprintf(stderr, "fwbench produce: %s: %s\n", input, fw_strerror(rc));
        return 1;
    }
    produce_t run = {.category = category, .in = &in, .threads = (int)threads};
    run.records = records >= 0 ? (uint64_t)records : in.count;
    if ((rc = fw_producer_create(&run.p, &o)) < 0) {
        fprintf(stderr, "fwbench produce: producer: %s\n", fw_strerror(rc));
        fwb_input_close(&in);
        return 1;
    }

    /* Warm-up: connection and metadata before the clock starts. */
    rc = fw_producer_send(run.p, category, NULL, 0, in.data, in.lengths[0], 0, on_delivery, &run);
    uint64_t warmup = 1;
    if (rc == 0 && touch > 0)
        rc = touch_buckets(&run, (uint32_t)touch, &warmup);
    if (rc == 0)
        rc = fw_producer_flush(run.p, 600000);
    if (rc < 0 || atomic_load(&run.acked) != warmup) {
        fprintf(stderr, "fwbench produce: the warm-up records were not acked (%s)\n",
                rc < 0 ? fw_strerror(rc) : "failed");
        fw_producer_close(run.p, 1000);
        fwb_input_close(&in);
        return 1;
    }
    atomic_store(&run.acked, 0);

    fw_producer_stats_t before, after;
    fw_producer_stats(run.p, &before);
    double cpu0 = fwb_cpu_seconds();
    int64_t t0 = fwb_now_ns();
    worker_t *workers = calloc((size_t)threads, sizeof(*workers));
    if (workers == NULL)
        abort();
    for (int t = 0; t < threads; t++) {
        workers[t].run = &run;
        workers[t].from = run.records * (uint64_t)t / (uint64_t)threads;
        workers[t].to = run.records * (uint64_t)(t + 1) / (uint64_t)threads;
        if (pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]) != 0)
            abort();
    }
    for (int t = 0; t < threads; t++)
        pthread_join(workers[t].thread, NULL);
    int flushed = fw_producer_flush(run.p, -1);
    double seconds = (double)(fwb_now_ns() - t0) / 1e9;
    double cpu = fwb_cpu_seconds() - cpu0;
    fw_producer_stats(run.p, &after);
    free(workers);

    uint64_t bytes = 0;
    for (uint64_t i = 0; i < run.records; i++)
        bytes += in.lengths[i % in.count];
    uint64_t acked = atomic_load(&run.acked), failed = atomic_load(&run.failed);
    uint64_t refused = atomic_load(&run.refused);
    printf("{\"records\": %llu, \"warmup_records\": %llu, \"payload_bytes\": %llu, "
           "\"threads\": %d, \"seconds\": %.6f, \"records_per_s\": %.1f, \"mb_per_s\": %.3f, "
           "\"acked\": %llu, \"failed\": %llu, \"refused\": %llu, \"cpu_s\": %.3f, "
           "\"blocks\": %llu, \"requests\": %llu, \"block_bytes\": %llu}\n",
           (unsigned long long)run.records, (unsigned long long)warmup, (unsigned long long)bytes,
           run.threads, seconds, (double)run.records / seconds, (double)bytes / seconds / 1e6,
           (unsigned long long)acked, (unsigned long long)failed, (unsigned long long)refused, cpu,
           (unsigned long long)(after.blocks_acked - before.blocks_acked),
           (unsigned long long)(after.requests_sent - before.requests_sent),
           (unsigned long long)(after.block_bytes_acked - before.block_bytes_acked));
    fflush(stdout);
    int closed = fw_producer_close(run.p, 10000);
    fwb_input_close(&in);
    return flushed == 0 && closed == 0 && acked == run.records && failed == 0 && refused == 0 ? 0
                                                                                              : 1;
}
