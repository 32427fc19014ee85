/*
 * The writer's producer sequence table: verdicts, in-flight retries, rebuild, the cap
 * (the least recently seen forgotten first, at no rebuild).
 */
#include "fwtest.h"

#include "dedup.h"

FWT_TEST(verdicts_follow_the_sequence)
{
    cal_dedup_t d;
    cal_dedup_init(&d, 100);
    uint64_t expected = 0;
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 5, &expected), CAL_SEQ_ACCEPT); /* unknown */
    FWT_ASSERT_OK(cal_dedup_accept(&d, 7, 5, 1));
    /* Queued, not yet stored: a retry must wait rather than be acked early. */
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 5, &expected), CAL_SEQ_IN_FLIGHT);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 6, &expected), CAL_SEQ_ACCEPT);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 8, &expected), CAL_SEQ_GAP);
    FWT_ASSERT_UINT_EQ(expected, 6);
    cal_dedup_stored(&d, 7, 5, 0);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 5, &expected), CAL_SEQ_DUPLICATE);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 4, &expected), CAL_SEQ_DUPLICATE);
    FWT_ASSERT_OK(cal_dedup_accept(&d, 7, 6, 2));
    FWT_ASSERT_OK(cal_dedup_accept(&d, 7, 7, 2));
    /* The write of 6 and 7 failed: they may come again. */
    cal_dedup_abort(&d, 7);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 6, &expected), CAL_SEQ_ACCEPT);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 7, 7, &expected), CAL_SEQ_GAP);
    /* Producers do not disturb each other. */
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 8, 5, &expected), CAL_SEQ_ACCEPT);
    cal_dedup_free(&d);
}

FWT_TEST(rebuilt_table_acks_retries_again)
{
    cal_dedup_t d;
    cal_dedup_init(&d, 100);
    /* What a scan of the segments finds, in any order. */
    FWT_ASSERT_OK(cal_dedup_learn(&d, 1, 10, 0, 0));
    FWT_ASSERT_OK(cal_dedup_learn(&d, 1, 9, 0, 0));
    FWT_ASSERT_OK(cal_dedup_learn(&d, 2, 3, 0, 0));
    uint64_t expected;
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 1, 10, &expected), CAL_SEQ_DUPLICATE);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 1, 11, &expected), CAL_SEQ_ACCEPT);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 2, 3, &expected), CAL_SEQ_DUPLICATE);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 2, 5, &expected), CAL_SEQ_GAP);
    FWT_ASSERT_UINT_EQ(expected, 4);
    cal_dedup_free(&d);
}

/* A duplicate whose payload differs from the stored block's is told apart from a retry. */
FWT_TEST(a_sequence_reused_for_other_contents_is_a_conflict)
{
    cal_dedup_t d;
    cal_dedup_init(&d, 100);
    FWT_ASSERT_OK(cal_dedup_accept(&d, 7, 5, 1));
    /* Not stored yet: nothing to compare with. */
    FWT_ASSERT_INT_EQ(cal_dedup_conflicts(&d, 7, 5, 0xaaaa), 0);
    cal_dedup_stored(&d, 7, 5, 0x1234);
    FWT_ASSERT_INT_EQ(cal_dedup_conflicts(&d, 7, 5, 0x1234), 0); /* a retry */
    FWT_ASSERT_INT_EQ(cal_dedup_conflicts(&d, 7, 5, 0x4321), 1);
    FWT_ASSERT_UINT_EQ(cal_dedup_stored_crc(&d, 7), 0x1234);
    /* Only the last stored block is remembered: older ones are not judged. */
    FWT_ASSERT_INT_EQ(cal_dedup_conflicts(&d, 7, 4, 0x4321), 0);
    FWT_ASSERT_INT_EQ(cal_dedup_conflicts(&d, 8, 5, 0x4321), 0); /* another producer */
    FWT_ASSERT_OK(cal_dedup_accept(&d, 7, 6, 2));
    cal_dedup_stored(&d, 7, 6, 0x6666);
    FWT_ASSERT_INT_EQ(cal_dedup_conflicts(&d, 7, 6, 0x6666), 0);
    FWT_ASSERT_INT_EQ(cal_dedup_conflicts(&d, 7, 6, 0x1234), 1);
    /* Rebuilt from segments: the CRCs come back with the sequences (the later of two). */
    cal_dedup_t r;
    cal_dedup_init(&r, 100);
    FWT_ASSERT_OK(cal_dedup_learn(&r, 9, 3, 0x3333, 0));
    FWT_ASSERT_OK(cal_dedup_learn(&r, 9, 4, 0x4444, 0));
    FWT_ASSERT_OK(cal_dedup_learn(&r, 9, 4, 0x4545, 0));
    FWT_ASSERT_INT_EQ(cal_dedup_conflicts(&r, 9, 4, 0x4545), 0);
    FWT_ASSERT_INT_EQ(cal_dedup_conflicts(&r, 9, 4, 0x4444), 1);
    /* A new producer starting at sequence 10 knows no CRC for 9. */
    FWT_ASSERT_OK(cal_dedup_accept(&r, 11, 10, 0));
    FWT_ASSERT_INT_EQ(cal_dedup_conflicts(&r, 11, 9, 0x1), 0);
    cal_dedup_free(&r);
    cal_dedup_free(&d);
}

