/*
 * The chaos run (issue 9; docs/chaos.md): the whole fabric on loopback under
 * faults injected at moments drawn from a seed, then a check that design.md's
 * guarantees held end to end.
 *
 *   a 3-node ZooKeeper ensemble, 3 calligraphus sharing one root, 2 copiers
 *   (both to the same two file:// copies), 2 ptails (one serving the root,
 *   one copy A: consumers resume on either), 4 producers
 *   (tests/chaos/chaos_producer: unique ids, durable acks, a spool each) and
 *   2 consumers (tests/chaos/chaos_consumer: state committed with checkpoints).
 *
 * Faults, up to two at a time, each healed on its own clock: kill -9 and restart of
 * a writer, copier, ptail, producer (restarted on its spool as a new life)
 * or consumer (restarted from its committed checkpoint); SIGSTOP of a writer,
 * copier or ptail past its session timeout (or of a consumer), then SIGCONT;
 * a full disk under a writer (RLIMIT_FSIZE, as test_cal_disk_full); one
 * ZooKeeper server killed (any, or the leader), or two of three for a moment.
 *
 * Then every producer stops (draining its spool), the copies and consumers
 * catch up, and the run checks: every acked id exactly once in the writers'
 * segments, in each copy and in each consumer's committed state; order per
 * producer life and bucket; nothing else stored; no gap; `freeway verify` of
 * the root and the copies; `freeway audit` agrees; no producer gave up a
 * record it had called safe (its log says so). It prints what it
 * injected, and on failure the seed and the command that replays it.
 *
 *   FW_TEST_SEED     the schedule's seed (default: time-based)
 *   FW_CHAOS_SECONDS how long faults are injected (default 120; `make chaos`: 1800)
 */
#include "fwt_cal.h"
#include "fwt_proc.h"
#include "fwt_root.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CATEGORY   "chaos"
#define BUCKETS    6
#define AUDIT_BKTS 2
#define NWRITERS   3
#define NCOPIERS   2
#define NPTAILS    2
#define NPRODUCERS 4
#define NCONSUMERS 2
#define RATE       "250"
#define SESSION_MS 3000
#define MAX_LIVES  256
#define FAIL_SHOWN 5

/* ---- the fabric ------------------------------------------------------------------------------ */

typedef struct producer_s {
    fwt_proc_t proc;
    int life;
    char spool[FWT_PATH_MAX], acked[FWT_PATH_MAX], log[FWT_PATH_MAX];
} producer_t;

typedef struct consumer_s {
    fwt_proc_t proc;
    char name[16], state[FWT_PATH_MAX], log[FWT_PATH_MAX];
} consumer_t;

typedef enum {
    F_KILL_WRITER,
    F_STOP_WRITER,
    F_FULL_DISK,
    F_KILL_COPIER,
    F_KILL_PTAIL,
    F_KILL_ZK,
    F_KILL_ZK_MAJORITY,
    F_KILL_PRODUCER,
    F_KILL_CONSUMER,
    F_KILL_ALL_WRITERS,
    F_KINDS_V1, /* the kinds of session 11's runs: seeds found then replay with these alone */
    F_STOP_COPIER = F_KINDS_V1,
    F_STOP_PTAIL,
    F_STOP_CONSUMER,
    F_KILL_ZK_LEADER,
    F_KINDS
} fault_t;

static const char *const fault_names[F_KINDS] = {
    "writer killed (kill -9) and restarted",
    "writer stopped (SIGSTOP) past its session, then continued",
    "writer's disk full, then room again",
    "copier killed and restarted",
    "ptail killed and restarted",
    "one ZooKeeper server killed and restarted",
    "two ZooKeeper servers of three killed for a moment",
    "producer killed and restarted on its spool",
    "consumer killed and restarted from its checkpoint",
    "every writer killed for a moment (producers spool)",
    "copier stopped (SIGSTOP) past its session, then continued",
    "ptail stopped (SIGSTOP) past its session, then continued",
    "consumer stopped (SIGSTOP) for a while, then continued",
    "ZooKeeper leader killed and restarted",
};

/* How often each fault is drawn, relative to the others. */
static const int fault_weights[F_KINDS] = {3, 1, 1, 1, 1, 1, 1, 2, 2, 1, 1, 1, 1, 1};

/* The kinds drawn from: all of them, or F_KINDS_V1 to replay a seed found before the others. */
static int kinds_drawn = F_KINDS;

typedef struct chaos_s {
    fwt_zk_t zk[3];
    char spec[200], root[FWT_PATH_MAX], copy[2][FWT_PATH_MAX], dests[2 * FWT_PATH_MAX + 32];
    fwt_cal_t writers[NWRITERS], copiers[NCOPIERS], ptails[NPTAILS];
    producer_t producers[NPRODUCERS];
    consumer_t consumers[NCONSUMERS];
    uint64_t injected[F_KINDS];
    uint64_t seed;
    int seconds;
    int passed;
} chaos_t;

