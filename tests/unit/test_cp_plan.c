/*
 * The copier's pure planning parts: how buckets are divided among copiers
 * (bounded-load rendezvous: even, agreed, stable) and the bandwidth limit's
 * token bucket, on a clock the test moves by hand.
 */
#include "fwtest.h"

#include "copier/assign.h"
#include "copier/rate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TASKS 512

typedef struct plan_s {
    char keys[MAX_TASKS][64];
    const char *tasks[MAX_TASKS];
    int owner[MAX_TASKS];
    size_t n;
} plan_t;

static void plan_tasks(plan_t *p, size_t n)
{
    p->n = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(p->keys[i], sizeof(p->keys[i]), "file:%%2Fcopy/web/%zu", i);
        p->tasks[i] = p->keys[i];
    }
}

FWT_TEST(every_bucket_gets_one_copier_and_loads_differ_by_at_most_one)
{
    const char *ids[] = {"a", "b", "c", "d", "e"};
    plan_t p;
    for (size_t n = 1; n <= 300; n += 13) {
        plan_tasks(&p, n);
        for (size_t m = 1; m <= 5; m++) {
            FWT_ASSERT_OK(cp_assign(p.tasks, n, ids, m, p.owner));
            size_t load[5] = {0};
            for (size_t i = 0; i < n; i++) {
                FWT_ASSERT(p.owner[i] >= 0 && (size_t)p.owner[i] < m);
                load[p.owner[i]]++;
            }
            size_t lo = n, hi = 0, total = 0;
            for (size_t j = 0; j < m; j++) {
                lo = load[j] < lo ? load[j] : lo;
                hi = load[j] > hi ? load[j] : hi;
                total += load[j];
            }
            if (hi - lo > 1)
                FWT_FAIL("%zu buckets over %zu copiers: loads from %zu to %zu", n, m, lo, hi);
            FWT_ASSERT_UINT_EQ(total, n);
        }
    }
}

FWT_TEST(no_copiers_means_no_owner)
{
    plan_t p;
    plan_tasks(&p, 4);
    FWT_ASSERT_OK(cp_assign(p.tasks, 4, NULL, 0, p.owner));
    for (int i = 0; i < 4; i++)
        FWT_ASSERT_INT_EQ(p.owner[i], -1);
}

/* A copier that leaves moves about its own share, not the others' buckets. */
FWT_TEST(a_copier_leaving_moves_little_more_than_its_share)
{
    const char *four[] = {"a", "b", "c", "d"};
    const char *three[] = {"a", "b", "c"};
    plan_t before, after;
    plan_tasks(&before, 400);
    plan_tasks(&after, 400);
    FWT_ASSERT_OK(cp_assign(before.tasks, 400, four, 4, before.owner));
    FWT_ASSERT_OK(cp_assign(after.tasks, 400, three, 3, after.owner));
    int moved = 0;
    for (int i = 0; i < 400; i++)
        if (before.owner[i] != 3 && before.owner[i] != after.owner[i])
            moved++;
    printf("%d of d's 100 buckets redistributed, %d others moved\n", 100, moved);
    /* Bounded loads reshuffle some: far fewer than a modulo split's ~75%. */
    FWT_ASSERT_INT_OP(moved, <, 120);
}

FWT_TEST(rate_unlimited_never_waits)
{
    cp_rate_t r;
    cp_rate_init(&r, 0, 0);
    FWT_ASSERT(cp_rate_available(&r, 0) == UINT64_MAX);
    cp_rate_take(&r, 1u << 30);
    FWT_ASSERT_INT_EQ(cp_rate_wait_ms(&r, 0), 0);
}

/*
 * 1 MB/s: the bucket holds a tenth of a second (100 KB), a big take puts it
 * in debt, and the wait is the debt's time to refill. Over a simulated
 * second of greedy taking, the bytes allowed are the rate plus one burst.
 */
FWT_TEST(rate_refills_smoothly_and_charges_debt)
{
    cp_rate_t r;
    cp_rate_init(&r, 1000000, 0);
    FWT_ASSERT_UINT_EQ(cp_rate_available(&r, 0), 100000);
    cp_rate_take(&r, 300000); /* one large block: 200 KB of debt */
    FWT_ASSERT_UINT_EQ(cp_rate_available(&r, 0), 0);
    FWT_ASSERT_INT_EQ(cp_rate_wait_ms(&r, 0), 201);
    FWT_ASSERT_UINT_EQ(cp_rate_available(&r, 201), 1000);

    cp_rate_init(&r, 1000000, 0);
    uint64_t taken = 0;
    for (int64_t now = 0; now <= 1000; now++) {
        uint64_t a = cp_rate_available(&r, now);
        if (a > 0) {
            cp_rate_take(&r, a);
            taken += a;
        }
    }
    printf("%llu bytes allowed in a second at 1 MB/s\n", (unsigned long long)taken);
    FWT_ASSERT_INT_OP(taken, <=, 1100000);
    FWT_ASSERT_INT_OP(taken, >=, 1000000);
}