FWT_TEST(many_producers_and_the_cap)
{
    cal_dedup_t d;
    cal_dedup_init(&d, 1000);
    for (uint64_t p = 1; p <= 1000; p++)
        FWT_ASSERT_OK(cal_dedup_learn(&d, p * 0x9e3779b97f4a7c15ULL, p, 0, (int64_t)p));
    uint64_t expected;
    for (uint64_t p = 1; p <= 1000; p++)
        FWT_ASSERT_INT_EQ(cal_dedup_check(&d, p * 0x9e3779b97f4a7c15ULL, p, &expected),
                          CAL_SEQ_DUPLICATE);
    /* One more: the producer seen least recently (p = 1) is forgotten, no other. */
    FWT_ASSERT_OK(cal_dedup_accept(&d, 42, 1, 5000));
    FWT_ASSERT_UINT_EQ(d.used, 1000);
    FWT_ASSERT_INT_EQ(cal_dedup_check(&d, 0x9e3779b97f4a7c15ULL, 1, &expected), CAL_SEQ_ACCEPT);
    for (uint64_t p = 2; p <= 1000; p++)
        FWT_ASSERT_INT_EQ(cal_dedup_check(&d, p * 0x9e3779b97f4a7c15ULL, p, &expected),
                          CAL_SEQ_DUPLICATE);
    cal_dedup_free(&d);
}

/* A producer id from a small number, spread over the hash. */
static uint64_t pid(uint64_t n)
{
    return n * 0x9e3779b97f4a7c15ULL;
}

static int known(const cal_dedup_t *d, uint64_t producer_id)
{
    uint64_t expected;
    /* Every producer here has sequence 1 stored: a known one answers duplicate. */
    return cal_dedup_check(d, producer_id, 1, &expected) == CAL_SEQ_DUPLICATE;
}

