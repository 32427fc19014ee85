/*
 * The test framework's runtime: the test table, main(), failure and cleanup
 * handling, and the seeded random source. Spawning processes and ZooKeeper
 * live in fwt_proc.c and fwt_zk.c.
 */
#include "fwtest.h"

#include "error.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define FWT_MAX_TESTS    512
#define FWT_MAX_CLEANUPS 256

struct fwt_entry {
    const char *name;
    fwt_fn fn;
};

static struct fwt_entry tests[FWT_MAX_TESTS];
static int ntests;

struct fwt_cleanup {
    fwt_cleanup_fn fn;
    void *arg;
};

static struct fwt_cleanup cleanups[FWT_MAX_CLEANUPS];
static int ncleanups;

static uint64_t seed;
static int seed_set;
static uint64_t rng[4];

void fwt_register(const char *name, fwt_fn fn)
{
    if (ntests == FWT_MAX_TESTS) {
        fprintf(stderr, "fwtest: too many tests\n");
        abort();
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

void fwt_defer(fwt_cleanup_fn fn, void *arg)
{
    if (ncleanups == FWT_MAX_CLEANUPS) {
        fprintf(stderr, "fwtest: too many cleanups\n");
        abort();
    }
    cleanups[ncleanups].fn = fn;
    cleanups[ncleanups].arg = arg;
    ncleanups++;
}

void fwt_run_cleanups(void)
{
    while (ncleanups > 0) {
        ncleanups--;
        cleanups[ncleanups].fn(cleanups[ncleanups].arg);
    }
}

void fwt_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    if (seed_set)
        fprintf(stderr, "  (replay with FW_TEST_SEED=%" PRIu64 ")\n", seed);
    fflush(stderr);
    fwt_run_cleanups();
    exit(1);
}

const char *fwt_strerror_hook(int code)
{
    return fw_strerror(code);
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void seed_rng(void)
{
    uint64_t s = seed;
    for (int i = 0; i < 4; i++)
        rng[i] = splitmix64(&s);
}

uint64_t fwt_seed(void)
{
    if (!seed_set) {
        const char *env = getenv("FW_TEST_SEED");
        if (env != NULL && *env != '\0') {
            seed = strtoull(env, NULL, 10);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^
                   ((uint64_t)getpid() << 32);
        }
        seed_set = 1;
        seed_rng();
        fprintf(stderr, "seed %" PRIu64 "\n", seed);
    }
    return seed;
}

void fwt_seed_set(uint64_t s)
{
    seed = s;
    seed_set = 1;
    seed_rng();
    fprintf(stderr, "seed %" PRIu64 " (fixed by the test)\n", seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t fwt_rand(void)
{
    if (!seed_set)
        fwt_seed();
    uint64_t result = rotl(rng[1] * 5, 7) * 9;
    uint64_t t = rng[1] << 17;
    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl(rng[3], 45);
    return result;
}

uint64_t fwt_rand_range(uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return lo;
    uint64_t span = hi - lo + 1;
    if (span == 0)
        return fwt_rand();
    return lo + fwt_rand() % span;
}

void fwt_rand_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len >= 8) {
        uint64_t r = fwt_rand();
        memcpy(p, &r, 8);
        p += 8;
        len -= 8;
    }
    if (len > 0) {
        uint64_t r = fwt_rand();
        memcpy(p, &r, len);
    }
}

int64_t fwt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_fatal_signal(int sig)
{
    /* SIGTERM from the runner's timeout: stop spawned processes, then die. */
    signal(sig, SIG_DFL);
    fwt_run_cleanups();
    raise(sig);
}

static int run_one(const struct fwt_entry *t)
{
    int64_t start = fwt_now_ms();
    t->fn();
    fwt_run_cleanups();
    fprintf(stderr, "ok %s (%" PRId64 " ms)\n", t->name, fwt_now_ms() - start);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGTERM, on_fatal_signal);
    signal(SIGINT, on_fatal_signal);
    signal(SIGPIPE, SIG_IGN);
    atexit(fwt_run_cleanups);

    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < ntests; i++)
            printf("%s\n", tests[i].name);
        return 0;
    }
    if (argc == 2) {
        for (int i = 0; i < ntests; i++) {
            if (strcmp(tests[i].name, argv[1]) == 0)
                return run_one(&tests[i]);
        }
        fprintf(stderr, "no test named %s (try --list)\n", argv[1]);
        return 2;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--list | TEST]\n", argv[0]);
        return 2;
    }
    /* No argument: run every test in this process, in order (for debugging). */
    for (int i = 0; i < ntests; i++)
        run_one(&tests[i]);
    return 0;
}
