/*
 * ZooKeeper digest ACLs: with --zk-auth the CLI and the daemons create
 * their nodes so that only that identity may change them and anyone may
 * read them. A real server; a plain client without the identity tries to
 * change the tree and is refused, while producers (which only read) still
 * send, and the fabric works as without ACLs. Readers never create the
 * tree (they wait for it), a tree under a parent another identity made
 * works, a daemon with the identity reports an open tree, and the fixes in
 * docs/operations.md (setAcl, a password change) work as written.
 */
#include "fwt_cal.h"
#include "fwt_proc.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define AUTH "freeway:s3cret"

static int category_cmd(const char *spec, const char *auth, const char *verb, const char *extra,
                        char **out)
{
    char *const argv[] = {(char *)fwt_bin("freeway"),
                          "category",
                          (char *)verb,
                          "web",
                          "--zk",
                          (char *)spec,
                          "--zk-auth",
                          (char *)auth,
                          (char *)extra,
                          extra != NULL ? "3" : NULL,
                          NULL};
    return fwt_run(argv, 30000, out);
}

/*
 * Fails unless path's ACL is "all rights for digest ids starting with
 * prefix (n of them), read for anyone".
 */
static void expect_acl(zhandle_t *zh, const char *path, int n, const char *prefix)
{
    struct ACL_vector acl;
    struct Stat st;
    int rc = zoo_get_acl(zh, path, &acl, &st);
    if (rc != ZOK)
        FWT_FAIL("get_acl %s: %s", path, zerror(rc));
    int ours = 0, world = 0, other = 0;
    for (int k = 0; k < acl.count; k++) {
        const struct ACL *a = &acl.data[k];
        fprintf(stderr, "ACL %s: %s:%s perms %d\n", path, a->id.scheme, a->id.id, a->perms);
        if (strcmp(a->id.scheme, "digest") == 0 && strncmp(a->id.id, prefix, strlen(prefix)) == 0 &&
            a->perms == ZOO_PERM_ALL)
            ours++;
        else if (strcmp(a->id.scheme, "world") == 0 && strcmp(a->id.id, "anyone") == 0 &&
                 a->perms == ZOO_PERM_READ)
            world++;
        else
            other++;
    }
    deallocate_ACL_vector(&acl);
    if (ours != n || world != 1 || other != 0)
        FWT_FAIL("%s: ACL is not (%d x digest %s...: all, world: read)", path, n, prefix);
}

