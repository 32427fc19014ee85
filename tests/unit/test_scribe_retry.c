/* The Scribe listener's memory of calls that may come again: names, the window, the cap. */
#include "fwtest.h"

#include "scribe_retry.h"

#include <stdlib.h>
#include <string.h>

static cal_scribe_key_t key_of(const char *ip, const char *args)
{
    cal_scribe_key_t k;
    memset(&k, 0, sizeof(k));
    snprintf(k.ip, sizeof(k.ip), "%s", ip);
    cal_scribe_digest(args, strlen(args), k.digest);
    return k;
}

FWT_TEST(a_call_is_known_by_its_sender_and_its_bytes)
{
    uint64_t a[2], b[2], c[2];
    cal_scribe_digest("messages", 8, a);
    cal_scribe_digest("messages", 8, b);
    cal_scribe_digest("messagez", 8, c);
    FWT_ASSERT(a[0] == b[0] && a[1] == b[1]);
    FWT_ASSERT(a[0] != c[0] && a[1] != c[1]);
    /* Lengths count: a prefix is another call. */
    cal_scribe_digest("messages\0", 9, c);
    FWT_ASSERT(a[0] != c[0]);

    cal_scribe_retry_t r;
    FWT_ASSERT_OK(cal_scribe_retry_init(&r, 100, 1000));
    cal_scribe_key_t k1 = key_of("10.0.0.1", "call one"), k2 = key_of("10.0.0.2", "call one");
    cal_scribe_memo_t *m = cal_scribe_retry_add(&r, &k1, 0);
    FWT_ASSERT(m != NULL && m->busy);
    FWT_ASSERT(cal_scribe_retry_find(&r, &k1, 10) == m);
    /* The same bytes from another host are another call. */
    FWT_ASSERT(cal_scribe_retry_find(&r, &k2, 10) == NULL);
    cal_scribe_retry_remove(&r, m);
    FWT_ASSERT(cal_scribe_retry_find(&r, &k1, 10) == NULL);
    FWT_ASSERT_UINT_EQ(r.count, 0);
    cal_scribe_retry_free(&r);
}

FWT_TEST(an_idle_call_is_forgotten_after_its_window_a_running_one_never)
{
    cal_scribe_retry_t r;
    FWT_ASSERT_OK(cal_scribe_retry_init(&r, 100, 1000));
    cal_scribe_key_t idle = key_of("h", "idle"), running = key_of("h", "running");
    cal_scribe_memo_t *m = cal_scribe_retry_add(&r, &idle, 0);
    m->plan.nblocks = 1;
    m->plan.blocks = calloc(1, sizeof(*m->plan.blocks)); /* freed with the memo */
    cal_scribe_retry_keep(&r, m, 100);                   /* kept until 1100 */
    FWT_ASSERT(cal_scribe_retry_add(&r, &running, 100) != NULL);
    cal_scribe_retry_expire(&r, 1099);
    FWT_ASSERT(cal_scribe_retry_find(&r, &idle, 1099) == m);
    cal_scribe_retry_expire(&r, 5000);
    FWT_ASSERT(cal_scribe_retry_find(&r, &idle, 5000) == NULL);
    FWT_ASSERT(cal_scribe_retry_find(&r, &running, 5000) != NULL);
    FWT_ASSERT_UINT_EQ(r.count, 1);
    cal_scribe_retry_free(&r);
}

FWT_TEST(past_the_cap_the_oldest_idle_call_goes_first)
{
    cal_scribe_retry_t r;
    FWT_ASSERT_OK(cal_scribe_retry_init(&r, 3, 60000));
    cal_scribe_key_t k[5];
    cal_scribe_memo_t *m[5];
    char name[16];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "call %d", i);
        k[i] = key_of("h", name);
        m[i] = cal_scribe_retry_add(&r, &k[i], i);
        FWT_ASSERT(m[i] != NULL);
    }
    /* 0 still runs; 1 and 2 are idle, 1 the older. */
    cal_scribe_retry_keep(&r, m[1], 10);
    cal_scribe_retry_keep(&r, m[2], 20);
    k[3] = key_of("h", "call 3");
    FWT_ASSERT(cal_scribe_retry_add(&r, &k[3], 30) != NULL);
    FWT_ASSERT(cal_scribe_retry_find(&r, &k[1], 30) == NULL);
    FWT_ASSERT(cal_scribe_retry_find(&r, &k[0], 30) == m[0]);
    FWT_ASSERT(cal_scribe_retry_find(&r, &k[2], 30) == m[2]);
    /* Every memo running: no room, the caller answers TRY_LATER. */
    cal_scribe_memo_t *m2 = cal_scribe_retry_find(&r, &k[2], 30);
    m2->busy = 1;
    k[4] = key_of("h", "call 4");
    FWT_ASSERT(cal_scribe_retry_add(&r, &k[4], 40) == NULL);
    FWT_ASSERT_UINT_EQ(r.count, 3);
    cal_scribe_retry_free(&r);
}