static chaos_t ch;

static const char *const daemon_flags[] = {"--session-timeout", "3s", NULL};

static void print_replay(void *arg)
{
    (void)arg;
    if (ch.passed)
        return;
    fprintf(stderr,
            "chaos: FAILED with seed %" PRIu64 " (%d s of faults); replay it with:\n"
            "  FW_TEST_SEED=%" PRIu64 " FW_CHAOS_SECONDS=%d FW_TEST_KEEP=1 tests/run "
            "build/debug test_chaos/\n",
            ch.seed, ch.seconds, ch.seed, ch.seconds);
}

/* A failed run keeps its files (root, copies, spools, states, logs) for the one who chases it. */
static void keep_on_failure(void *arg)
{
    (void)arg;
    if (!ch.passed)
        setenv("FW_TEST_KEEP", "1", 1);
}

static void producer_spawn(int i)
{
    producer_t *p = &ch.producers[i];
    char tool[FWT_PATH_MAX], index[16], life[16];
    snprintf(tool, sizeof(tool), "%s", fwt_tool("chaos_producer"));
    snprintf(index, sizeof(index), "%d", i);
    snprintf(life, sizeof(life), "%d", p->life);
    char *const argv[] = {tool,     "--zk",   ch.spec, "--category", CATEGORY, "--index",
                          index,    "--life", life,    "--spool",    p->spool, "--acked",
                          p->acked, "--rate", RATE,    NULL};
    char name[32];
    snprintf(name, sizeof(name), "producer%d.%d", i, p->life);
    fwt_proc_spawn(&p->proc, name, argv, p->log);
}

static void consumer_spawn(int i)
{
    consumer_t *c = &ch.consumers[i];
    char tool[FWT_PATH_MAX];
    snprintf(tool, sizeof(tool), "%s", fwt_tool("chaos_consumer"));
    char *const argv[] = {tool,    "--zk",    ch.spec,  "--category", CATEGORY, "--name",
                          c->name, "--state", c->state, "--audit",    NULL};
    fwt_proc_spawn(&c->proc, c->name, argv, c->log);
}

static int writers_own_all(void *arg)
{
    (void)arg;
    double sum = 0;
    for (int i = 0; i < NWRITERS; i++) {
        double v = fwt_cal_metric(&ch.writers[i], "freeway_calligraphus_owned_buckets");
        if (v < 0)
            return 0;
        sum += v;
    }
    return sum == BUCKETS + AUDIT_BKTS;
}

static void fabric_start(void)
{
    fwt_zk_ensemble_start(ch.zk);
    snprintf(ch.spec, sizeof(ch.spec), "%s/freeway", fwt_zk_ensemble_connect(ch.zk));
    const char *dir = fwt_tmpdir_mem();
    snprintf(ch.root, sizeof(ch.root), "%s/root", dir);
    for (int i = 0; i < 2; i++)
        snprintf(ch.copy[i], sizeof(ch.copy[i]), "%s/copy%c", dir, 'A' + i);
    snprintf(ch.dests, sizeof(ch.dests), "file://%s,file://%s", ch.copy[0], ch.copy[1]);
    fwt_category_create(ch.spec, CATEGORY, BUCKETS, NULL);
    fwt_category_create(ch.spec, "freeway.audit", AUDIT_BKTS, NULL);
    for (int i = 0; i < NWRITERS; i++) {
        char id[8];
        snprintf(id, sizeof(id), "w%d", i + 1);
        fwt_cal_start(&ch.writers[i], id, ch.spec, ch.root, daemon_flags);
    }
    fwt_wait_until(writers_own_all, NULL, 60000, "the writers to own every bucket");
    for (int i = 0; i < NCOPIERS; i++) {
        char id[8];
        snprintf(id, sizeof(id), "c%d", i + 1);
        fwt_copier_start(&ch.copiers[i], id, ch.spec, ch.root, ch.dests, daemon_flags);
    }
    for (int i = 0; i < NPTAILS; i++) {
        char id[8];
        snprintf(id, sizeof(id), "t%d", i + 1);
        /* The second serves copy A: a consumer resumes on either (guarantee 5). */
        const char *serves = i == 0 ? ch.root : ch.copy[0];
        if (mkdir(serves, 0755) < 0 && errno != EEXIST)
            FWT_FAIL("mkdir %s: %s", serves, strerror(errno));
        fwt_ptail_start(&ch.ptails[i], id, ch.spec, serves, daemon_flags);
    }
    for (int i = 0; i < NCONSUMERS; i++) {
        consumer_t *c = &ch.consumers[i];
        snprintf(c->name, sizeof(c->name), "consumer%d", i + 1);
        snprintf(c->state, sizeof(c->state), "%s/consumer%d.state", fwt_tmpdir(), i + 1);
        snprintf(c->log, sizeof(c->log), "%s/consumer%d.log", fwt_tmpdir(), i + 1);
        consumer_spawn(i);
    }
    for (int i = 0; i < NPRODUCERS; i++) {
        producer_t *p = &ch.producers[i];
        p->life = 1;
        snprintf(p->spool, sizeof(p->spool), "%s/spool%d", dir, i);
        snprintf(p->acked, sizeof(p->acked), "%s/producer%d.acked", fwt_tmpdir(), i);
        snprintf(p->log, sizeof(p->log), "%s/producer%d.log", fwt_tmpdir(), i);
        producer_spawn(i);
    }
}

