/*
 * Blocking ZooKeeper access for the command line's admin commands: connect
 * with a deadline, check (or, for `freeway category create`, make) the
 * chroot, and build paths under it. (Daemons use the event-loop session in
 * common/zk.h instead.)
 */
#ifndef FW_CLI_ZKUTIL_H
#define FW_CLI_ZKUTIL_H

#include <stddef.h>

#include <zookeeper/zookeeper.h>

typedef struct fw_cli_zk_s {
    zhandle_t *zh;
    char chroot[256]; /* "/freeway" (no trailing slash), or "" for none */
    /* What our creates use: open, or with an identity, ours to change and anyone's to read. */
    struct ACL acl_items[2];
    struct ACL_vector acl;
    int with_auth;
} fw_cli_zk_t;

/*
 * Connects to "host:port[,host:port...][/chroot]" within timeout_ms, as a
 * reader: it creates nothing. If the chroot does not exist, prints "no
 * freeway tree at SPEC" on stderr and returns -1 (a reader that created it
 * would leave it with the open ACL and no owner). auth ("user:password", or
 * NULL / "") is a digest identity to authenticate as; nodes created through
 * z then carry the ACL the daemons use (common/zk.h). On failure prints why
 * on stderr and returns -1.
 */
int fw_cli_zk_connect(fw_cli_zk_t *z, const char *spec, const char *auth, int timeout_ms);
/*
 * fw_cli_zk_connect for a command that makes the tree (`freeway category
 * create`): a missing chroot is created (fw_cli_zk_ensure). With auth, an
 * existing chroot that anyone may change is reported on stderr with the fix.
 */
int fw_cli_zk_connect_create(fw_cli_zk_t *z, const char *spec, const char *auth, int timeout_ms);
void fw_cli_zk_close(fw_cli_zk_t *z);

/* chroot + "/" + rel into out. */
void fw_cli_zk_path(const fw_cli_zk_t *z, char *out, size_t cap, const char *rel);

/*
 * Creates path and its missing parents as persistent empty nodes; a
 * ZooKeeper rc. Each node is looked at before it is created, so an existing
 * one is fine even under a parent this identity may not create in. ZNOAUTH
 * means a missing node could not be created; that has been printed on
 * stderr, naming the node and the fix.
 */
int fw_cli_zk_ensure(fw_cli_zk_t *z, const char *path);

#endif
