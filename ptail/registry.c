/* nodes/ptail/<id> (see registry.h). */
#include "registry.h"

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"
#include "version.h"

#include <stdio.h>
#include <string.h>

#define NODES "/nodes/ptail"

static void self_path(const pt_registry_t *r, char *out, size_t cap)
{
    snprintf(out, cap, NODES "/%s", r->id);
}

int pt_registry_registered(const pt_registry_t *r)
{
    return r->registered_session != 0 && r->registered_session == fw_zk_session_id(&r->zk);
}

static void do_register(pt_registry_t *r);

static void on_stale_deleted(fw_zk_t *zk, int rc, void *arg)
{
    (void)zk;
    (void)rc;
    pt_registry_t *r = arg;
    r->registering = 0;
    do_register(r);
}

static void on_existing(fw_zk_t *zk, int rc, const struct Stat *stat, void *arg)
{
    pt_registry_t *r = arg;
    r->registering = 0;
    if (rc == ZNONODE) {
        do_register(r);
        return;
    }
    if (rc != ZOK)
        return;
    if (stat->ephemeralOwner == fw_zk_session_id(zk)) {
        r->registered_session = stat->ephemeralOwner;
        return;
    }
    /* Our previous life's node (same id, its session not yet expired). */
    fw_log_warn("ptail", "replacing a stale registration of %s", r->id);
    char path[300];
    self_path(r, path, sizeof(path));
    r->registering = 1;
    if (fw_zk_delete(zk, path, stat->version, on_stale_deleted, r) < 0)
        r->registering = 0;
}

static void on_created(fw_zk_t *zk, int rc, const char *path, void *arg)
{
    (void)path;
    pt_registry_t *r = arg;
    r->registering = 0;
    if (rc == ZOK) {
        r->registered_session = fw_zk_session_id(zk);
        fw_log_info("ptail", "registered as %s at %s", r->id, r->address);
        return;
    }
    if (rc == ZNODEEXISTS) {
        char p[300];
        self_path(r, p, sizeof(p));
        r->registering = 1;
        if (fw_zk_exists(zk, p, NULL, NULL, on_existing, r) < 0)
            r->registering = 0;
    }
}

static void do_register(pt_registry_t *r)
{
    if (r->registering || pt_registry_registered(r) || r->closed_cb != NULL)
        return;
    Fwpb__NodeInfo info = FWPB__NODE_INFO__INIT;
    info.kind = "ptail";
    info.id = r->id;
    info.address = r->address;
    if (r->metrics_address[0] != '\0')
        info.metrics_address = r->metrics_address;
    info.version = FW_VERSION_STRING;
    info.has_started_ms = 1;
    info.started_ms = r->started_ms;
    info.root = r->root;
    fw_buf_t text = FW_BUF_INIT;
    if (fw_pbtext_format(&info.base, &text) == 0) {
        char path[300];
        self_path(r, path, sizeof(path));
        r->registering = 1;
        if (fw_zk_create(&r->zk, path, text.data, text.len, FW_ZK_EPHEMERAL, on_created, r) < 0)
            r->registering = 0;
    }
    fw_buf_free(&text);
}

static void on_path(fw_zk_t *zk, int rc, void *arg)
{
    (void)zk;
    if (rc == ZOK)
        do_register(arg);
}

static void on_state(fw_zk_t *zk, fw_zk_state_t state, int64_t session_id, void *arg)
{
    (void)session_id;
    if (state == FW_ZK_CONNECTED)
        fw_zk_ensure_path(zk, NODES, on_path, arg);
}

int pt_registry_start(pt_registry_t *r, uv_loop_t *loop, const char *zk, int session_timeout_ms,
                      const char *id, const char *address, const char *metrics_address,
                      const char *root)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", id);
    snprintf(r->address, sizeof(r->address), "%s", address);
    snprintf(r->metrics_address, sizeof(r->metrics_address), "%s",
             metrics_address ? metrics_address : "");
    snprintf(r->root, sizeof(r->root), "%s", root);
    r->started_ms = fw_clock_wall_ms();
    fw_zk_options_t o = {
        .connect = zk,
        .session_timeout_ms = session_timeout_ms,
        .state_cb = on_state,
        .state_arg = r,
    };
    return fw_zk_init(&r->zk, loop, &o);
}

static void on_zk_closed(fw_zk_t *zk)
{
    pt_registry_t *r = (pt_registry_t *)((char *)zk - offsetof(pt_registry_t, zk));
    r->closed_cb(r);
}

static void on_left(fw_zk_t *zk, int rc, void *arg)
{
    (void)rc;
    (void)arg;
    fw_zk_close(zk, on_zk_closed);
}

void pt_registry_stop(pt_registry_t *r, pt_registry_cb cb)
{
    r->closed_cb = cb;
    char path[300];
    self_path(r, path, sizeof(path));
    if (!pt_registry_registered(r) || fw_zk_delete(&r->zk, path, -1, on_left, r) < 0)
        fw_zk_close(&r->zk, on_zk_closed);
    r->registered_session = 0;
}