/* ---- faults ---------------------------------------------------------------------------------- */

static void pause_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0)
        ;
}

static fault_t draw_fault(void)
{
    int total = 0;
    for (int k = 0; k < kinds_drawn; k++)
        total += fault_weights[k];
    int r = (int)fwt_rand_range(0, (uint64_t)total - 1);
    for (int k = 0; k < kinds_drawn; k++) {
        if (r < fault_weights[k])
            return (fault_t)k;
        r -= fault_weights[k];
    }
    return F_KILL_WRITER;
}

static void set_fsize(pid_t pid, rlim_t limit)
{
    struct rlimit rl = {.rlim_cur = limit, .rlim_max = RLIM_INFINITY};
    if (prlimit(pid, RLIMIT_FSIZE, &rl, NULL) < 0)
        FWT_FAIL("prlimit(%d, RLIMIT_FSIZE): %s", (int)pid, strerror(errno));
}

static void restart_producer(int i)
{
    producer_t *p = &ch.producers[i];
    fwt_proc_signal(&p->proc, SIGKILL);
    fwt_proc_wait(&p->proc, 10000, NULL);
    p->life++;
    if (p->life >= MAX_LIVES)
        FWT_FAIL("producer %d: more than %d lives", i, MAX_LIVES);
    producer_spawn(i);
}

/*
 * Faults overlap: up to MAX_ACTIVE at once, each with its own heal time. A
 * fault's target is one no other active fault holds; at least one writer is
 * left alone by the one-writer faults; ZooKeeper loses at most one server
 * while other faults run. Two faults run alone: a ZooKeeper majority (every
 * other part's restart wants ZooKeeper) and every writer killed at once.
 */
#define MAX_ACTIVE 2

typedef struct active_s {
    fault_t kind;
    int target, target2; /* an index into the kind's parts; target2 for the majority */
    int64_t heal_at;
} active_t;

static active_t active[MAX_ACTIVE];
static int nactive;

static int busy(int is_writer, int is_zk, int is_copier, int is_ptail, int is_consumer, int i)
{
    for (int k = 0; k < nactive; k++) {
        fault_t f = active[k].kind;
        int writer = f == F_KILL_WRITER || f == F_STOP_WRITER || f == F_FULL_DISK;
        int zk = f == F_KILL_ZK || f == F_KILL_ZK_LEADER || f == F_KILL_ZK_MAJORITY;
        int copier = f == F_KILL_COPIER || f == F_STOP_COPIER;
        int ptail = f == F_KILL_PTAIL || f == F_STOP_PTAIL;
        int consumer = f == F_KILL_CONSUMER || f == F_STOP_CONSUMER;
        if ((is_writer && writer) || (is_zk && zk) || (is_copier && copier) ||
            (is_ptail && ptail) || (is_consumer && consumer))
            if (active[k].target == i || (f == F_KILL_ZK_MAJORITY && active[k].target2 == i))
                return 1;
    }
    return 0;
}

static int count_active(int writers, int zk)
{
    int n = 0;
    for (int k = 0; k < nactive; k++) {
        fault_t f = active[k].kind;
        n += writers && (f == F_KILL_WRITER || f == F_STOP_WRITER || f == F_FULL_DISK);
        n += zk && (f == F_KILL_ZK || f == F_KILL_ZK_LEADER || f == F_KILL_ZK_MAJORITY);
    }
    return n;
}

/* A fault that runs alone: a ZooKeeper majority, or every writer. */
static int alone(fault_t f)
{
    return f == F_KILL_ZK_MAJORITY || f == F_KILL_ALL_WRITERS;
}

static int alone_active(void)
{
    for (int k = 0; k < nactive; k++)
        if (alone(active[k].kind))
            return 1;
    return 0;
}

