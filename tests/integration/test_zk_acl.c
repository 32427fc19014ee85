/*
 * ZooKeeper digest ACLs: with --zk-auth the CLI and the daemons create
 * their nodes so that only that identity may change them and anyone may
 * read them. A real server; a plain client without the identity tries to
 * change the tree and is refused, while producers (which only read) still
 * send, and the fabric works as without ACLs.
 */
#include "fwt_cal.h"
#include "fwt_proc.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct ACL_vector acl;
        struct Stat st;
        int rc = zoo_get_acl(zh, paths[i], &acl, &st);
        if (rc != ZOK)
            FWT_FAIL("get_acl %s: %s", paths[i], zerror(rc));
        FWT_ASSERT_INT_EQ(acl.count, 2);
        int ours = 0, world = 0;
        for (int k = 0; k < acl.count; k++) {
            if (strcmp(acl.data[k].id.scheme, "digest") == 0 &&
                strncmp(acl.data[k].id.id, "freeway:", 8) == 0 && acl.data[k].perms == ZOO_PERM_ALL)
                ours = 1;
            if (strcmp(acl.data[k].id.scheme, "world") == 0 &&
                strcmp(acl.data[k].id.id, "anyone") == 0 && acl.data[k].perms == ZOO_PERM_READ)
                world = 1;
        }
        deallocate_ACL_vector(&acl);
        if (!ours || !world)
            FWT_FAIL("%s: ACL is not (digest freeway: all, world: read)", paths[i]);
    }

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