FWT_TEST(only_the_identity_changes_the_tree_and_anyone_reads_it)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[160];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    char *out = NULL;
    char *const create[] = {(char *)fwt_bin("freeway"),
                            "category",
                            "create",
                            "web",
                            "--buckets",
                            "2",
                            "--zk",
                            spec,
                            "--zk-auth",
                            AUTH,
                            NULL};
    FWT_ASSERT_INT_EQ(fwt_run(create, 30000, &out), 0);
    free(out);

    const char *flags[] = {"--zk-auth", AUTH, NULL};
    fwt_cal_t w1;
    fwt_cal_start(&w1, "w1", spec, fwt_tmpdir(), flags);
    fwt_cal_wait_owns(&w1, 2, "the writer to own both buckets");
    fwt_cal_wait_ready(&w1, "the writer to be ready");
    fwt_send_lines(spec, "web", 0, 1000, 4, NULL); /* a producer reads ZooKeeper only */

    /* Every node freeway made: all rights for the identity, read for anyone. */
    zhandle_t *zh = fwt_zk_client(zk.connect);
    static const char *const paths[] = {"/freeway", "/freeway/categories/web",
                                        "/freeway/buckets/web/0", "/freeway/buckets/web/0/owner",
                                        "/freeway/nodes/calligraphus/w1"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        expect_acl(zh, paths[i], 1, "freeway:");

    /* Without the identity: reads work, changes do not. */
    char buf[1024];
    int len = sizeof(buf);
    FWT_ASSERT_INT_EQ(zoo_get(zh, "/freeway/categories/web", 0, buf, &len, NULL), ZOK);
    FWT_ASSERT_INT_EQ(zoo_set(zh, "/freeway/categories/web", "buckets = 1", 11, -1), ZNOAUTH);
    FWT_ASSERT_INT_EQ(zoo_create(zh, "/freeway/categories/evil", "buckets = 1", 11,
                                 &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0),
                      ZNOAUTH);
    FWT_ASSERT_INT_EQ(zoo_delete(zh, "/freeway/buckets/web/0/owner", -1), ZNOAUTH);
    FWT_ASSERT_INT_EQ(zoo_delete(zh, "/freeway/nodes/calligraphus/w1", -1), ZNOAUTH);
    zookeeper_close(zh);

    /* The CLI: refused without the identity (and says so), allowed with it. */
    FWT_ASSERT(category_cmd(spec, "", "alter", "--buckets", &out) != 0);
    if (strstr(out, "not authenticated") == NULL)
        FWT_FAIL("the refusal does not say why:\n%s", out);
    free(out);
    FWT_ASSERT_INT_EQ(category_cmd(spec, AUTH, "alter", "--buckets", &out), 0);
    free(out);
    fwt_cal_wait_owns(&w1, 3, "the writer to take the new bucket (its node made with the ACL)");
    FWT_ASSERT_INT_EQ(category_cmd(spec, "nocolon", "describe", NULL, &out), 1);
    free(out);

    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

static void expect_out(const char *out, const char *needle)
{
    if (strstr(out, needle) == NULL)
        FWT_FAIL("output lacks \"%s\":\n%s", needle, out);
}

/* `freeway ARGS... --zk SPEC` (NULL-terminated ARGS): its exit status and output. */
static int freeway(const char *spec, char **out, ...)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)fwt_bin("freeway");
    va_list ap;
    va_start(ap, out);
    for (char *a; (a = va_arg(ap, char *)) != NULL && n < 28;)
        argv[n++] = a;
    va_end(ap);
    argv[n++] = "--zk";
    argv[n++] = (char *)spec;
    argv[n] = NULL;
    return fwt_run(argv, 30000, out);
}

typedef struct {
    const char *path;
    const char *needle;
    long from; /* where to start reading */
} logwait_t;

static int log_has(void *arg)
{
    const logwait_t *w = arg;
    FILE *f = fopen(w->path, "r");
    if (f == NULL)
        return 0;
    fseek(f, w->from, SEEK_SET);
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, w->needle) != NULL;
    fclose(f);
    return found;
}

/* Waits up to 30 s for needle in the log at path. */
static void wait_log(const char *path, const char *needle)
{
    logwait_t w = {path, needle, 0};
    char what[1024];
    snprintf(what, sizeof(what), "\"%.200s\" in %.500s", needle, path);
    fwt_wait_until(log_has, &w, 30000, what);
}

/* 1 if this life of the daemon c has logged needle. */
static int daemon_logged(const fwt_cal_t *c, const char *needle)
{
    logwait_t w = {c->log_path, needle, c->log_offset};
    return log_has(&w);
}

/* Starts `freeway tail -c web --from earliest --count N`, stdout to out, stderr to err. */
static void tail_spawn(fwt_proc_t *p, const char *spec, int n, const char *out, const char *err)
{
    char cmd[4096], log[FWT_PATH_MAX];
    snprintf(cmd, sizeof(cmd),
             "exec '%s' tail -c web --zk '%s' --from earliest --count %d >'%s' 2>'%s'",
             fwt_bin("freeway"), spec, n, out, err);
    snprintf(log, sizeof(log), "%s/tail-sh.log", fwt_tmpdir());
    char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
    fwt_proc_spawn(p, "tail", argv, log);
}

/*
 * A reader that comes first (freeway status, a producer, a consumer) must
 * not create the chroot: it would get the open ACL and no owner, and anyone
 * could then change the tree although the daemons use an identity.
 */