/* Starts fault f if the rules allow; 0 if they do not (draw another). */
static int fault_start(fault_t f)
{
    if (alone_active() || (alone(f) && nactive > 0))
        return 0;
    active_t a = {.kind = f, .target = -1, .target2 = -1};
    int64_t now = fwt_now_ms();
    a.heal_at = now + (int64_t)fwt_rand_range(200, 3000);
    switch (f) {
    case F_KILL_WRITER:
    case F_STOP_WRITER:
    case F_FULL_DISK: {
        a.target = (int)fwt_rand_range(0, NWRITERS - 1);
        if (count_active(1, 0) >= NWRITERS - 1 || busy(1, 0, 0, 0, 0, a.target))
            return 0;
        fwt_cal_t *w = &ch.writers[a.target];
        if (f == F_KILL_WRITER) {
            fwt_cal_kill(w);
        } else if (f == F_STOP_WRITER) {
            fwt_proc_signal(&w->proc, SIGSTOP);
            a.heal_at = now + SESSION_MS + (int64_t)fwt_rand_range(500, 2000);
        } else {
            set_fsize(w->proc.pid, 4096); /* smaller than any segment: every append fails */
        }
        break;
    }
    case F_KILL_COPIER:
    case F_KILL_PTAIL:
    case F_STOP_COPIER:
    case F_STOP_PTAIL: {
        int copier = f == F_KILL_COPIER || f == F_STOP_COPIER;
        a.target = (int)fwt_rand_range(0, (copier ? NCOPIERS : NPTAILS) - 1);
        if (busy(0, 0, copier, !copier, 0, a.target))
            return 0;
        fwt_cal_t *d = copier ? &ch.copiers[a.target] : &ch.ptails[a.target];
        if (f == F_KILL_COPIER || f == F_KILL_PTAIL) {
            fwt_cal_kill(d);
        } else {
            /* Past its session: it wakes up to a world that moved on without it. */
            fwt_proc_signal(&d->proc, SIGSTOP);
            a.heal_at = now + SESSION_MS + (int64_t)fwt_rand_range(500, 2000);
        }
        break;
    }
    case F_KILL_ZK:
    case F_KILL_ZK_LEADER:
        if (count_active(0, 1) > 0)
            return 0;
        a.target = f == F_KILL_ZK ? (int)fwt_rand_range(0, 2) : fwt_zk_ensemble_leader(ch.zk);
        if (a.target < 0)
            return 0; /* no leader answers now (an election): draw another */
        fwt_zk_kill(&ch.zk[a.target]);
        break;
    case F_KILL_ZK_MAJORITY:
        a.target = (int)fwt_rand_range(0, 2);
        a.target2 = (a.target + 1 + (int)fwt_rand_range(0, 1)) % 3;
        fwt_zk_kill(&ch.zk[a.target]);
        fwt_zk_kill(&ch.zk[a.target2]);
        a.heal_at = now + (int64_t)fwt_rand_range(300, 1500); /* under the session timeout */
        break;
    case F_KILL_ALL_WRITERS:
        /* Longer than spool_after (1 s) at times: the producers' spools take over. */
        for (int i = 0; i < NWRITERS; i++)
            fwt_cal_kill(&ch.writers[i]);
        a.heal_at = now + (int64_t)fwt_rand_range(500, 4000);
        break;
    case F_KILL_PRODUCER:
        restart_producer((int)fwt_rand_range(0, NPRODUCERS - 1));
        ch.injected[f]++;
        return 1; /* restarted at once: nothing to heal */
    case F_KILL_CONSUMER:
    case F_STOP_CONSUMER:
        a.target = (int)fwt_rand_range(0, NCONSUMERS - 1);
        if (busy(0, 0, 0, 0, 1, a.target))
            return 0;
        if (f == F_STOP_CONSUMER) {
            fwt_proc_signal(&ch.consumers[a.target].proc, SIGSTOP);
            a.heal_at = now + (int64_t)fwt_rand_range(500, 5000);
            break;
        }
        fwt_proc_signal(&ch.consumers[a.target].proc, SIGKILL);
        fwt_proc_wait(&ch.consumers[a.target].proc, 10000, NULL);
        a.heal_at = now + (int64_t)fwt_rand_range(0, 1000);
        break;
    default:
        return 0;
    }
    active[nactive++] = a;
    ch.injected[f]++;
    return 1;
}

