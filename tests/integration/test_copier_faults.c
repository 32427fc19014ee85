/*
 * The copier where things go wrong around it: SIGTERM with ZooKeeper
 * unreachable or a destination write failing, a segment removed before its
 * first copy, progress it cannot read, copiers that saw different bucket
 * lists, memory after a catch-up. Each was a way to hang, stall a bucket or
 * overwrite a copy (found in review). Hand-made source roots, no writer.
 */
#include "fwt_cal.h"
#include "fwt_proc.h"
#include "fwt_root.h"
#include "fwt_zk.h"
#include "fwtest.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FWT_HAS_ASAN 1
#endif
#endif
#ifndef FWT_HAS_ASAN
#define FWT_HAS_ASAN 0
#endif

#include "fsutil.h"
#include "names.h"
#include "copier/assign.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

static const char *flags[] = {"--session-timeout", "2s",    "--poll", "200ms",
                              "--log-level",       "debug", NULL};

typedef struct env_s {
    fwt_zk_t zk;
    char spec[160], root[FWT_PATH_MAX], dest[FWT_PATH_MAX], url[FWT_PATH_MAX + 16];
    char src0[FWT_PATH_MAX + 16], dst0[FWT_PATH_MAX + 16];
} env_t;

static void env_start(env_t *e)
{
    memset(e, 0, sizeof(*e));
    fwt_zk_start(&e->zk);
    snprintf(e->spec, sizeof(e->spec), "%s/freeway", e->zk.connect);
    snprintf(e->root, sizeof(e->root), "%s/root", fwt_tmpdir());
    snprintf(e->dest, sizeof(e->dest), "%s/copy", fwt_tmpdir());
    snprintf(e->url, sizeof(e->url), "file://%s", e->dest);
    snprintf(e->src0, sizeof(e->src0), "%s/web/0", e->root);
    snprintf(e->dst0, sizeof(e->dst0), "%s/web/0", e->dest);
    FWT_ASSERT_OK(fw_mkdir_p(e->src0));
}

static void seg_at(char *out, size_t cap, const char *dir, uint64_t id)
{
    char name[FW_SEG_NAME_LEN + 1];
    fw_seg_name(name, id);
    snprintf(out, cap, "%s/%s", dir, name);
}

static int64_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

typedef struct same_s {
    char a[FWT_PATH_MAX * 2], b[FWT_PATH_MAX * 2];
} same_t;

static int same_size(void *arg)
{
    same_t *s = arg;
    return size_of(s->a) >= 0 && size_of(s->a) == size_of(s->b);
}

typedef struct owned_s {
    fwt_cal_t *cp;
} owned_t;

static int owns_one(void *arg)
{
    owned_t *o = arg;
    return fwt_cal_metric_sum(o->cp, "freeway_copier_bucket_owned") == 1;
}

static void wait_owned(fwt_cal_t *cp)
{
    owned_t o = {cp};
    fwt_wait_until(owns_one, &o, 20000, "the copier to hold its claim");
}

static void wait_copied(const char *src_dir, const char *dst_dir, uint64_t id, int ms)
{
    same_t s;
    seg_at(s.a, sizeof(s.a), src_dir, id);
    seg_at(s.b, sizeof(s.b), dst_dir, id);
    fwt_wait_until(same_size, &s, ms, "the segment to be copied whole");
}

static int files_equal(const char *a, const char *b)
{
    FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
    int eq = x != NULL && y != NULL;
    while (eq) {
        int c = fgetc(x), d = fgetc(y);
        if (c != d)
            eq = 0;
        if (c == EOF || d == EOF)
            break;
    }
    if (x)
        fclose(x);
    if (y)
        fclose(y);
    return eq;
}

/*
 * Finding: with ZooKeeper unreachable (SUSPENDED), SIGTERM never completes:
 * cp_task_step(READY) returns on !connected before it looks at stopping.
 */
