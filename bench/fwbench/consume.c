/*
 * fwbench consume: ptail's delivery rate. M consumers at once, each in its
 * own thread with its own connection, read a category from the earliest
 * record until each has N records; each one's clock runs from its creation
 * (ZooKeeper lookup and subscription included) to its N-th record. The
 * orchestrator writes the category first, so ptail reads from page cache.
 */
#include "fwbench.h"

#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct reader_s {
    const char *zk, *ptail, *category;
    uint64_t want;
    size_t credit;
    pthread_t thread;
    fw_consumer_t *c;
    uint64_t records, bytes;
    double seconds;
    int error;
} reader_t;

static void on_record(const fw_consumer_record_t *rec, void *arg)
{
    reader_t *r = arg;
    r->records++;
    r->bytes += rec->key_len + rec->value_len;
    if (r->records == r->want)
        fw_consumer_break(r->c);
}

static void on_log(fw_consumer_log_level_t level, const char *message, void *arg)
{
    (void)arg;
    fwb_log("consume", (int)level, message);
}

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    fw_consumer_options_t o;
    fw_consumer_options_init(&o);
    o.zk = r->zk;
    o.ptail = r->ptail;
    o.category = r->category;
    o.start = FW_START_EARLIEST;
    o.name = "fwbench-consume";
    o.on_record = on_record;
    o.arg = r;
    o.log_cb = on_log;
    o.log_level = FW_CONSUMER_LOG_WARN;
    if (r->credit > 0)
        o.credit_bytes = r->credit;
    int64_t t0 = fwb_now_ns();
    int rc = fw_consumer_create(&r->c, &o);
    if (rc < 0) {
        r->error = rc;
        return NULL;
    }
    int64_t deadline = t0 + 600 * (int64_t)1000000000;
    while (r->records < r->want && fwb_now_ns() < deadline) {
        if ((rc = fw_consumer_poll(r->c, 1000)) < 0) {
            fprintf(stderr, "fwbench consume: %s\n", fw_consumer_error(r->c));
            r->error = rc;
            break;
        }
    }
    r->seconds = (double)(fwb_now_ns() - t0) / 1e9;
    fw_consumer_close(r->c);
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fwbench consume --category C --records N [OPTIONS]\n\n"
            "  --records N       records each consumer reads (from the earliest)\n"
            "  --consumers M     consumers at once, one thread each (default 1)\n"
            "  --credit SIZE     each consumer's flow-control credit (default 4M)\n"
            "  --zk HOSTS        ZooKeeper (default: $FREEWAY_ZK, else 127.0.0.1:2181/freeway)\n"
            "  --ptail ADDRS     ptail servers instead of ZooKeeper discovery\n");
}

int fwb_cmd_consume(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"zk", required_argument, NULL, 'z'},
        {"ptail", required_argument, NULL, 'p'},
        {"category", required_argument, NULL, 'c'},
        {"records", required_argument, NULL, 'n'},
        {"consumers", required_argument, NULL, 'm'},
        {"credit", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *zk = NULL, *ptail = NULL, *category = NULL;
    int64_t want = 0, consumers = 1, credit = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'z':
            zk = optarg;
            break;
        case 'p':
            ptail = optarg;
            break;
        case 'c':
            category = optarg;
            break;
        case 'n':
            want = fwb_parse_size(optarg);
            break;
        case 'm':
            consumers = fwb_parse_size(optarg);
            break;
        case 'k':
            credit = fwb_parse_size(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (category == NULL || want <= 0 || consumers < 1 || consumers > 256 || credit < 0) {
        usage(stderr);
        return 2;
    }
    reader_t *readers = calloc((size_t)consumers, sizeof(*readers));
    if (readers == NULL)
        abort();
    double cpu0 = fwb_cpu_seconds();
    int64_t t0 = fwb_now_ns();
    for (int i = 0; i < consumers; i++) {
        reader_t *r = &readers[i];
        r->zk = zk;
        r->ptail = ptail;
        r->category = category;
        r->want = (uint64_t)want;
        r->credit = (size_t)credit;
        if (pthread_create(&r->thread, NULL, reader_main, r) != 0)
            abort();
    }
    for (int i = 0; i < consumers; i++)
        pthread_join(readers[i].thread, NULL);
    double wall = (double)(fwb_now_ns() - t0) / 1e9;
    double cpu = fwb_cpu_seconds() - cpu0;

    int ok = 1;
    double min_rps = 0, sum_mbps = 0, sum_rps = 0;
    printf("{\"consumers\": %lld, \"records_each\": %lld, \"wall_s\": %.6f, \"cpu_s\": %.3f, "
           "\"each\": [",
           (long long)consumers, (long long)want, wall, cpu);
    for (int i = 0; i < consumers; i++) {
        reader_t *r = &readers[i];
        double rps = r->seconds > 0 ? (double)r->records / r->seconds : 0;
        double mbps = r->seconds > 0 ? (double)r->bytes / r->seconds / 1e6 : 0;
        if (i == 0 || rps < min_rps)
            min_rps = rps;
        sum_rps += rps;
        sum_mbps += mbps;
        ok &= r->error == 0 && r->records == (uint64_t)want;
        printf("%s{\"records\": %llu, \"bytes\": %llu, \"seconds\": %.6f, \"records_per_s\": %.1f, "
               "\"mb_per_s\": %.3f, \"error\": \"%s\"}",
               i ? ", " : "", (unsigned long long)r->records, (unsigned long long)r->bytes,
               r->seconds, rps, mbps, r->error ? fw_err_name(r->error) : "");
    }
    printf("], \"min_records_per_s\": %.1f, \"mean_records_per_s\": %.1f, "
           "\"sum_records_per_s\": %.1f, \"sum_mb_per_s\": %.3f}\n",
           min_rps, sum_rps / (double)consumers, sum_rps, sum_mbps);
    free(readers);
    return ok ? 0 : 1;
}