static void fault_heal(const active_t *a)
{
    switch (a->kind) {
    case F_KILL_WRITER:
        fwt_cal_restart(&ch.writers[a->target]);
        break;
    case F_STOP_WRITER:
        fwt_proc_signal(&ch.writers[a->target].proc, SIGCONT);
        break;
    case F_FULL_DISK:
        set_fsize(ch.writers[a->target].proc.pid, RLIM_INFINITY);
        break;
    case F_KILL_COPIER:
        fwt_cal_restart(&ch.copiers[a->target]);
        break;
    case F_KILL_PTAIL:
        fwt_cal_restart(&ch.ptails[a->target]);
        break;
    case F_STOP_COPIER:
        fwt_proc_signal(&ch.copiers[a->target].proc, SIGCONT);
        break;
    case F_STOP_PTAIL:
        fwt_proc_signal(&ch.ptails[a->target].proc, SIGCONT);
        break;
    case F_STOP_CONSUMER:
        fwt_proc_signal(&ch.consumers[a->target].proc, SIGCONT);
        break;
    case F_KILL_ZK:
    case F_KILL_ZK_LEADER:
        fwt_zk_restart(&ch.zk[a->target]);
        break;
    case F_KILL_ZK_MAJORITY:
        fwt_zk_restart(&ch.zk[a->target]);
        fwt_zk_restart(&ch.zk[a->target2]);
        break;
    case F_KILL_CONSUMER:
        consumer_spawn(a->target);
        break;
    case F_KILL_ALL_WRITERS:
        for (int i = 0; i < NWRITERS; i++)
            fwt_cal_restart(&ch.writers[i]);
        break;
    default:
        break;
    }
}

/* Heals every active fault due by now (all of them with force). */
static void heal_due(int force)
{
    int64_t now = fwt_now_ms();
    for (int k = 0; k < nactive;) {
        if (force || active[k].heal_at <= now) {
            active_t a = active[k];
            active[k] = active[--nactive];
            fault_heal(&a);
        } else {
            k++;
        }
    }
}

/* The fault period: faults start 0.3-2 s apart while fewer than MAX_ACTIVE run. */
static void inject_faults(int seconds)
{
    int64_t end = fwt_now_ms() + (int64_t)seconds * 1000;
    int64_t next = fwt_now_ms() + (int64_t)fwt_rand_range(300, 2000);
    while (fwt_now_ms() < end) {
        heal_due(0);
        int64_t now = fwt_now_ms();
        if (now >= next && nactive < MAX_ACTIVE) {
            for (int tries = 0; tries < 10 && !fault_start(draw_fault()); tries++)
                ;
            next = now + (int64_t)fwt_rand_range(300, 2000);
        }
        int64_t wake = next;
        for (int k = 0; k < nactive; k++)
            if (active[k].heal_at < wake)
                wake = active[k].heal_at;
        now = fwt_now_ms();
        if (wake > now)
            pause_ms((uint64_t)(wake - now < 100 ? wake - now : 100));
    }
    heal_due(1);
}

/* ---- the end of the run ---------------------------------------------------------------------- */

/* Each producer stops sending and drains its spool (a new life drains a dead one's). */
static void producers_finish(void)
{
    for (int i = 0; i < NPRODUCERS; i++)
        fwt_proc_signal(&ch.producers[i].proc, SIGTERM);
    for (int i = 0; i < NPRODUCERS; i++) {
        producer_t *p = &ch.producers[i];
        int status = 0;
        if (fwt_proc_wait(&p->proc, 180000, &status) < 0 || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            char tail[4096];
            FWT_FAIL("producer %d (life %d) did not drain and close (status 0x%x):\n%s", i, p->life,
                     status, fwt_file_tail(p->log, 20, tail, sizeof(tail)));
        }
    }
}

static uint64_t tree_records(const char *dir)
{
    char path[FWT_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/%s", dir, CATEGORY);
    fwt_seg_tree_t t;
    memset(&t, 0, sizeof(t));
    struct stat st;
    if (stat(path, &st) == 0)
        fwt_seg_tree(path, &t);
    return t.records;
}

static int copies_caught_up(void *arg)
{
    uint64_t want = *(uint64_t *)arg;
    return tree_records(ch.copy[0]) == want && tree_records(ch.copy[1]) == want;
}

/* Lines of a consumer's state starting with 'R' (committed or not). */
static uint64_t state_records(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    uint64_t n = 0;
    int c, at_start = 1;
    while ((c = getc(f)) != EOF) {
        if (at_start && c == 'R')
            n++;
        at_start = c == '\n';
    }
    fclose(f);
    return n;
}

static int consumers_caught_up(void *arg)
{
    uint64_t want = *(uint64_t *)arg;
    for (int i = 0; i < NCONSUMERS; i++)
        if (state_records(ch.consumers[i].state) < want)
            return 0;
    return 1;
}

/* A poll for conditions that read many files: once a second, not fwt_wait_until's 50 ms. */
static void wait_slowly(int (*cond)(void *), void *arg, int timeout_ms, const char *what)
{
    int64_t end = fwt_now_ms() + timeout_ms;
    while (!cond(arg)) {
        if (fwt_now_ms() > end)
            FWT_FAIL("timed out after %d ms waiting for %s", timeout_ms, what);
        pause_ms(1000);
    }
}

/* ---- the check ------------------------------------------------------------------------------- */

/* A set of record ids (producer, life, seq packed in 64 bits) with counts. */
typedef struct idset_s {
    uint64_t *keys; /* 0: empty (ids are never 0: lives start at 1) */
    uint32_t *counts;
    size_t cap, n;
} idset_t;

static uint64_t id_pack(unsigned p, unsigned l, uint64_t s)
{
    return ((uint64_t)p << 56) | ((uint64_t)l << 40) | s;
}

static int id_parse(const void *v, size_t len, uint64_t *id, unsigned *p, unsigned *l, uint64_t *s)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, v, len);
    buf[len] = '\0';
    int end = 0;
    if (sscanf(buf, "p%u.l%u.s%" SCNu64 "%n", p, l, s, &end) != 3 || (size_t)end != len ||
        *p >= NPRODUCERS || *l == 0 || *l >= MAX_LIVES || *s >= (1ull << 40))
        return -1;
    *id = id_pack(*p, *l, *s);
    return 0;
}

