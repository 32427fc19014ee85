/*
 * freeway's test framework: registration, assertions that print both sides,
 * cleanups that run on failure, and a seeded random source.
 *
 * A test binary holds several tests; tests/run executes each one in its own
 * process (`BIN NAME`) with a timeout, so a crash or hang fails only that test.
 */
#ifndef FWTEST_H
#define FWTEST_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*fwt_fn)(void);
typedef void (*fwt_cleanup_fn)(void *arg);

void fwt_register(const char *name, fwt_fn fn);

/* Reports a failure at file:line, runs the registered cleanups, exits 1. */
__attribute__((noreturn, format(printf, 3, 4))) void fwt_fail(const char *file, int line,
                                                              const char *fmt, ...);

/*
 * Registers fn(arg) to run when the test ends, pass or fail, in reverse
 * order. Cleanups run after the test function has returned (or at exit on
 * failure), so arg must not point into the test's stack.
 */
void fwt_defer(fwt_cleanup_fn fn, void *arg);
/* Runs the registered cleanups now (the harness calls it at exit). */
void fwt_run_cleanups(void);

/* The seed of this test run: $FW_TEST_SEED if set, else time-based; printed. */
uint64_t fwt_seed(void);
/* Fixes this test's seed (a regression test replaying a seed that once failed). */
void fwt_seed_set(uint64_t seed);
/* xoshiro256** seeded from fwt_seed() (reset at each test). */
uint64_t fwt_rand(void);
/* Uniform in [lo, hi]. */
uint64_t fwt_rand_range(uint64_t lo, uint64_t hi);
void fwt_rand_bytes(void *buf, size_t len);

/* Monotonic milliseconds. */
int64_t fwt_now_ms(void);

#define FWT_TEST(name)                                                                             \
    static void name(void);                                                                        \
    __attribute__((constructor)) static void fwt_register_##name(void)                             \
    {                                                                                              \
        fwt_register(#name, name);                                                                 \
    }                                                                                              \
    static void name(void)

#define FWT_FAIL(...) fwt_fail(__FILE__, __LINE__, __VA_ARGS__)

#define FWT_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fwt_fail(__FILE__, __LINE__, "assertion failed: %s", #cond);                           \
    } while (0)

#define FWT_ASSERT_INT_EQ(a, b)                                                                    \
    do {                                                                                           \
        long long fwt_a_ = (long long)(a), fwt_b_ = (long long)(b);                                \
        if (fwt_a_ != fwt_b_)                                                                      \
            fwt_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, fwt_a_, fwt_b_);        \
    } while (0)

#define FWT_ASSERT_UINT_EQ(a, b)                                                                   \
    do {                                                                                           \
        unsigned long long fwt_a_ = (unsigned long long)(a), fwt_b_ = (unsigned long long)(b);     \
        if (fwt_a_ != fwt_b_)                                                                      \
            fwt_fail(__FILE__, __LINE__, "%s == %s: %llu != %llu", #a, #b, fwt_a_, fwt_b_);        \
    } while (0)

#define FWT_ASSERT_INT_OP(a, op, b)                                                                \
    do {                                                                                           \
        long long fwt_a_ = (long long)(a), fwt_b_ = (long long)(b);                                \
        if (!(fwt_a_ op fwt_b_))                                                                   \
            fwt_fail(__FILE__, __LINE__, "%s %s %s: %lld vs %lld", #a, #op, #b, fwt_a_, fwt_b_);   \
    } while (0)

#define FWT_ASSERT_STR_EQ(a, b)                                                                    \
    do {                                                                                           \
        const char *fwt_a_ = (a), *fwt_b_ = (b);                                                   \
        if (fwt_a_ == NULL || fwt_b_ == NULL || strcmp(fwt_a_, fwt_b_) != 0)                       \
            fwt_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,                     \
                     fwt_a_ ? fwt_a_ : "(null)", fwt_b_ ? fwt_b_ : "(null)");                      \
    } while (0)

#define FWT_ASSERT_MEM_EQ(a, b, n)                                                                 \
    do {                                                                                           \
        size_t fwt_n_ = (n);                                                                       \
        if (fwt_n_ && memcmp((a), (b), fwt_n_) != 0)                                               \
            fwt_fail(__FILE__, __LINE__, "%s and %s differ within %zu bytes", #a, #b, fwt_n_);     \
    } while (0)

/* An API returning 0 or a negative code; prints the code's name on failure. */
#define FWT_ASSERT_OK(expr)                                                                        \
    do {                                                                                           \
        int fwt_rc_ = (int)(expr);                                                                 \
        if (fwt_rc_ < 0)                                                                           \
            fwt_fail(__FILE__, __LINE__, "%s failed: %d (%s)", #expr, fwt_rc_,                     \
                     fwt_strerror_hook(fwt_rc_));                                                  \
    } while (0)

/* Names an error code; the harness links freeway's error table. */
const char *fwt_strerror_hook(int code);

#endif
