/*
 * `freeway audit` against a real fabric: a ZooKeeper server, two writers
 * sharing a root, a copier to a file:// destination, a ptail, `freeway send`
 * (whose producer reports to freeway.audit) and `freeway tail --audit` read
 * twice from the start (two lives of one consumer: the audit must count the
 * records once). Every count must agree; then, with the daemons stopped, a
 * segment stored twice must show as a duplicate and a difference, and a
 * removed segment as a loss at every hop that had it.
 */
#include "fwt_cal.h"
#include "fwt_proc.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINES   1000
#define BUCKETS 4

typedef struct fabric_s {
    fwt_zk_t zk;
    char spec[160], root[FWT_PATH_MAX], dest[FWT_PATH_MAX], url[FWT_PATH_MAX + 16];
    fwt_cal_t w1, w2, cp, pt;
} fabric_t;

static int copier_caught_up(void *arg)
{
    fabric_t *f = arg;
    return fwt_copier_caught_up(&f->cp, f->root, BUCKETS + 2);
}

/* `freeway tail --audit` from the start until every line was printed: one consumer life. */
static void consume_all(const fabric_t *f)
{
    char count[32];
    snprintf(count, sizeof(count), "%d", LINES);
    char *const argv[] = {(char *)fwt_bin("freeway"),
                          "tail",
                          "-c",
                          "web",
                          "--zk",
                          (char *)f->spec,
                          "--from",
                          "earliest",
                          "--count",
                          count,
                          "--audit",
                          "--name",
                          "t1",
                          "--quiet",
                          NULL};
    char *out = NULL;
    int rc = fwt_run(argv, 120000, &out);
    if (rc != 0)
        FWT_FAIL("freeway tail --audit exited %d: %s", rc, out ? out : "");
    free(out);
}

/* `freeway audit -c web --settle 0` plus flags (up to 3): its exit status, its output in *out. */
static int audit_run(const fabric_t *f, const char *flag, const char *flag2, const char *flag3,
                     char **out)
{
    char *const argv[] = {(char *)fwt_bin("freeway"),
                          "audit",
                          "-c",
                          "web",
                          "--zk",
                          (char *)f->spec,
                          "--settle",
                          "0s",
                          (char *)flag,
                          (char *)flag2,
                          (char *)flag3,
                          NULL};
    return fwt_run(argv, 60000, out);
}

/* The number after `label` on the summary line that starts with it (after spaces). */
static long long summary_count(const char *out, const char *label)
{
    char want[64];
    snprintf(want, sizeof(want), "\n  %s ", label);
    const char *table = strstr(out, "\n  hop ");
    const char *line = table != NULL ? strstr(table, want) : NULL;
    if (line == NULL)
        FWT_FAIL("no summary line for %s in:\n%s", label, out);
    /* "  hop  name  records  differing": the records column is the second-to-last number. */
    const char *end = strchr(line + 1, '\n');
    long long nums[8];
    int n = 0;
    for (const char *p = line + 1; p < end && n < 8; p++) {
        if ((*p >= '0' && *p <= '9') && (p[-1] == ' ')) {
            char *e;
            long long v = strtoll(p, &e, 10);
            if (*e == ' ' || *e == '\n' || e == end) {
                nums[n++] = v;
                p = e;
            }
        }
    }
    if (n < 1)
        FWT_FAIL("no count on the %s line of:\n%s", label, out);
    return nums[label[0] == 'w' ? n - 1 : n - 2];
}

