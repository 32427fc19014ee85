/*
 * Exactly once from the producer's call to the consumer's state (design.md,
 * guarantee 5), shown with the example consumer examples/puma_counter.c: it
 * counts records per category and minute and saves its counts with its
 * checkpoint tokens in one atomic file write. While 500,000 records stream
 * through a real calligraphus and a real ptail, the test kills the counter
 * with kill -9 at 20 random moments and starts it again each time; its final
 * counts must equal the exact counts of the input, minute by minute.
 *
 * The kill moments are random sleeps on purpose: they are the fault
 * schedule (replayable with FW_TEST_SEED), not a way to wait for an event.
 */
#include "fwt_cal.h"
#include "fwt_proc.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "client/freeway.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N       500000
#define MINUTES 12
#define KILLS   20

static const char *const categories[2] = {"web", "api"};

/* Expected counts, and what the counter's state file says. */
typedef struct counts_s {
    uint64_t n[2][MINUTES];
    uint64_t total;
    int64_t first_minute;
} counts_t;

static atomic_uint_fast64_t delivered, failed;

static void on_delivery(const fw_delivery_t *d, void *arg)
{
    (void)arg;
    if (d->status == 0)
        atomic_fetch_add(&delivered, 1);
    else
        atomic_fetch_add(&failed, 1);
}

/* Reads the counter's state file into *c; 0, or -1 if it is not there yet. */
static int read_state(const char *path, counts_t *c)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int64_t first = c->first_minute;
    memset(c, 0, sizeof(*c));
    c->first_minute = first;
    char line[8192], name[130];
    int ended = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        long long minute;
        unsigned long long n;
        if (sscanf(line, "count %129s %lld %llu", name, &minute, &n) == 3) {
            int cat = strcmp(name, "web") == 0 ? 0 : strcmp(name, "api") == 0 ? 1 : -1;
            int64_t m = minute - c->first_minute;
            if (cat < 0 || m < 0 || m >= MINUTES)
                FWT_FAIL("the state file counts %s minute %lld, which the input does not have",
                         name, minute);
            c->n[cat][m] = n;
            c->total += n;
        } else if (strncmp(line, "end ", 4) == 0) {
            ended = 1;
        }
    }
    fclose(f);
    if (!ended)
        FWT_FAIL("the state file %s has no end line: it was not written atomically", path);
    return 0;
}

/* No count may ever pass the input's: that would be a record counted twice. */
static void assert_not_above(const counts_t *got, const counts_t *want, const char *when)
{
    for (int c = 0; c < 2; c++)
        for (int m = 0; m < MINUTES; m++)
            if (got->n[c][m] > want->n[c][m])
                FWT_FAIL("%s: %s minute %d counts %llu, but only %llu were sent", when,
                         categories[c], m, (unsigned long long)got->n[c][m],
                         (unsigned long long)want->n[c][m]);
}

typedef struct wait_total_s {
    const char *path;
    counts_t *got;
} wait_total_t;

static int counted_everything(void *arg)
{
    wait_total_t *w = arg;
    return read_state(w->path, w->got) == 0 && w->got->total >= N;
}

static void start_counter(fwt_proc_t *p, const char *state, const char *ptail, const char *log)
{
    char *argv[] = {(char *)fwt_example("puma_counter"),
                    "--state",
                    (char *)state,
                    "--ptail",
                    (char *)ptail,
                    "-c",
                    "web",
                    "-c",
                    "api",
                    "--checkpoint-ms",
                    "50",
                    NULL};
    fwt_proc_spawn(p, "puma_counter", argv, log);
}