FWT_TEST(the_least_recently_seen_are_forgotten_first)
{
    cal_dedup_t d;
    cal_dedup_init(&d, 100);
    for (uint64_t p = 1; p <= 100; p++)
        FWT_ASSERT_OK(cal_dedup_learn(&d, pid(p), 1, 0, 1000));
    /* Seen again, in this order: 10, 20, ..., 100 are now the newest. */
    for (uint64_t p = 10; p <= 100; p += 10)
        FWT_ASSERT_OK(cal_dedup_accept(&d, pid(p), 2, 2000));
    /* 90 new producers: each forgets the oldest one left, which are the 90 not seen again. */
    for (uint64_t k = 1; k <= 90; k++) {
        FWT_ASSERT_OK(cal_dedup_learn(&d, pid(1000 + k), 1, 0, 3000));
        FWT_ASSERT_UINT_EQ(d.used, 100);
        uint64_t gone = k + (k - 1) / 9; /* the k-th smallest p that is not a multiple of 10 */
        FWT_ASSERT(!known(&d, pid(gone)));
        FWT_ASSERT(known(&d, pid(gone + 1)));
    }
    FWT_ASSERT_UINT_EQ(d.forgotten, 90);
    for (uint64_t p = 10; p <= 100; p += 10)
        FWT_ASSERT(known(&d, pid(p)));
    /* The next ones go in the order they were seen again: 10 first, then 20. */
    FWT_ASSERT_OK(cal_dedup_accept(&d, pid(2000), 1, 4000));
    FWT_ASSERT(!known(&d, pid(10)));
    FWT_ASSERT(known(&d, pid(20)));
    FWT_ASSERT_OK(cal_dedup_accept(&d, pid(2001), 1, 4000));
    FWT_ASSERT(!known(&d, pid(20)));
    FWT_ASSERT(known(&d, pid(30)));
    cal_dedup_free(&d);
}

/*
 * A flood of new producers (one per Scribe connection, say) much larger than
 * the cap: a producer that keeps sending through it is never forgotten, its
 * retries are still recognised.
 */
FWT_TEST(a_producer_that_keeps_sending_survives_a_flood_of_new_ids)
{
    cal_dedup_t d;
    cal_dedup_init(&d, 1000);
    uint64_t me = 42, seq = 0, expected;
    int64_t now = 0;
    for (uint64_t n = 1; n <= 200000; n++) {
        FWT_ASSERT_OK(cal_dedup_accept(&d, pid(1000000 + n), 1, ++now));
        if (n % 900 == 0) { /* fewer new producers than the cap between two of its blocks */
            FWT_ASSERT_INT_EQ(cal_dedup_check(&d, me, seq + 1, &expected), CAL_SEQ_ACCEPT);
            FWT_ASSERT_OK(cal_dedup_accept(&d, me, ++seq, ++now));
            /* Its retry while the block is written waits; once stored, it is a duplicate. */
            FWT_ASSERT_INT_EQ(cal_dedup_check(&d, me, seq, &expected), CAL_SEQ_IN_FLIGHT);
            cal_dedup_stored(&d, me, seq, 0);
            FWT_ASSERT_INT_EQ(cal_dedup_check(&d, me, seq, &expected), CAL_SEQ_DUPLICATE);
            FWT_ASSERT_INT_EQ(cal_dedup_check(&d, me, seq + 2, &expected), CAL_SEQ_GAP);
            FWT_ASSERT_UINT_EQ(expected, seq + 1);
        }
    }
    FWT_ASSERT_UINT_EQ(seq, 222);
    FWT_ASSERT_UINT_EQ(d.used, 1000);
    cal_dedup_free(&d);
}

/*
 * Forgetting at the cap costs no rebuild and no allocation: the table is
 * built only while it grows to the cap, however many producers come after.
 * The table stays whole: exactly the newest max producers are found.
 */
FWT_TEST(forgetting_at_the_cap_rebuilds_nothing)
{
    cal_dedup_t d;
    cal_dedup_init(&d, 4096);
    uint64_t n = 0;
    while (d.used < 4096) {
        n++;
        FWT_ASSERT_OK(cal_dedup_learn(&d, pid(n), 1, 0, (int64_t)n));
    }
    uint64_t rebuilds = d.rebuilds;
    size_t cap = d.cap;
    cal_dedup_entry_t *slots = d.slots;
    FWT_ASSERT_UINT_EQ(rebuilds, 10); /* 16, 32, ..., 8192 slots */
    for (int i = 0; i < 500000; i++) {
        n++;
        FWT_ASSERT_OK(cal_dedup_learn(&d, pid(n), 1, 0, (int64_t)n));
    }
    FWT_ASSERT_UINT_EQ(d.rebuilds, rebuilds);
    FWT_ASSERT_UINT_EQ(d.cap, cap);
    FWT_ASSERT(d.slots == slots); /* never reallocated */
    FWT_ASSERT_UINT_EQ(d.forgotten, 500000);
    FWT_ASSERT_UINT_EQ(d.used, 4096);
    for (uint64_t p = n - 4095; p <= n; p++)
        FWT_ASSERT(known(&d, pid(p)));
    for (uint64_t p = n - 4096 - 1000; p <= n - 4096; p++)
        FWT_ASSERT(!known(&d, pid(p)));
    cal_dedup_free(&d);
}