static uint32_t *idset_slot(idset_t *t, uint64_t id, int add)
{
    if (add && (t->n + 1) * 2 > t->cap) {
        idset_t bigger = {.cap = t->cap ? t->cap * 2 : 1 << 16};
        bigger.keys = calloc(bigger.cap, sizeof(*bigger.keys));
        bigger.counts = calloc(bigger.cap, sizeof(*bigger.counts));
        FWT_ASSERT(bigger.keys != NULL && bigger.counts != NULL);
        for (size_t i = 0; i < t->cap; i++)
            if (t->keys[i] != 0)
                *idset_slot(&bigger, t->keys[i], 1) = t->counts[i];
        free(t->keys);
        free(t->counts);
        *t = bigger;
    }
    if (t->cap == 0)
        return NULL;
    size_t i = (size_t)((id * 0x9e3779b97f4a7c15ull) >> 20) & (t->cap - 1);
    while (t->keys[i] != 0 && t->keys[i] != id)
        i = (i + 1) & (t->cap - 1);
    if (t->keys[i] == 0) {
        if (!add)
            return NULL;
        t->keys[i] = id;
        t->n++;
    }
    return &t->counts[i];
}

static void idset_free(idset_t *t)
{
    free(t->keys);
    free(t->counts);
    memset(t, 0, sizeof(*t));
}

/* What one place (the root, a copy, a consumer's state) holds. */
typedef struct holding_s {
    const char *what;
    idset_t ids;
    uint64_t records, dups, disorder, foreign, gaps;
    uint64_t *last; /* [producer][life][bucket]: 1 + the last seq seen */
    char first_problem[300];
} holding_t;

static void holding_init(holding_t *h, const char *what)
{
    memset(h, 0, sizeof(*h));
    h->what = what;
    h->last = calloc((size_t)NPRODUCERS * MAX_LIVES * BUCKETS, sizeof(*h->last));
    FWT_ASSERT(h->last != NULL);
}

static void holding_free(holding_t *h)
{
    idset_free(&h->ids);
    free(h->last);
}

static void problem(holding_t *h, const char *fmt, const char *a, uint32_t bucket)
{
    if (h->first_problem[0] == '\0')
        snprintf(h->first_problem, sizeof(h->first_problem), fmt, a, bucket);
}

static void hold(holding_t *h, uint32_t bucket, const void *value, size_t len)
{
    h->records++;
    char text[64];
    snprintf(text, sizeof(text), "%.*s", (int)(len < 60 ? len : 60), (const char *)value);
    uint64_t id, s;
    unsigned p, l;
    if (bucket >= BUCKETS || id_parse(value, len, &id, &p, &l, &s) < 0) {
        h->foreign++;
        problem(h, "a record that no producer sent: \"%s\" in bucket %" PRIu32, text, bucket);
        return;
    }
    uint32_t *count = idset_slot(&h->ids, id, 1);
    if ((*count)++ > 0) {
        h->dups++;
        problem(h, "%s stored again, in bucket %" PRIu32, text, bucket);
        return;
    }
    /* 1 + the highest seq of this producer life seen in the bucket: a lower one is late. */
    uint64_t *last = &h->last[((size_t)p * MAX_LIVES + l) * BUCKETS + bucket];
    if (*last > s) {
        h->disorder++;
        problem(h, "%s after a later record of its producer life in bucket %" PRIu32, text, bucket);
    } else {
        *last = s + 1;
    }
}

static void hold_stored(void *arg, uint32_t bucket, uint64_t segment_id,
                        const fw_block_header_t *hdr, const fw_record_t *rec)
{
    (void)segment_id;
    (void)hdr;
    hold(arg, bucket, rec->value, rec->value_len);
}