FWT_TEST(readers_never_create_the_tree_they_wait_for_it)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[160], want[200];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(want, sizeof(want), "no freeway tree at %s", spec);
    char *out = NULL;
    FWT_ASSERT_INT_EQ(freeway(spec, &out, "status", NULL), 1);
    expect_out(out, want);
    free(out);
    FWT_ASSERT_INT_EQ(freeway(spec, &out, "category", "list", NULL), 1);
    expect_out(out, want);
    free(out);

    /* A producer and a consumer started first wait, and say why. */
    char in[FWT_PATH_MAX], send_log[FWT_PATH_MAX], tail_out[FWT_PATH_MAX], tail_err[FWT_PATH_MAX];
    snprintf(in, sizeof(in), "%s/in.txt", fwt_tmpdir());
    snprintf(send_log, sizeof(send_log), "%s/send.log", fwt_tmpdir());
    snprintf(tail_out, sizeof(tail_out), "%s/tail.out", fwt_tmpdir());
    snprintf(tail_err, sizeof(tail_err), "%s/tail.err", fwt_tmpdir());
    FILE *f = fopen(in, "w");
    FWT_ASSERT(f != NULL);
    fputs("a x\nb y\n", f);
    fclose(f);
    fwt_proc_t send, tail;
    fwt_send_spawn(&send, spec, "web", in, send_log, NULL);
    tail_spawn(&tail, spec, 2, tail_out, tail_err);
    wait_log(send_log, want);
    wait_log(tail_err, want);
    zhandle_t *zh = fwt_zk_client(zk.connect);
    FWT_ASSERT_INT_EQ(zoo_exists(zh, "/freeway", 0, NULL), ZNONODE);

    /* The tree comes from freeway category with the identity: protected from the start. */
    FWT_ASSERT_INT_EQ(
        freeway(spec, &out, "category", "create", "web", "--buckets", "2", "--zk-auth", AUTH, NULL),
        0);
    free(out);
    expect_acl(zh, "/freeway", 1, "freeway:");
    expect_acl(zh, "/freeway/categories", 1, "freeway:");
    struct ACL evil_items[1] = {
        {.perms = ZOO_PERM_ALL, .id = {"digest", "mallory:xxxxxxxxxxxxxxxxxxxxxxxxxxx="}}};
    struct ACL_vector evil = {1, evil_items};
    FWT_ASSERT_INT_EQ(zoo_create(zh, "/freeway/copier", NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0),
                      ZNOAUTH);
    FWT_ASSERT_INT_EQ(zoo_set_acl(zh, "/freeway", -1, &evil), ZNOAUTH);
    zookeeper_close(zh);

    /* The daemons come; the producer and the consumer that waited carry on. */
    const char *flags[] = {"--zk-auth", AUTH, NULL};
    fwt_cal_t w1, p1;
    fwt_cal_start(&w1, "w1", spec, fwt_tmpdir(), flags);
    fwt_ptail_start(&p1, "p1", spec, fwt_tmpdir(), flags);
    fwt_cal_wait_owns(&w1, 2, "the writer to own both buckets");
    char buf[4096], wbuf[4096];
    int rc = fwt_send_wait(&send, 60000);
    if (rc != 0)
        FWT_FAIL("freeway send: %d\n%s\nw1:\n%s", rc, fwt_file_tail(send_log, 20, buf, sizeof(buf)),
                 fwt_file_tail(w1.log_path, 30, wbuf, sizeof(wbuf)));
    int status = -1;
    if (fwt_proc_wait(&tail, 60000, &status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FWT_FAIL("freeway tail did not print both records:\n%s",
                 fwt_file_tail(tail_err, 20, buf, sizeof(buf)));
    FWT_ASSERT(fwt_file_contains(tail_out, "x\n") && fwt_file_contains(tail_out, "y\n"));
    FWT_ASSERT(!daemon_logged(&w1, "open ACL"));
    fwt_cal_stop(&p1);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/*
 * A chroot two levels down (--zk HOST/prod/freeway) whose parent the
 * identity made: creating an existing node under it answers ZNOAUTH to
 * anyone else, so whoever ensures the path must look before creating.
 */
FWT_TEST(a_nested_chroot_under_a_protected_parent_serves_everyone)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[160], other[160];
    snprintf(spec, sizeof(spec), "%s/prod/freeway", zk.connect);
    snprintf(other, sizeof(other), "%s/prod/other", zk.connect);
    char *out = NULL;
    FWT_ASSERT_INT_EQ(
        freeway(spec, &out, "category", "create", "web", "--buckets", "2", "--zk-auth", AUTH, NULL),
        0);
    free(out);
    zhandle_t *zh = fwt_zk_client(zk.connect);
    expect_acl(zh, "/prod", 1, "freeway:");
    const char *flags[] = {"--zk-auth", AUTH, NULL};
    fwt_cal_t w1;
    fwt_cal_start(&w1, "w1", spec, fwt_tmpdir(), flags);
    fwt_cal_wait_owns(&w1, 2, "the writer to own both buckets");
    fwt_cal_wait_ready(&w1, "the writer to be ready");

    /* Readers without the identity. */
    FWT_ASSERT_INT_EQ(freeway(spec, &out, "status", NULL), 0);
    expect_out(out, "w1");
    free(out);
    FWT_ASSERT_INT_EQ(freeway(spec, &out, "category", "list", NULL), 0);
    expect_out(out, "web");
    free(out);
    fwt_send_lines(spec, "web", 0, 100, 4, NULL);

    /* A node that is missing and may not be made: a clear error, naming it and the fix. */
    FWT_ASSERT_INT_EQ(freeway(other, &out, "category", "create", "web", "--buckets", "1", NULL), 1);
    expect_out(out, "cannot create /prod/other in ZooKeeper: not authenticated");
    expect_out(out, "--zk-auth");
    free(out);
    fwt_cal_t w2;
    char root2[FWT_PATH_MAX];
    snprintf(root2, sizeof(root2), "%s/w2", fwt_tmpdir());
    fwt_cal_start(&w2, "w2", other, root2, NULL);
    wait_log(w2.log_path, "cannot create /prod/other in ZooKeeper: not authenticated");
    FWT_ASSERT(daemon_logged(&w2, "--zk-auth USER:PASSWORD that made the tree"));
    FWT_ASSERT_INT_EQ(zoo_exists(zh, "/prod/other", 0, NULL), ZNONODE);
    zookeeper_close(zh);
    fwt_cal_stop(&w2);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/*
 * A tree made without an identity stays open to anyone; a daemon given
 * one says so, with the fix, and the fix of docs/operations.md, typed into
 * ZooKeeper's own client, closes it.
 */
FWT_TEST(an_open_tree_is_reported_and_the_documented_setacl_closes_it)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[160];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    char *out = NULL;
    FWT_ASSERT_INT_EQ(freeway(spec, &out, "category", "create", "web", "--buckets", "2", NULL), 0);
    free(out);
    const char *flags[] = {"--zk-auth", AUTH, NULL};
    fwt_cal_t w1;
    fwt_cal_start(&w1, "w1", spec, fwt_tmpdir(), flags);
    wait_log(w1.log_path, "/freeway has an open ACL (world:anyone:cdrwa)");
    FWT_ASSERT(daemon_logged(&w1, "setAcl -R /freeway auth::cdrwa,world:anyone:r"));
    fwt_cal_wait_owns(&w1, 2, "the writer to own both buckets (an open tree works)");
    FWT_ASSERT_INT_EQ(
        freeway(spec, &out, "category", "create", "app", "--buckets", "1", "--zk-auth", AUTH, NULL),
        0);
    expect_out(out, "/freeway has an open ACL");
    free(out);

    char *cli = fwt_zk_cli(zk.connect, "addauth digest " AUTH "\n"
                                       "setAcl -R /freeway auth::cdrwa,world:anyone:r\n");
    free(cli);
    zhandle_t *zh = fwt_zk_client(zk.connect);
    expect_acl(zh, "/freeway", 1, "freeway:");
    expect_acl(zh, "/freeway/buckets/web/1", 1, "freeway:");
    FWT_ASSERT_INT_EQ(zoo_set(zh, "/freeway/categories/web", "buckets = 1", 11, -1), ZNOAUTH);
    zookeeper_close(zh);
    fwt_cal_stop(&w1);
    fwt_cal_restart(&w1);
    fwt_cal_wait_owns(&w1, 3, "the writer to own every bucket again");
    FWT_ASSERT(!daemon_logged(&w1, "open ACL"));
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/*
 * Nodes made by one identity can be changed by it alone, so a password
 * change goes as docs/operations.md says: give the tree to both passwords,
 * roll the daemons one by one, then take it from the old one.
 */
FWT_TEST(a_password_change_as_documented)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[160];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    char *out = NULL;
    FWT_ASSERT_INT_EQ(freeway(spec, &out, "category", "create", "web", "--buckets", "4",
                              "--zk-auth", "freeway:old", NULL),
                      0);
    free(out);
    const char *old_flags[] = {"--zk-auth", "freeway:old", NULL};
    fwt_cal_t w[2];
    char root[FWT_PATH_MAX];
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir());
    fwt_cal_start(&w[0], "w1", spec, root, old_flags);
    fwt_cal_start(&w[1], "w2", spec, root, old_flags);
    fwt_cal_wait_balanced(&w[0], &w[1], 2, "the writers to share the buckets");
    fwt_send_lines(spec, "web", 0, 200, 8, NULL);

    /* 1. Both passwords may change every node. */
    char *cli = fwt_zk_cli(zk.connect, "addauth digest freeway:old\n"
                                       "addauth digest freeway:new\n"
                                       "setAcl -R /freeway auth::cdrwa,world:anyone:r\n");
    free(cli);
    zhandle_t *zh = fwt_zk_client(zk.connect);
    expect_acl(zh, "/freeway/buckets/web/0", 2, "freeway:");

    /* 2. Roll the writers; old and new run side by side meanwhile. */
    for (int i = 0; i < 2; i++) {
        fwt_cal_stop(&w[i]);
        w[i].extra[1] = "freeway:new";
        fwt_cal_restart(&w[i]);
        fwt_cal_wait_balanced(&w[0], &w[1], 2, "the writers to share the buckets again");
        fwt_send_lines(spec, "web", 200 + 100 * (uint64_t)i, 100, 8, NULL);
    }

    /* 3. Take the tree from the old password (the session may change what either made). */
    char id[128], script[512];
    fwt_zk_digest_id("freeway:new", id, sizeof(id));
    snprintf(script, sizeof(script),
             "addauth digest freeway:old\n"
             "addauth digest freeway:new\n"
             "setAcl -R /freeway digest:%s:cdrwa,world:anyone:r\n",
             id);
    cli = fwt_zk_cli(zk.connect, script);
    free(cli);
    /* The server hides digests from a client without ADMIN: the refusal below says which. */
    expect_acl(zh, "/freeway/buckets/web/0", 1, "freeway:");
    expect_acl(zh, "/freeway/categories/web", 1, "freeway:");
    zookeeper_close(zh);
    FWT_ASSERT_INT_EQ(freeway(spec, &out, "category", "alter", "web", "--buckets", "5", "--zk-auth",
                              "freeway:old", NULL),
                      1);
    expect_out(out, "not authenticated");
    free(out);
    FWT_ASSERT_INT_EQ(freeway(spec, &out, "category", "alter", "web", "--buckets", "6", "--zk-auth",
                              "freeway:new", NULL),
                      0);
    free(out);
    fwt_cal_wait_balanced(&w[0], &w[1], 3, "the writers to share the new buckets");
    fwt_send_lines(spec, "web", 400, 100, 8, NULL);
    fwt_cal_stop(&w[1]);
    fwt_cal_stop(&w[0]);
    fwt_zk_stop(&zk);
}
