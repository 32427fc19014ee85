/* Blocking ZooKeeper helpers for the admin commands (see zkutil.h). */
#include "zkutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct connect_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;
};

static void on_session(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)path;
    struct connect_wait *w = ctx;
    if (type != ZOO_SESSION_EVENT)
        return;
    pthread_mutex_lock(&w->mu);
    w->state = state;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Lives as long as the process: the session watcher may fire until zookeeper_close. */
static struct connect_wait waiter = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

/* With an identity, a chroot anyone may change protects nothing: say so (see zk.c). */
static void warn_open_acl(fw_cli_zk_t *z, const char *hosts)
{
    struct ACL_vector acl;
    struct Stat st;
    if (zoo_get_acl(z->zh, z->chroot, &acl, &st) != ZOK)
        return;
    int open = 0;
    for (int i = 0; i < acl.count; i++) {
        if (strcmp(acl.data[i].id.scheme, "world") == 0 &&
            strcmp(acl.data[i].id.id, "anyone") == 0 && (acl.data[i].perms & ~ZOO_PERM_READ))
            open = 1;
    }
    deallocate_ACL_vector(&acl);
    if (open)
        fprintf(stderr,
                "freeway: warning: %s has an open ACL: anyone may change freeway's tree. Once "
                "every daemon uses --zk-auth, restrict it: zkCli.sh -server %s, then addauth "
                "digest USER:PASSWORD and setAcl -R %s auth::cdrwa,world:anyone:r "
                "(docs/operations.md, ZooKeeper ACLs)\n",
                z->chroot, hosts, z->chroot);
}

static int zk_open(fw_cli_zk_t *z, const char *spec, const char *auth, int timeout_ms, int create)
{
    char hosts[1024];
    const char *slash = strchr(spec, '/');
    size_t hlen = slash ? (size_t)(slash - spec) : strlen(spec);
    if (hlen == 0 || hlen >= sizeof(hosts) || (slash && strlen(slash) >= sizeof(z->chroot))) {
        fprintf(stderr, "freeway: bad --zk \"%s\": want HOST:PORT[,HOST:PORT...][/chroot]\n", spec);
        return -1;
    }
    memcpy(hosts, spec, hlen);
    hosts[hlen] = '\0';
    snprintf(z->chroot, sizeof(z->chroot), "%s", slash ? slash : "");
    size_t n = strlen(z->chroot);
    while (n > 0 && z->chroot[n - 1] == '/')
        z->chroot[--n] = '\0';

    int with_auth = auth != NULL && auth[0] != '\0';
    z->with_auth = with_auth;
    if (with_auth && strchr(auth, ':') == NULL) {
        fprintf(stderr, "freeway: --zk-auth must be USER:PASSWORD\n");
        return -1;
    }
    z->acl = ZOO_OPEN_ACL_UNSAFE;
    if (with_auth) {
        z->acl_items[0] = (struct ACL){.perms = ZOO_PERM_ALL, .id = ZOO_AUTH_IDS};
        z->acl_items[1] = (struct ACL){.perms = ZOO_PERM_READ, .id = ZOO_ANYONE_ID_UNSAFE};
        z->acl = (struct ACL_vector){.count = 2, .data = z->acl_items};
    }
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    /* A new session waits for its own CONNECTED: the last one's state must not count (a
     * closed handle's watcher never fires again, and a handle that never connects sends none). */
    pthread_mutex_lock(&waiter.mu);
    waiter.state = 0;
    pthread_mutex_unlock(&waiter.mu);
    z->zh = zookeeper_init(hosts, on_session, 10000, NULL, &waiter, 0);
    if (z->zh == NULL) {
        fprintf(stderr, "freeway: cannot use ZooKeeper address \"%s\": %s\n", hosts,
                strerror(errno));
        return -1;
    }
    /* Sent ahead of every request (and again on a reconnect). */
    if (with_auth && zoo_add_auth(z->zh, "digest", auth, (int)strlen(auth), NULL, NULL) != ZOK) {
        fprintf(stderr, "freeway: cannot authenticate to ZooKeeper\n");
        fw_cli_zk_close(z);
        return -1;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&waiter.mu);
    while (waiter.state != ZOO_CONNECTED_STATE) {
        if (pthread_cond_timedwait(&waiter.cv, &waiter.mu, &deadline) == ETIMEDOUT)
            break;
    }
    int connected = waiter.state == ZOO_CONNECTED_STATE;
    pthread_mutex_unlock(&waiter.mu);
    if (!connected) {
        fprintf(stderr, "freeway: cannot reach ZooKeeper at %s within %d ms\n", hosts, timeout_ms);
        fw_cli_zk_close(z);
        return -1;
    }
    if (z->chroot[0] == '\0')
        return 0; /* the root always exists */
    int rc = create ? fw_cli_zk_ensure(z, z->chroot) : zoo_exists(z->zh, z->chroot, 0, NULL);
    if (rc == ZNONODE) {
        fprintf(stderr,
                "freeway: no freeway tree at %s: %s does not exist (a freeway daemon or "
                "`freeway category create` makes it)\n",
                spec, z->chroot);
    } else if (rc != ZOK && rc != ZNOAUTH) {
        /* ZNOAUTH: fw_cli_zk_ensure has said which node and why. */
        fprintf(stderr, "freeway: cannot %s %s in ZooKeeper: %s\n", create ? "create" : "read",
                z->chroot, zerror(rc));
    }
    if (rc != ZOK) {
        fw_cli_zk_close(z);
        return -1;
    }
    if (create && with_auth)
        warn_open_acl(z, hosts);
    return 0;
}

int fw_cli_zk_connect(fw_cli_zk_t *z, const char *spec, const char *auth, int timeout_ms)
{
    return zk_open(z, spec, auth, timeout_ms, 0);
}

int fw_cli_zk_connect_create(fw_cli_zk_t *z, const char *spec, const char *auth, int timeout_ms)
{
    return zk_open(z, spec, auth, timeout_ms, 1);
}

void fw_cli_zk_close(fw_cli_zk_t *z)
{
    if (z->zh != NULL)
        zookeeper_close(z->zh);
    z->zh = NULL;
}

void fw_cli_zk_path(const fw_cli_zk_t *z, char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", z->chroot, rel);
}

int fw_cli_zk_ensure(fw_cli_zk_t *z, const char *path)
{
    char buf[1024];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf) || path[0] != '/')
        return ZBADARGUMENTS;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        /* Look first: creating an existing node under a parent another identity
         * made is refused (ZNOAUTH: the parent's ACL is checked first). */
        int rc = zoo_exists(z->zh, buf, 0, NULL);
        if (rc == ZNONODE) {
            rc = zoo_create(z->zh, buf, NULL, -1, &z->acl, 0, NULL, 0);
            if (rc == ZNODEEXISTS || (rc == ZNOAUTH && zoo_exists(z->zh, buf, 0, NULL) == ZOK))
                rc = ZOK; /* made meanwhile by someone else */
            else if (rc == ZNOAUTH)
                fprintf(stderr,
                        "freeway: cannot create %s in ZooKeeper: not authenticated: the ACL of "
                        "its parent does not let %s create nodes there. Use the --zk-auth "
                        "USER:PASSWORD the daemons use (docs/operations.md, ZooKeeper ACLs)\n",
                        buf,
                        z->with_auth ? "this --zk-auth identity" : "a client without --zk-auth");
        }
        buf[i] = saved;
        if (rc != ZOK)
            return rc;
    }
    return ZOK;
}