FWT_TEST(sigterm_with_zookeeper_unreachable_exits)
{
    env_t e;
    env_start(&e);
    fwt_segment_write(e.src0, "web", 1, 5, 10, 1000, 1);
    fwt_segment_write(e.src0, "web", 2, 5, 10, 2000, 0);
    fwt_cal_t cp;
    fwt_copier_start(&cp, "c1", e.spec, e.root, e.url, flags);
    wait_copied(e.src0, e.dst0, 2, 20000);
    wait_owned(&cp);
    fwt_zk_kill(&e.zk);
    usleep(500 * 1000); /* let the copier see the connection go */
    fwt_cal_stop(&cp);  /* fails unless it exits 0 within 20 s */
}

/*
 * Finding: a destination write that fails after SIGTERM leaves the task
 * READY with a backoff and nobody steps it again: the stop hangs. A FIFO in
 * place of the temporary file holds the write in flight until we let it
 * fail (fdatasync on a FIFO: EINVAL).
 */
FWT_TEST(sigterm_while_a_destination_write_fails_exits)
{
    env_t e;
    env_start(&e);
    fwt_segment_write(e.src0, "web", 1, 5, 10, 1000, 1);
    FWT_ASSERT_OK(fw_mkdir_p(e.dst0));
    char fifo[FWT_PATH_MAX * 2];
    snprintf(fifo, sizeof(fifo), "%s/.00000000000000000001.seg.tmp", e.dst0);
    FWT_ASSERT_INT_EQ(mkfifo(fifo, 0644), 0);
    fwt_cal_t cp;
    fwt_copier_start(&cp, "c1", e.spec, e.root, e.url, flags);
    usleep(1500 * 1000); /* the claim, the read, then the write blocks in open() */
    fwt_proc_signal(&cp.proc, SIGTERM);
    usleep(300 * 1000);
    int fd = open(fifo, O_RDONLY | O_NONBLOCK);
    FWT_ASSERT(fd >= 0);
    char buf[65536];
    for (int i = 0; i < 20; i++) {
        while (read(fd, buf, sizeof(buf)) > 0) {
        }
        usleep(50 * 1000);
    }
    close(fd);
    int status = 0;
    if (fwt_proc_wait(&cp.proc, 15000, &status) < 0) {
        fwt_proc_signal(&cp.proc, SIGKILL);
        fwt_proc_wait(&cp.proc, 5000, &status);
        FWT_FAIL("copier did not stop within 15 s of SIGTERM after a failed write");
    }
    FWT_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fwt_zk_stop(&e.zk);
}

/*
 * Finding: a segment listed, then deleted before any byte of it was copied
 * (the writer removes a torn-header segment on recovery, or a segment whose
 * header write failed on a full disk; its id is never reused) stalls the
 * bucket for good: CP_READ_GONE at offset 0 returns without moving on.
 */
FWT_TEST(a_segment_removed_before_its_first_copy_does_not_stall_the_bucket)
{
    env_t e;
    env_start(&e);
    fwt_segment_write(e.src0, "web", 1, 5, 10, 1000, 1);
    char two[FWT_PATH_MAX * 2];
    seg_at(two, sizeof(two), e.src0, 2);
    int fd = open(two, O_WRONLY | O_CREAT | O_EXCL, 0644); /* created, header not yet written */
    FWT_ASSERT(fd >= 0);
    close(fd);
    fwt_cal_t cp;
    fwt_copier_start(&cp, "c1", e.spec, e.root, e.url, flags);
    wait_copied(e.src0, e.dst0, 1, 20000);
    usleep(1000 * 1000);               /* the copier has moved on to segment 2 (no header yet) */
    FWT_ASSERT_INT_EQ(unlink(two), 0); /* the writer's recovery removes it */
    fwt_segment_write(e.src0, "web", 3, 5, 10, 3000, 0); /* and goes on with the next id */
    wait_copied(e.src0, e.dst0, 3, 10000);
    fwt_cal_stop(&cp);
    fwt_zk_stop(&e.zk);
}

/* ---- a plain ZooKeeper client for poking at the progress node -------------------------- */

static zhandle_t *zk_open(const char *connect)
{
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    zhandle_t *zh = zookeeper_init(connect, NULL, 10000, NULL, NULL, 0);
    FWT_ASSERT(zh != NULL);
    return zh;
}

