/*
 * Records as large as a category allows (up to 16 MiB): the producer packs
 * blocks into requests of at most 4 MiB, but a block bigger than that goes
 * alone in a request of its own, up to the writers' max frame, and is
 * stored whole. A record over the category's limit is refused at once.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "freeway.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSIZES 4

static const size_t sizes[NSIZES] = {1000, 5u << 20, 12u << 20, (16u << 20) - 64};

typedef struct outcome_s {
    pthread_mutex_t mu;
    int answered;
    int status[NSIZES];
} outcome_t;

static outcome_t outcome = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_delivery(const fw_delivery_t *d, void *arg)
{
    int i = (int)(intptr_t)arg;
    pthread_mutex_lock(&outcome.mu);
    outcome.status[i] = d->status;
    outcome.answered++;
    pthread_mutex_unlock(&outcome.mu);
}

/* Value i: bytes no codec shrinks, from a generator seeded by i. */
static void fill(uint8_t *v, size_t n, int i)
{
    uint32_t x = 2463534242u + (uint32_t)i;
    for (size_t k = 0; k < n; k++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v[k] = (uint8_t)x;
    }
}

typedef struct seen_s {
    int found[NSIZES];
    uint8_t *expect;
} seen_t;

static void check_record(void *arg, uint32_t bucket, uint64_t segment_id,
                         const fw_block_header_t *h, const fw_record_t *rec)
{
    (void)bucket;
    (void)segment_id;
    (void)h;
    seen_t *s = arg;
    FWT_ASSERT(rec->has_key && rec->key_len == 1);
    int i = rec->key[0] - '0';
    FWT_ASSERT(i >= 0 && i < NSIZES);
    FWT_ASSERT_UINT_EQ(rec->value_len, sizes[i]);
    fill(s->expect, sizes[i], i);
    FWT_ASSERT(memcmp(rec->value, s->expect, sizes[i]) == 0);
    s->found[i]++;
}

FWT_TEST(records_up_to_the_categorys_limit_are_stored_whole)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[160], root[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    const char *const cat[] = {"--max-record-bytes", "16M", NULL};
    fwt_category_create(spec, "big", 2, cat);
    fwt_cal_t w;
    fwt_cal_start(&w, "w1", spec, root, NULL);
    fwt_cal_wait_owns(&w, 2, "the writer to own both buckets");

    fw_producer_options_t o;
    fw_producer_options_init(&o);
    o.zk = spec;
    fw_producer_t *p = NULL;
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    uint8_t *v = malloc((16u << 20) + 1);
    FWT_ASSERT(v != NULL);
    for (int i = 0; i < NSIZES; i++) {
        char key = (char)('0' + i);
        fill(v, sizes[i], i);
        FWT_ASSERT_OK(
            fw_producer_send(p, "big", &key, 1, v, sizes[i], 0, on_delivery, (void *)(intptr_t)i));
    }
    FWT_ASSERT_OK(fw_producer_flush(p, 60000));
    pthread_mutex_lock(&outcome.mu);
    FWT_ASSERT_INT_EQ(outcome.answered, NSIZES);
    for (int i = 0; i < NSIZES; i++)
        if (outcome.status[i] != 0)
            FWT_FAIL("the record of %zu bytes was not stored: %d", sizes[i], outcome.status[i]);
    pthread_mutex_unlock(&outcome.mu);

    /* Over the category's limit: refused by the send itself, the callback never runs. */
    char key = 'x';
    FWT_ASSERT_INT_EQ(fw_producer_send(p, "big", &key, 1, v, 16u << 20, 0, on_delivery, NULL),
                      FW_ERECORD_TOO_LARGE);
    FWT_ASSERT_OK(fw_producer_close(p, 10000));

    seen_t s = {.expect = v};
    FWT_ASSERT_UINT_EQ(fwt_root_records(root, "big", check_record, &s), NSIZES);
    for (int i = 0; i < NSIZES; i++)
        FWT_ASSERT_INT_EQ(s.found[i], 1);
    free(v);
    fwt_cal_stop(&w);
    fwt_zk_stop(&zk);
}
