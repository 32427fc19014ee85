/*
 * pt_registry: this ptail's entry under nodes/ptail/<id> (ephemeral,
 * pbtext NodeInfo, through fw_members) so consumers can find it and
 * `freeway status` can list it. It owns the ZooKeeper session; ptail serves
 * files whether or not ZooKeeper is reachable, so nothing else waits for it.
 */
#ifndef PT_REGISTRY_H
#define PT_REGISTRY_H

#include <stdint.h>

#include <uv.h>

#include "members.h"
#include "zk.h"

typedef struct pt_registry_s pt_registry_t;
typedef void (*pt_registry_cb)(pt_registry_t *r);

struct pt_registry_s {
    fw_zk_t zk;
    fw_members_t members;
    int stopping;
    pt_registry_cb closed_cb;
};

/* Opens the session; the node is made whenever a session is up. 0 or an error. */
int pt_registry_start(pt_registry_t *r, uv_loop_t *loop, const char *zk, const char *zk_auth,
                      int session_timeout_ms, const char *id, const char *address,
                      const char *metrics_address, const char *root);
/* 1 while our node exists in the current session (readiness). */
int pt_registry_registered(const pt_registry_t *r);
/* Deletes the node and closes the session; cb when done. */
void pt_registry_stop(pt_registry_t *r, pt_registry_cb cb);

#endif