static void zk_get_retry(zhandle_t *zh, const char *path, char *buf, int *len, struct Stat *st)
{
    int rc, cap = *len;
    int64_t deadline = fwt_now_ms() + 10000;
    while ((rc = zoo_get(zh, path, 0, buf, len, st)) == ZCONNECTIONLOSS &&
           fwt_now_ms() < deadline) {
        *len = cap;
        usleep(100 * 1000);
    }
    if (rc != ZOK)
        FWT_FAIL("zoo_get %s: %s", path, zerror(rc));
}

static void progress_node(const env_t *e, char *out, size_t cap)
{
    char key[FWT_PATH_MAX * 3];
    size_t k = 0;
    for (const char *p = e->url; *p && k + 4 < sizeof(key); p++) {
        if (*p == '/' || *p == '%')
            k += (size_t)snprintf(key + k, 4, "%%%02X", (unsigned char)*p);
        else
            key[k++] = *p;
    }
    key[k] = '\0';
    snprintf(out, cap, "/freeway/copier/%s/web/0", key);
}

/*
 * Finding: progress that does not parse (here: a field a newer copier
 * version added; pbtext rejects unknown fields) makes on_loaded call
 * stop_bucket, which leaves the task READY at segment 0 offset 0; the next
 * poll copies from the bucket's first segment and its first write (offset
 * 0: "replaces whatever is there") overwrites the complete copy of segment
 * 1 with its header and one chunk.
 */
FWT_TEST(unreadable_progress_never_rewrites_a_copied_segment)
{
    env_t e;
    env_start(&e);
    fwt_segment_write(e.src0, "web", 1, 200, 10, 1000, 1);
    fwt_segment_write(e.src0, "web", 2, 5, 10, 2000, 0);
    const char *small[] = {"--session-timeout", "2s", "--poll", "200ms", "--chunk", "4K", NULL};
    fwt_cal_t cp;
    fwt_copier_start(&cp, "c1", e.spec, e.root, e.url, small);
    wait_copied(e.src0, e.dst0, 1, 20000);
    wait_copied(e.src0, e.dst0, 2, 20000);
    fwt_cal_stop(&cp);

    char path[FWT_PATH_MAX * 4];
    progress_node(&e, path, sizeof(path));
    zhandle_t *zh = zk_open(e.zk.connect);
    char buf[1024];
    int len = (int)sizeof(buf) - 64;
    struct Stat st;
    zk_get_retry(zh, path, buf, &len, &st);
    printf("progress was: %.*s\n", len, buf);
    len += snprintf(buf + len, sizeof(buf) - (size_t)len, "newer_field = 1\n");
    FWT_ASSERT_INT_EQ(zoo_set(zh, path, buf, len, -1), ZOK);
    zookeeper_close(zh);

    fwt_cal_restart(&cp);
    usleep(3000 * 1000); /* several polls */
    char a[FWT_PATH_MAX * 2], b[FWT_PATH_MAX * 2];
    seg_at(a, sizeof(a), e.src0, 1);
    seg_at(b, sizeof(b), e.dst0, 1);
    printf("source segment 1: %" PRId64 " bytes, copy: %" PRId64 " bytes\n", size_of(a),
           size_of(b));
    FWT_ASSERT(files_equal(a, b));
    fwt_cal_stop(&cp);
    fwt_zk_stop(&e.zk);
}

typedef struct all_copied_s {
    const env_t *e;
    int buckets;
    uint64_t id;
    int missing_bucket;
} all_copied_t;

static int all_copied(void *arg)
{
    all_copied_t *a = arg;
    for (int b = 0; b < a->buckets; b++) {
        char s[FWT_PATH_MAX * 2], d[FWT_PATH_MAX * 2], sd[FWT_PATH_MAX + 32], dd[FWT_PATH_MAX + 32];
        snprintf(sd, sizeof(sd), "%s/web/%d", a->e->root, b);
        snprintf(dd, sizeof(dd), "%s/web/%d", a->e->dest, b);
        seg_at(s, sizeof(s), sd, a->id);
        seg_at(d, sizeof(d), dd, a->id);
        if (size_of(d) != size_of(s)) {
            a->missing_bucket = b;
            return 0;
        }
    }
    return 1;
}