/*
 * Against a plain model (an array in order of sight), with random producers
 * from a small set, a table 3/4 full at the cap (probe runs of several
 * slots, deletions in their middle) and every operation: every verdict
 * agrees.
 */
FWT_TEST(random_operations_agree_with_a_model)
{
    enum { MAX = 48, IDS = 150 };
    typedef struct {
        uint64_t id, accepted, stored;
    } model_t;
    model_t model[MAX];
    int nmodel = 0;
    cal_dedup_t d;
    cal_dedup_init(&d, MAX);
    int64_t now = 0;
    for (int step = 0; step < 200000; step++) {
        uint64_t id = fwt_rand_range(1, IDS) << 40;
        int m = -1;
        for (int i = 0; i < nmodel; i++)
            if (model[i].id == id)
                m = i;
        uint64_t seq = fwt_rand_range(1, 6), expected = 0, want_expected = 0;
        cal_seq_verdict_t want = CAL_SEQ_ACCEPT;
        if (m >= 0) {
            if (seq <= model[m].stored)
                want = CAL_SEQ_DUPLICATE;
            else if (seq <= model[m].accepted)
                want = CAL_SEQ_IN_FLIGHT;
            else if (seq != model[m].accepted + 1) {
                want = CAL_SEQ_GAP;
                want_expected = model[m].accepted + 1;
            }
        }
        cal_seq_verdict_t got = cal_dedup_check(&d, id, seq, &expected);
        if (got != want || (want == CAL_SEQ_GAP && expected != want_expected))
            FWT_FAIL("step %d: producer %" PRIu64 " seq %" PRIu64 ": verdict %d (expected %" PRIu64
                     "), model %d (%" PRIu64 ")",
                     step, id >> 40, seq, got, expected, want, want_expected);
        switch (fwt_rand_range(0, 3)) {
        case 0: /* accept: what the writer does on CAL_SEQ_ACCEPT */
        case 1:
            if (got != CAL_SEQ_ACCEPT)
                break;
            FWT_ASSERT_OK(cal_dedup_accept(&d, id, seq, ++now));
            if (m < 0) {
                if (nmodel == MAX) { /* forget the least recently seen */
                    memmove(&model[0], &model[1], sizeof(model[0]) * (MAX - 1));
                    nmodel--;
                }
                model[nmodel].id = id;
                model[nmodel].accepted = 0;
                model[nmodel].stored = seq - 1;
                m = nmodel++;
            }
            model[m].accepted = seq;
            /* It is now the newest. */
            if (m != nmodel - 1) {
                model_t e = model[m];
                memmove(&model[m], &model[m + 1], sizeof(model[0]) * (size_t)(nmodel - 1 - m));
                model[nmodel - 1] = e;
            }
            break;
        case 2: /* the oldest accepted block is stored */
            if (m >= 0 && model[m].stored < model[m].accepted) {
                cal_dedup_stored(&d, id, model[m].stored + 1, 0);
                model[m].stored++;
            }
            break;
        case 3: /* the write failed */
            cal_dedup_abort(&d, id);
            if (m >= 0)
                model[m].accepted = model[m].stored;
            break;
        }
        FWT_ASSERT_UINT_EQ(d.used, (size_t)nmodel);
    }
    FWT_ASSERT(d.forgotten > 1000);
    cal_dedup_free(&d);
}
