/*
 * Where ptail is, for the consumer: a fixed list (options.ptail), or the
 * ptail servers registered in ZooKeeper, the children of nodes/ptail, each a
 * NodeInfo in pbtext form (as calligraphus registers under
 * nodes/calligraphus). The ZooKeeper list is read afresh before each
 * connection attempt rather than watched: a consumer connects rarely, and a
 * restarted ptail may listen on a new port.
 */
#include "consumer_int.h"

#include "clock.h"
#include "net.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NODES_PATH "/nodes/ptail"

/* Replaces the address list (takes ownership of addrs). */
static void set_addrs(fw_consumer_t *c, char (*addrs)[FW_CADDR_MAX], uint32_t n)
{
    free(c->addrs);
    c->addrs = addrs;
    c->naddrs = n;
}

/* Consumers spread over the servers: each starts its round robin somewhere else. */
static uint32_t random_start(void)
{
    uint64_t x = (uint64_t)fw_clock_mono_ns() ^ ((uint64_t)getpid() << 32);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* ---- a fixed list ---------------------------------------------------------------------------- */

static int parse_list(fw_consumer_t *c, const char *s)
{
    /* Commas and spaces both separate addresses. */
    uint32_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',' || *p == ' ';
    char(*addrs)[FW_CADDR_MAX] = calloc(cap, sizeof(*addrs));
    if (addrs == NULL)
        return -ENOMEM;
    uint32_t n = 0;
    while (*s != '\0') {
        size_t len = strcspn(s, ", ");
        if (len > 0) {
            char host[FW_HOST_MAX];
            unsigned port;
            if (len >= FW_CADDR_MAX || n == cap) {
                free(addrs);
                return -EINVAL;
            }
            memcpy(addrs[n], s, len);
            addrs[n][len] = '\0';
            if (fw_addr_split(addrs[n], host, sizeof(host), &port) < 0) {
                free(addrs);
                return -EINVAL;
            }
            n++;
        }
        s += len;
        s += strspn(s, ", ");
    }
    if (n == 0) {
        free(addrs);
        return -EINVAL;
    }
    set_addrs(c, addrs, n);
    return 0;
}

/* ---- ZooKeeper ------------------------------------------------------------------------------- */

typedef struct listing_s {
    fw_consumer_t *c;
    uint64_t gen;
    uint32_t remaining;
    uint32_t count;
    char (*addrs)[FW_CADDR_MAX];
} listing_t;

static void list_ptails(fw_consumer_t *c);

static void listing_done(listing_t *l)
{
    fw_consumer_t *c = l->c;
    if (l->gen == c->list_gen && !c->closing) {
        c->zk_listing = 0;
        set_addrs(c, l->addrs, l->count);
        l->addrs = NULL;
        fw_clog(c, FW_CONSUMER_LOG_DEBUG, "%u ptail servers registered", c->naddrs);
        fw_cconn_connect_next(c);
    }
    free(l->addrs);
    free(l);
}

static void on_node_data(fw_zk_t *zk, int rc, const char *data, size_t len, const struct Stat *stat,
                         void *arg)
{
    (void)zk;
    (void)stat;
    listing_t *l = arg;
    if (rc == ZOK && !l->c->closing) {
        char err[128];
        ProtobufCMessage *m;
        if (fw_pbtext_parse(&fwpb__node_info__descriptor, data, len, &m, err, sizeof(err)) == 0) {
            Fwpb__NodeInfo *info = (Fwpb__NodeInfo *)m;
            if (strlen(info->address) < FW_CADDR_MAX)
                snprintf(l->addrs[l->count++], FW_CADDR_MAX, "%s", info->address);
            protobuf_c_message_free_unpacked(m, NULL);
        } else {
            fw_clog(l->c, FW_CONSUMER_LOG_WARN, "a ptail node in ZooKeeper is malformed: %s", err);
        }
    }
    if (--l->remaining == 0)
        listing_done(l);
}

static void on_children(fw_zk_t *zk, int rc, int count, const char *const *names, void *arg)
{
    fw_consumer_t *c = arg;
    if (c->closing)
        return;
    if (rc != ZOK) {
        c->zk_listing = 0;
        if (rc == ZNONODE) {
            set_addrs(c, NULL, 0); /* no ptail has ever registered */
        } else {
            snprintf(c->error, sizeof(c->error), "listing ptail servers in ZooKeeper: %s",
                     zerror(rc));
            fw_clog(c, FW_CONSUMER_LOG_WARN, "%s", c->error);
        }
        fw_cconn_connect_next(c); /* the old list, or a retry after the backoff */
        return;
    }
    listing_t *l = calloc(1, sizeof(*l));
    if (l == NULL ||
        (l->addrs = calloc(count > 0 ? (size_t)count : 1, sizeof(*l->addrs))) == NULL) {
        free(l);
        c->zk_listing = 0;
        fw_cconn_connect_next(c);
        return;
    }
    l->c = c;
    l->gen = ++c->list_gen;
    l->remaining = 1; /* held until every get is issued */
    for (int i = 0; i < count; i++) {
        char path[300];
        snprintf(path, sizeof(path), NODES_PATH "/%s", names[i]);
        l->remaining++;
        if (fw_zk_get(zk, path, NULL, NULL, on_node_data, l) < 0)
            l->remaining--;
    }
    if (--l->remaining == 0)
        listing_done(l);
}

static void list_ptails(fw_consumer_t *c)
{
    if (!c->zk_open || c->zk_listing || c->closing)
        return;
    if (!fw_zk_connected(&c->zk))
        return; /* on_zk_state lists once the session is up */
    if (fw_zk_get_children(&c->zk, NODES_PATH, NULL, NULL, on_children, c) < 0) {
        fw_cconn_connect_next(c);
        return;
    }
    c->zk_listing = 1;
}

/* The session's lines go to the application's log callback, never to stderr. */
static void on_zk_log(void *arg, fw_log_level_t level, const char *line)
{
    fw_clog(arg, (fw_consumer_log_level_t)level, "zookeeper: %s", line);
}

static void on_zk_state(fw_zk_t *zk, fw_zk_state_t state, int64_t session_id, void *arg)
{
    (void)zk;
    (void)session_id;
    fw_consumer_t *c = arg;
    if (state == FW_ZK_CONNECTED && c->conn_wanted && c->conn == NULL)
        list_ptails(c);
}

static void on_zk_closed(fw_zk_t *zk)
{
    fw_consumer_t *c = zk->data;
    c->handles_open--;
}

int fw_cfind_start(fw_consumer_t *c)
{
    c->next_addr = random_start();
    if (c->ptail_spec != NULL)
        return parse_list(c, c->ptail_spec);
    fw_zk_options_t zo = {
        .connect = c->zk_spec,
        .create_chroot = 0, /* a reader: it waits for the daemons' tree, never makes it */
        .session_timeout_ms = 10000,
        .state_cb = on_zk_state,
        .state_arg = c,
        .log = on_zk_log,
        .log_arg = c,
    };
    int rc = fw_zk_init(&c->zk, &c->loop, &zo);
    if (rc < 0)
        return rc;
    c->zk.data = c;
    c->zk_used = 1;
    c->zk_open = 1;
    return 0;
}

void fw_cfind_stop(fw_consumer_t *c)
{
    if (!c->zk_open)
        return;
    c->zk_open = 0;
    c->handles_open++;
    fw_zk_close(&c->zk, on_zk_closed);
}

void fw_cfind_lookup(fw_consumer_t *c)
{
    if (!c->zk_used) {
        fw_cconn_connect_next(c);
        return;
    }
    c->conn_wanted = 1;
    if (fw_zk_chroot_missing(&c->zk)) {
        snprintf(c->error, sizeof(c->error), "no freeway tree at %s (no daemon has created it yet)",
                 c->zk_spec);
        return; /* on_zk_state lists once it exists */
    }
    if (!fw_zk_connected(&c->zk)) {
        snprintf(c->error, sizeof(c->error), "ZooKeeper at %s: session %s", c->zk_spec,
                 fw_zk_state_name(fw_zk_state(&c->zk)));
        return; /* on_zk_state lists once the session is up */
    }
    list_ptails(c);
}