static void dest_key(const env_t *e, char *key, size_t cap)
{
    size_t k = 0;
    for (const char *p = e->url; *p && k + 4 < cap; p++) {
        if (*p == '/' || *p == '%')
            k += (size_t)snprintf(key + k, 4, "%%%02X", (unsigned char)*p);
        else
            key[k++] = *p;
    }
    key[k] = '\0';
}

/*
 * A gone category's name and a bucket count for which c1 (sees <gone>/0 too)
 * and c2 (does not) leave a web bucket to nobody.
 */
static int pick_split(const env_t *e, char *gone, size_t cap, int *orphan)
{
    char key[FWT_PATH_MAX * 3];
    dest_key(e, key, sizeof(key));
    static char keys[41][FWT_PATH_MAX * 3 + 32];
    const char *with[41], *without[40];
    const char *ids[] = {"c1", "c2"};
    for (int g = 0; g < 50; g++) {
        snprintf(gone, cap, "old%d", g);
        for (int nb = 2; nb <= 40; nb++) {
            snprintf(keys[0], sizeof(keys[0]), "%.1400s/%.64s/0", key, gone);
            with[0] = keys[0];
            for (int b = 0; b < nb; b++) {
                snprintf(keys[b + 1], sizeof(keys[b + 1]), "%s/web/%d", key, b);
                with[b + 1] = without[b] = keys[b + 1];
            }
            int ow[41], oo[40];
            FWT_ASSERT_OK(cp_assign(with, (size_t)nb + 1, ids, 2, ow));
            FWT_ASSERT_OK(cp_assign(without, (size_t)nb, ids, 2, oo));
            for (int b = 0; b < nb; b++)
                if (ow[b + 1] != 0 && oo[b] != 1) {
                    *orphan = b;
                    return nb;
                }
        }
    }
    FWT_FAIL("no split found that shows the disagreement for this destination key");
    return 0;
}

/*
 * Finding: the source's bucket list only grows. A copier that saw a bucket
 * directory that is gone now (a deleted category, cleaned up) computes the
 * bounded-load split over one more key than a copier started after it, and
 * the two can disagree for good: a live bucket wanted by neither copier is
 * never copied again.
 */
