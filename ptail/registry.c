/* nodes/ptail/<id> (see registry.h). */
#include "registry.h"

#include "buf.h"
#include "clock.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"
#include "version.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

int pt_registry_registered(const pt_registry_t *r)
{
    return fw_members_registered(&r->members);
}

static void on_state(fw_zk_t *zk, fw_zk_state_t state, int64_t session_id, void *arg)
{
    (void)zk;
    (void)session_id;
    pt_registry_t *r = arg;
    if (state == FW_ZK_CONNECTED && !r->stopping)
        fw_members_sync(&r->members);
}

int pt_registry_start(pt_registry_t *r, uv_loop_t *loop, const char *zk, const char *zk_auth,
                      int session_timeout_ms, const char *id, const char *address,
                      const char *metrics_address, const char *root)
{
    memset(r, 0, sizeof(*r));
    Fwpb__NodeInfo info = FWPB__NODE_INFO__INIT;
    info.kind = "ptail";
    info.id = (char *)id;
    info.address = (char *)address;
    if (metrics_address != NULL && metrics_address[0] != '\0')
        info.metrics_address = (char *)metrics_address;
    info.version = FW_VERSION_STRING;
    info.has_started_ms = 1;
    info.started_ms = fw_clock_wall_ms();
    info.root = (char *)root;
    fw_buf_t text = FW_BUF_INIT;
    int rc = fw_pbtext_format(&info.base, &text);
    if (rc == 0)
        rc = fw_members_init(&r->members, &r->zk, "ptail", id, text.data, text.len, NULL, NULL);
    fw_buf_free(&text);
    if (rc < 0)
        return rc;
    fw_zk_options_t o = {
        .connect = zk,
        .create_chroot = 1, /* a daemon: the tree is ours to make */
        .auth = zk_auth,
        .session_timeout_ms = session_timeout_ms,
        .state_cb = on_state,
        .state_arg = r,
    };
    rc = fw_zk_init(&r->zk, loop, &o);
    if (rc < 0)
        fw_members_free(&r->members);
    return rc;
}

static void on_zk_closed(fw_zk_t *zk)
{
    pt_registry_t *r = (pt_registry_t *)((char *)zk - offsetof(pt_registry_t, zk));
    fw_members_free(&r->members);
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
    r->stopping = 1;
    if (!fw_members_registered(&r->members) || fw_members_leave(&r->members, on_left, r) < 0)
        fw_zk_close(&r->zk, on_zk_closed);
}