FWT_TEST(counts_survive_twenty_kill_9s_exactly)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX], state[FWT_PATH_MAX], log[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    snprintf(state, sizeof(state), "%s/counts", fwt_tmpdir());
    snprintf(log, sizeof(log), "%s/puma_counter.log", fwt_tmpdir());
    /* Small segments, so the counter crosses seals while it is killed. */
    const char *cat_flags[] = {"--roll-bytes", "1M", NULL};
    fwt_category_create(spec, "web", 4, cat_flags);
    fwt_category_create(spec, "api", 2, cat_flags);
    fwt_cal_t cal, pt;
    fwt_cal_start(&cal, "w1", spec, root, NULL);
    fwt_cal_wait_owns(&cal, 6, "the writer to own every bucket");
    fwt_ptail_start(&pt, "p1", spec, root, NULL);

    fw_producer_options_t o;
    fw_producer_options_init(&o);
    o.zk = spec;
    fw_producer_t *prod;
    FWT_ASSERT_OK(fw_producer_create(&prod, &o));

    fwt_proc_t counter;
    start_counter(&counter, state, pt.address, log);

    /* The input: timestamps over MINUTES minutes, two categories, random keys. */
    counts_t want = {0};
    int64_t base = (fwt_now_ms() / 60000 - MINUTES) * 60000;
    want.first_minute = base / 60000;
    int64_t kill_at[KILLS];
    for (int k = 0; k < KILLS; k++)
        kill_at[k] = (int64_t)fwt_rand_range(0, N - 1);
    /* In order, so the loop below meets them as the records go out. */
    for (int i = 1; i < KILLS; i++)
        for (int j = i; j > 0 && kill_at[j - 1] > kill_at[j]; j--) {
            int64_t t = kill_at[j];
            kill_at[j] = kill_at[j - 1];
            kill_at[j - 1] = t;
        }
    int kills = 0, kills_mid_stream = 0;
    for (int i = 0; i < N; i++) {
        int cat = fwt_rand() % 3 == 0;
        int64_t ts = base + (int64_t)((uint64_t)i * MINUTES * 60000 / N);
        char key[16], value[64];
        int klen = snprintf(key, sizeof(key), "k%u", (unsigned)(fwt_rand() % 64));
        int vlen =
            snprintf(value, sizeof(value), "%s line %d at %lld", categories[cat], i, (long long)ts);
        FWT_ASSERT_OK(fw_producer_send(prod, categories[cat], key, (size_t)klen, value,
                                       (size_t)vlen, ts, on_delivery, NULL));
        want.n[cat][(ts - base) / 60000]++;
        want.total++;
        /* Pace the input (about 10 s in all) so that the kills fall while it streams. */
        if (i % 5000 == 4999)
            usleep(100 * 1000);
        while (kills < KILLS && kill_at[kills] <= i) {
            /* A random moment: anywhere inside the counter's work, its saves included. */
            usleep((useconds_t)fwt_rand_range(0, 40000));
            fwt_proc_signal(&counter, SIGKILL);
            int status;
            FWT_ASSERT_OK(fwt_proc_wait(&counter, 10000, &status));
            counts_t got = {.first_minute = want.first_minute};
            if (read_state(state, &got) == 0) {
                assert_not_above(&got, &want, "after a kill");
                /* Killed with counts saved and records still to come: a real mid-stream kill. */
                if (got.total > 0 && got.total < want.total)
                    kills_mid_stream++;
            }
            start_counter(&counter, state, pt.address, log);
            kills++;
        }
    }
    FWT_ASSERT_OK(fw_producer_flush(prod, 60000));
    FWT_ASSERT_UINT_EQ(atomic_load(&failed), 0);
    FWT_ASSERT_UINT_EQ(atomic_load(&delivered), N);
    FWT_ASSERT_INT_EQ(kills, KILLS);
    FWT_ASSERT_INT_OP(kills_mid_stream, >=, KILLS / 2);

    /* Every record reaches the counter; then it stops cleanly and saves. */
    counts_t got = {.first_minute = want.first_minute};
    wait_total_t w = {state, &got};
    fwt_wait_until(counted_everything, &w, 60000, "the counter to count every record");
    fwt_proc_signal(&counter, SIGTERM);
    int status;
    FWT_ASSERT_OK(fwt_proc_wait(&counter, 20000, &status));
    FWT_ASSERT_INT_EQ(status, 0);
    FWT_ASSERT_OK(read_state(state, &got));
    assert_not_above(&got, &want, "at the end");
    for (int c = 0; c < 2; c++)
        for (int m = 0; m < MINUTES; m++)
            if (got.n[c][m] != want.n[c][m])
                FWT_FAIL("%s minute %d: counted %llu, sent %llu", categories[c], m,
                         (unsigned long long)got.n[c][m], (unsigned long long)want.n[c][m]);
    FWT_ASSERT_UINT_EQ(got.total, N);
    printf("%d kills (%d with saved counts and records still streaming); %llu records counted "
           "exactly once over %d minutes and 2 categories\n",
           kills, kills_mid_stream, (unsigned long long)got.total, MINUTES);

    FWT_ASSERT_OK(fw_producer_close(prod, 10000));
    fwt_cal_stop(&pt);
    fwt_cal_stop(&cal);
    fwt_zk_stop(&zk);
}