FWT_TEST(copiers_that_saw_different_bucket_lists_still_cover_every_bucket)
{
    env_t e;
    env_start(&e);
    int orphan = -1;
    char gone[32];
    int nb = pick_split(&e, gone, sizeof(gone), &orphan);
    printf("%d web buckets and %s/0; by the two views web/%d is nobody's\n", nb, gone, orphan);
    char dir[FWT_PATH_MAX + 64];
    for (int b = 0; b < nb; b++) {
        snprintf(dir, sizeof(dir), "%s/web/%d", e.root, b);
        FWT_ASSERT_OK(fw_mkdir_p(dir));
        fwt_segment_write(dir, "web", 1, 5, 10, 1000, 1);
    }
    snprintf(dir, sizeof(dir), "%s/%s/0", e.root, gone);
    FWT_ASSERT_OK(fw_mkdir_p(dir));
    fwt_segment_write(dir, gone, 1, 5, 10, 1000, 1);
    fwt_cal_t c1, c2;
    fwt_copier_start(&c1, "c1", e.spec, e.root, e.url, flags);
    all_copied_t a = {&e, nb, 1, -1};
    fwt_wait_until(all_copied, &a, 20000, "every web bucket copied by c1");
    /* The category "old" is deleted and its files cleaned up. */
    char cmd[FWT_PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s/%s'", e.root, gone);
    FWT_ASSERT_INT_EQ(system(cmd), 0);
    fwt_copier_start(&c2, "c2", e.spec, e.root, e.url, flags);
    usleep(2000 * 1000); /* both see each other and split */
    for (int b = 0; b < nb; b++) {
        snprintf(dir, sizeof(dir), "%s/web/%d", e.root, b);
        fwt_segment_write(dir, "web", 2, 5, 10, 2000, 0);
    }
    a.id = 2;
    int64_t deadline = fwt_now_ms() + 15000;
    while (!all_copied(&a)) {
        if (fwt_now_ms() > deadline)
            FWT_FAIL("bucket web/%d is copied by neither copier (c1 owns %.0f, c2 owns %.0f)",
                     a.missing_bucket, fwt_cal_metric_sum(&c1, "freeway_copier_bucket_owned"),
                     fwt_cal_metric_sum(&c2, "freeway_copier_bucket_owned"));
        usleep(100 * 1000);
    }
    fwt_cal_stop(&c2);
    fwt_cal_stop(&c1);
    fwt_zk_stop(&e.zk);
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/*
 * Finding: every task keeps its read buffer (fw_buf_reset keeps the memory)
 * for the copier's life, so memory grows with buckets x --chunk: a copier
 * that caught up on 48 buckets holds about 48 x 4 MiB long after it is idle.
 */
FWT_TEST(an_idle_copier_does_not_hold_a_chunk_per_bucket)
{
    env_t e;
    env_start(&e);
    enum { NB = 48 };
    for (int b = 0; b < NB; b++) {
        char dir[FWT_PATH_MAX + 32];
        snprintf(dir, sizeof(dir), "%s/web/%d", e.root, b);
        FWT_ASSERT_OK(fw_mkdir_p(dir));
        fwt_segment_write(dir, "web", 1, 400, 1000, 1000, 0); /* about 5 MB, open */
    }
    fwt_cal_t cp;
    const char *quiet[] = {"--session-timeout", "2s", "--poll", "200ms", NULL};
    fwt_copier_start(&cp, "c1", e.spec, e.root, e.url, quiet);
    all_copied_t a = {&e, NB, 1, -1};
    fwt_wait_until(all_copied, &a, 60000, "every bucket copied");
    usleep(1000 * 1000);
    long kib = rss_kib(cp.proc.pid);
    printf("copier RSS after catching up on %d buckets: %ld MiB\n", NB, kib / 1024);
    FWT_ASSERT(kib > 0);
#if defined(__SANITIZE_ADDRESS__) || FWT_HAS_ASAN
    /* AddressSanitizer keeps freed memory in quarantine (256 MiB): RSS says nothing here. */
    printf("RSS bound not checked under AddressSanitizer\n");
#else
    FWT_ASSERT(kib < 64 * 1024);
#endif
    fwt_cal_stop(&cp);
    fwt_zk_stop(&e.zk);
}

/*
 * /readyz names a failing destination: the copy's bucket directory is
 * blocked by a file (every write fails with ENOTDIR), then freed; the
 * copier says why it is not ready, then copies and is ready again.
 */
FWT_TEST(readyz_names_a_failing_destination_until_it_recovers)
{
    env_t e;
    env_start(&e);
    fwt_segment_write(e.src0, "web", 1, 5, 10, 1000, 1);
    char blocker[FWT_PATH_MAX * 2];
    snprintf(blocker, sizeof(blocker), "%s/web", e.dest);
    FWT_ASSERT_OK(fw_mkdir_p(e.dest));
    FILE *f = fopen(blocker, "w");
    FWT_ASSERT(f != NULL);
    fclose(f);
    fwt_cal_t cp;
    fwt_copier_start(&cp, "c1", e.spec, e.root, e.url, flags);
    char reason[FWT_PATH_MAX + 64];
    snprintf(reason, sizeof(reason), "destination %s failing (last error", e.url);
    fwt_cal_wait_unready(&cp, reason, "the copier's /readyz to name the failing destination");
    FWT_ASSERT_INT_EQ(unlink(blocker), 0);
    wait_copied(e.src0, e.dst0, 1, 30000);
    fwt_cal_wait_ready(&cp, "the copier's /readyz to recover");
    fwt_cal_stop(&cp);
    fwt_zk_stop(&e.zk);
}