/* A consumer's committed state: its lines up to the last checkpoint line. */
static void hold_state(holding_t *h, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        FWT_FAIL("cannot read %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long committed = 0;
    while ((n = getline(&line, &cap, f)) > 0)
        if (line[n - 1] == '\n' && line[0] == 'C')
            committed = ftell(f);
    rewind(f);
    while (ftell(f) < committed && (n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        unsigned bucket;
        int at = 0;
        if (line[0] == 'R' && sscanf(line, "R %u %n", &bucket, &at) == 1 && at > 0)
            hold(h, bucket, line + at, (size_t)(n - at));
        else if (line[0] == 'G') {
            h->gaps++;
            problem(h, "a gap: \"%s\"%.0" PRIu32, line, 0);
        }
    }
    free(line);
    fclose(f);
}

/* Every acked id of every producer's every life (lines "<value> <0|1>"; "fail" lines are not). */
static uint64_t read_acked(idset_t *acked)
{
    uint64_t n = 0;
    for (int i = 0; i < NPRODUCERS; i++) {
        FILE *f = fopen(ch.producers[i].acked, "r");
        if (f == NULL)
            continue;
        char value[64], what[16];
        while (fscanf(f, "%63s %15s%*[^\n]", value, what) == 2) {
            uint64_t id, s;
            unsigned p, l;
            if (strcmp(what, "0") != 0 && strcmp(what, "1") != 0)
                continue;
            if (id_parse(value, strlen(value), &id, &p, &l, &s) < 0)
                FWT_FAIL("producer %d's acked file holds \"%s\"", i, value);
            uint32_t *c = idset_slot(acked, id, 1);
            if ((*c)++ == 0)
                n++;
        }
        fclose(f);
    }
    return n;
}

/* Prints what h holds against acked; 1 if all is well. */
static int judge(holding_t *h, idset_t *acked)
{
    uint64_t missing = 0;
    char first_missing[64] = "";
    for (size_t i = 0; i < acked->cap; i++) {
        uint64_t id = acked->keys[i];
        if (id == 0 || idset_slot(&h->ids, id, 0) != NULL)
            continue;
        if (missing++ == 0)
            snprintf(first_missing, sizeof(first_missing), "p%u.l%u.s%" PRIu64,
                     (unsigned)(id >> 56), (unsigned)((id >> 40) & 0xffff),
                     (uint64_t)(id & ((1ull << 40) - 1)));
    }
    int ok = missing == 0 && h->dups == 0 && h->disorder == 0 && h->foreign == 0 && h->gaps == 0;
    printf("chaos: %-28s %8" PRIu64 " records: %" PRIu64 " acked missing, %" PRIu64
           " duplicates, %" PRIu64 " out of order, %" PRIu64 " foreign, %" PRIu64 " gaps  %s\n",
           h->what, h->records, missing, h->dups, h->disorder, h->foreign, h->gaps,
           ok ? "ok" : "FAILED");
    if (missing > 0)
        printf("chaos:   first acked id missing: %s\n", first_missing);
    if (h->first_problem[0] != '\0')
        printf("chaos:   first problem: %s\n", h->first_problem);
    return ok;
}

/*
 * What a producer says when it gives up records it had already called safe:
 * a spooled block refused for good, a spool file it cannot read back, a
 * writer that lost acked blocks. In this run every one of them is a bug,
 * and the line names the block, which the ids alone do not.
 */
static const char *const loss_words[] = {
    "cannot be delivered",
    "blocks are lost",
    "it lost blocks it had acked",
    "what it holds may be lost",
};

/* Prints how many loss lines the producers' logs hold, and the first; 1 if none. */
static int judge_producer_logs(void)
{
    uint64_t lines = 0;
    char first[400] = "";
    for (int i = 0; i < NPRODUCERS; i++) {
        FILE *f = fopen(ch.producers[i].log, "r");
        if (f == NULL)
            continue;
        char line[1024];
        while (fgets(line, sizeof(line), f) != NULL) {
            for (size_t w = 0; w < sizeof(loss_words) / sizeof(loss_words[0]); w++) {
                if (strstr(line, loss_words[w]) == NULL)
                    continue;
                if (lines++ == 0)
                    snprintf(first, sizeof(first), "%.*s", (int)strcspn(line, "\n"), line);
                break;
            }
        }
        fclose(f);
    }
    printf("chaos: %-28s %8" PRIu64 " lines giving up safe records  %s\n", "producers' logs", lines,
           lines == 0 ? "ok" : "FAILED");
    if (lines > 0)
        printf("chaos:   first: %s\n", first);
    return lines == 0;
}

static int run_quiet(char *const argv[], const char *what)
{
    char *out = NULL;
    int rc = fwt_run(argv, 300000, &out);
    printf("chaos: %-28s exit %d%s\n", what, rc, rc == 0 ? "  ok" : "  FAILED");
    if (rc != 0 && out != NULL)
        printf("%s\n", out);
    free(out);
    return rc == 0;
}

static int check(void)
{
    idset_t acked = {0};
    uint64_t nacked = read_acked(&acked);
    printf("chaos: %" PRIu64 " ids acked by %d producers\n", nacked, NPRODUCERS);
    int ok = 1;

    holding_t h;
    holding_init(&h, "writers' segments");
    fwt_root_records(ch.root, CATEGORY, hold_stored, &h);
    ok &= judge(&h, &acked);
    holding_free(&h);
    for (int i = 0; i < 2; i++) {
        char what[32];
        snprintf(what, sizeof(what), "copy %c", 'A' + i);
        holding_init(&h, what);
        fwt_root_records(ch.copy[i], CATEGORY, hold_stored, &h);
        ok &= judge(&h, &acked);
        holding_free(&h);
    }
    for (int i = 0; i < NCONSUMERS; i++) {
        char what[48];
        snprintf(what, sizeof(what), "%s's committed state", ch.consumers[i].name);
        holding_init(&h, what);
        hold_state(&h, ch.consumers[i].state);
        ok &= judge(&h, &acked);
        holding_free(&h);
    }
    idset_free(&acked);
    ok &= judge_producer_logs();

    char freeway[FWT_PATH_MAX];
    snprintf(freeway, sizeof(freeway), "%s", fwt_bin("freeway"));
    char *const verify[] = {freeway, "verify", ch.root, ch.copy[0], ch.copy[1], NULL};
    ok &= run_quiet(verify, "freeway verify");
    char copies[2 * FWT_PATH_MAX + 32];
    snprintf(copies, sizeof(copies), "file://%s,file://%s", ch.copy[0], ch.copy[1]);
    char *const audit[] = {freeway,    "audit", "-c",       CATEGORY, "--root", ch.root,
                           "--copies", copies,  "--settle", "0",      NULL};
    ok &= run_quiet(audit, "freeway audit");
    return ok;
}

/* ---- the run --------------------------------------------------------------------------------- */

static void chaos_run(int seconds)
{
    ch.seed = fwt_seed();
    ch.seconds = seconds;
    fwt_defer(print_replay, NULL);
    printf("chaos: seed %" PRIu64 ", %d s of faults\n", ch.seed, seconds);
    fabric_start();
    fwt_defer(keep_on_failure, NULL); /* after the temp dirs': it runs before their removal */

    inject_faults(seconds);

    producers_finish();
    uint64_t stored = tree_records(ch.root);
    wait_slowly(copies_caught_up, &stored, 180000, "the copies to hold every stored record");
    wait_slowly(consumers_caught_up, &stored, 180000, "the consumers to read every record");
    for (int i = 0; i < NCONSUMERS; i++) {
        consumer_t *c = &ch.consumers[i];
        fwt_proc_signal(&c->proc, SIGTERM);
        int status = 0;
        if (fwt_proc_wait(&c->proc, 60000, &status) < 0 || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            char tail[4096];
            FWT_FAIL("%s did not stop cleanly (status 0x%x):\n%s", c->name, status,
                     fwt_file_tail(c->log, 20, tail, sizeof(tail)));
        }
    }
    for (int i = 0; i < NCOPIERS; i++)
        fwt_cal_stop(&ch.copiers[i]);
    for (int i = 0; i < NPTAILS; i++)
        fwt_cal_stop(&ch.ptails[i]);
    for (int i = 0; i < NWRITERS; i++)
        fwt_cal_stop(&ch.writers[i]);

    printf("chaos: faults injected:\n");
    for (int k = 0; k < F_KINDS; k++)
        printf("chaos:   %4" PRIu64 "  %s\n", ch.injected[k], fault_names[k]);
    printf("chaos: %" PRIu64 " records stored\n", stored);
    int ok = check();
    fflush(stdout);
    if (!ok)
        FWT_FAIL("the guarantees did not hold (see above)");
    ch.passed = 1;
    for (int i = 0; i < 3; i++)
        fwt_zk_stop(&ch.zk[i]);
}

static int seconds_from_env(int fallback)
{
    const char *s = getenv("FW_CHAOS_SECONDS");
    int v = s != NULL ? atoi(s) : 0;
    return v > 0 ? v : fallback;
}

/* Two minutes in `make test` and `make asan` (each under tests/run's 300 s per test). */
FWT_TEST(run)
{
    chaos_run(seconds_from_env(120));
}

/*
 * Seeds that once failed, each for a minute of its schedule (docs/chaos.md,
 * "Findings"; the timing that exposed the fault is not replayed exactly, so
 * each also has a deterministic test where the fault was fixed).
 */

/* A full disk mid group commit: copies and consumers differed from the root (test_segment). */
FWT_TEST(seed_1795493538859755810)
{
    fwt_seed_set(1795493538859755810ull);
    kinds_drawn = F_KINDS_V1;
    chaos_run(seconds_from_env(60));
}
