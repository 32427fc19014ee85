/*
 * Blocking ZooKeeper access for the command line's admin commands: connect
 * with a deadline, create the chroot on first use, and build paths under
 * it. (Daemons use the event-loop session in common/zk.h instead.)
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
} fw_cli_zk_t;

/*
 * Connects to "host:port[,host:port...][/chroot]" within timeout_ms and
 * makes sure the chroot exists. auth ("user:password", or NULL / "") is a
 * digest identity to authenticate as; nodes created through z then carry
 * the ACL the daemons use (common/zk.h). On failure prints why on stderr
 * and returns -1.
 */
int fw_cli_zk_connect(fw_cli_zk_t *z, const char *spec, const char *auth, int timeout_ms);
void fw_cli_zk_close(fw_cli_zk_t *z);

/* chroot + "/" + rel into out. */
void fw_cli_zk_path(const fw_cli_zk_t *z, char *out, size_t cap, const char *rel);

/* Creates path and its missing parents as persistent empty nodes; a ZooKeeper rc. */
int fw_cli_zk_ensure(fw_cli_zk_t *z, const char *path);

#endif
