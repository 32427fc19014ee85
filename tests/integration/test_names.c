/*
 * Host names: a daemon may publish (--advertise) a name instead of an IP, and
 * producers, consumers and writers look it up each time they connect. The
 * one name that means loopback on every machine is localhost, from
 * /etc/hosts (no DNS query leaves the host). The tests spell it "LOCALHOST":
 * /etc/hosts matches names whatever their case, and no code of ours treats
 * that spelling specially, so only a real lookup can find it.
 */
#include "fwt_cal.h"
#include "fwt_proc.h"
#include "fwt_root.h"
#include "fwt_wire.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "proto/common.pb-c.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINES 20000
#define KEYS  16

static fwt_cal_t w1;

/* One block for bucket *arg of "fwd" through w1: 1 once stored, 0 on retry-later. */
static int stored_through_w1(void *arg)
{
    uint32_t bucket = *(uint32_t *)arg;
    int status = fwt_wire_produce_once(w1.address, "fwd", bucket, 500 + bucket, 1, 4, 30);
    if (status != FWPB__STATUS__STATUS_RETRY_LATER)
        FWT_ASSERT_INT_EQ(status, FWPB__STATUS__STATUS_OK);
    return status == FWPB__STATUS__STATUS_OK;
}

/* Starts a writer (or a ptail) listening on 127.0.0.1:port and publishing LOCALHOST:port. */
static void start_named(fwt_cal_t *d, int ptail, const char *id, const char *spec, const char *root,
                        int port, char (*flags)[64])
{
    snprintf(flags[0], 64, "127.0.0.1:%d", port);
    snprintf(flags[1], 64, "LOCALHOST:%d", port);
    const char *extra[] = {"--listen",          flags[0], "--advertise", flags[1],
                           "--session-timeout", "2s",     NULL};
    if (ptail)
        fwt_ptail_start(d, id, spec, root, extra);
    else
        fwt_cal_start(d, id, spec, root, extra);
    FWT_ASSERT(fwt_file_contains(d->log_path, flags[1]));
}

FWT_TEST(daemons_published_under_a_host_name_are_reached_by_it)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[160], root[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    /* "fwd" alone first: 4 of its 8 buckets are then w2's for sure. */
    fwt_category_create(spec, "fwd", 8, NULL);
    int ports[3];
    fwt_free_ports(ports, 3);
    static char f1[2][64], f2[2][64], f3[2][64];
    fwt_cal_t w2, pt;
    start_named(&w1, 0, "w1", spec, root, ports[0], f1);
    start_named(&w2, 0, "w2", spec, root, ports[1], f2);
    fwt_cal_wait_owns(&w1, 4, "w1 and w2 to own 4 buckets each");
    fwt_cal_wait_owns(&w2, 4, "w2 to own 4 buckets");

    /* w1 relays the buckets w2 owns to the address w2 published: a name. */
    for (uint32_t b = 0; b < 8; b++) {
        uint32_t bucket = b;
        fwt_wait_until(stored_through_w1, &bucket, 10000, "a block stored through w1");
    }
    /* Only w1 was sent any: what w2 stored came through w1. */
    FWT_ASSERT(fwt_cal_metric(&w2, "freeway_calligraphus_records_acked_total{category=\"fwd\"}") >=
               4 * 4);

    fwt_category_create(spec, "web", 8, NULL);
    fwt_cal_wait_owns(&w1, 8, "w1 and w2 to own 8 of the 16 buckets each");
    fwt_cal_wait_owns(&w2, 8, "w2 to own 8 buckets");

    /* Producers find the writers by name: in ZooKeeper, and in a bootstrap list. */
    fwt_send_lines(spec, "web", 0, LINES / 2, KEYS, NULL);
    const char *bootstrap[] = {"--bootstrap", f1[1], NULL};
    fwt_send_lines(spec, "web", LINES / 2, LINES / 2, KEYS, bootstrap);
    fwt_lines_assert_once(root, "web", LINES, KEYS);

    /* A consumer finds the ptail in ZooKeeper by name, and reads every line once. */
    start_named(&pt, 1, "p1", spec, root, ports[2], f3);
    char count[16];
    snprintf(count, sizeof(count), "%d", LINES);
    char *tail[] = {(char *)fwt_bin("freeway"),
                    "tail",
                    "-c",
                    "web",
                    "--zk",
                    spec,
                    "--from",
                    "earliest",
                    "--count",
                    count,
                    NULL};
    char *out = NULL;
    FWT_ASSERT_INT_EQ(fwt_run(tail, 60000, &out), 0);
    uint8_t *seen = calloc(LINES, 1);
    uint64_t total = 0, dups = 0;
    for (const char *p = out; p != NULL && *p != '\0';) {
        /* send keys each line by its "k<key> " prefix: the value starts with the number. */
        unsigned long long n;
        if (sscanf(p, "%llu", &n) == 1 && n < LINES) {
            dups += seen[n];
            seen[n] = 1;
            total++;
        }
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    free(seen);
    free(out);
    FWT_ASSERT_UINT_EQ(total, LINES);
    FWT_ASSERT_UINT_EQ(dups, 0);

    fwt_cal_stop(&pt);
    fwt_cal_stop(&w2);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}