/* The path of the first segment of a bucket under root. */
static void first_segment(const char *root, int bucket, char *out, size_t cap)
{
    char dir[FWT_PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/web/%d", root, bucket);
    char *const argv[] = {"/bin/sh", "-c", "ls \"$0\"/*.seg | head -n 1", dir, NULL};
    char *ls = NULL;
    FWT_ASSERT_INT_EQ(fwt_run(argv, 10000, &ls), 0);
    char *nl = strchr(ls, '\n');
    if (nl != NULL)
        *nl = '\0';
    FWT_ASSERT(ls[0] == '/');
    snprintf(out, cap, "%s", ls);
    free(ls);
}

FWT_TEST(audit_agrees_then_sees_a_duplicate_and_a_loss)
{
    fabric_t f;
    memset(&f, 0, sizeof(f));
    fwt_zk_start(&f.zk);
    snprintf(f.spec, sizeof(f.spec), "%s/freeway", f.zk.connect);
    snprintf(f.root, sizeof(f.root), "%s/root", fwt_tmpdir_mem());
    snprintf(f.dest, sizeof(f.dest), "%s/copy", fwt_tmpdir_mem());
    snprintf(f.url, sizeof(f.url), "file://%s", f.dest);
    fwt_category_create(f.spec, "web", BUCKETS, NULL);
    fwt_category_create(f.spec, "freeway.audit", 2, NULL);
    fwt_cal_start(&f.w1, "w1", f.spec, f.root, NULL);
    fwt_cal_start(&f.w2, "w2", f.spec, f.root, NULL);
    /* web and freeway.audit: 6 buckets, 3 each. */
    fwt_cal_wait_balanced(&f.w1, &f.w2, (BUCKETS + 2) / 2, "the writers to share the buckets");
    fwt_copier_start(&f.cp, "c1", f.spec, f.root, f.url, NULL);
    fwt_ptail_start(&f.pt, "p1", f.spec, f.root, NULL);

    /* The send's producer reports at its close; each tail life at its own. */
    fwt_send_lines(f.spec, "web", 0, LINES, 8, NULL);
    consume_all(&f);
    consume_all(&f);
    fwt_wait_until(copier_caught_up, &f, 60000, "the copier to catch up");

    char *out = NULL;
    int rc = audit_run(&f, "--verbose", NULL, NULL, &out);
    if (rc != 0 || strstr(out, "every count agrees") == NULL)
        FWT_FAIL("freeway audit exited %d on a healthy fabric:\n%s", rc, out);
    FWT_ASSERT_INT_EQ(summary_count(out, "produced"), LINES);
    FWT_ASSERT_INT_EQ(summary_count(out, "written"), LINES);
    FWT_ASSERT_INT_EQ(summary_count(out, "copy1"), LINES);
    /* Two lives read everything: counted once. */
    FWT_ASSERT_INT_EQ(summary_count(out, "t1"), LINES);
    FWT_ASSERT(strstr(out, "1 producer lives (0 without a final report") != NULL);
    free(out);

    /* At rest: nothing moves the files while they are changed. */
    fwt_cal_stop(&f.pt);
    fwt_cal_stop(&f.cp);
    fwt_cal_stop(&f.w1);
    fwt_cal_stop(&f.w2);

    /* A segment stored twice (a later id, the same blocks). */
    char seg[FWT_PATH_MAX + 64], dup[FWT_PATH_MAX + 64];
    first_segment(f.root, 0, seg, sizeof(seg));
    snprintf(dup, sizeof(dup), "%s/web/0/00000000000000099999.seg", f.root);
    char *const cp_argv[] = {"/bin/cp", seg, dup, NULL};
    FWT_ASSERT_INT_EQ(fwt_run(cp_argv, 10000, NULL), 0);
    /* The writers are gone from ZooKeeper: their root is named. */
    rc = audit_run(&f, "--root", f.root, "--verbose", &out);
    FWT_ASSERT_INT_EQ(rc, 1);
    FWT_ASSERT(strstr(out, "duplicates in the writers' segments") != NULL);
    FWT_ASSERT(strstr(out, "DIFFERS: produced") != NULL);
    FWT_ASSERT(summary_count(out, "written") > LINES);
    free(out);

    /* A segment lost: every hop that had it differs from what is written. */
    FWT_ASSERT_INT_EQ(unlink(dup), 0);
    FWT_ASSERT_INT_EQ(unlink(seg), 0);
    rc = audit_run(&f, "--root", f.root, "--verbose", &out);
    FWT_ASSERT_INT_EQ(rc, 1);
    FWT_ASSERT(summary_count(out, "written") < LINES);
    FWT_ASSERT_INT_EQ(summary_count(out, "produced"), LINES);
    FWT_ASSERT(strstr(out, "DIFFERS: produced") != NULL);
    FWT_ASSERT(strstr(out, "duplicates") == NULL);
    free(out);
    fwt_zk_stop(&f.zk);
}

FWT_TEST(audit_without_a_category_is_a_usage_error)
{
    char *const argv[] = {(char *)fwt_bin("freeway"), "audit", NULL};
    char *out = NULL;
    FWT_ASSERT_INT_EQ(fwt_run(argv, 10000, &out), 2);
    FWT_ASSERT(strstr(out, "-c NAME") != NULL);
    free(out);
}
