/*
 * cal_members: this writer's registration under nodes/calligraphus/<id>
 * (ephemeral, pbtext NodeInfo) and the list of live writers with their
 * addresses, kept current through a child watch. The balancer divides the
 * buckets by this list; the metadata answer gives producers the addresses.
 */
#ifndef CAL_MEMBERS_H
#define CAL_MEMBERS_H

#include <stdint.h>

#include "zk.h"

#define CAL_ID_MAX   128
#define CAL_ADDR_MAX 128

typedef struct cal_members_s cal_members_t;

typedef struct cal_member_s {
    char id[CAL_ID_MAX];
    char address[CAL_ADDR_MAX]; /* "" until read */
} cal_member_t;

/* The list or our registration changed. */
typedef void (*cal_members_cb)(cal_members_t *m, void *arg);

struct cal_members_s {
    fw_zk_t *zk;
    char self_id[CAL_ID_MAX];
    char self_address[CAL_ADDR_MAX];
    char metrics_address[CAL_ADDR_MAX];
    char root[1024];
    int64_t started_ms;
    int64_t registered_session; /* the session our node belongs to; 0 = none */
    int registering;
    cal_member_t *list; /* live writers, sorted by id */
    int count;
    int listed;
    int children_watch;
    uint64_t list_gen; /* a new listing invalidates address reads of older ones */
    cal_members_cb changed;
    void *arg;
};

void cal_members_init(cal_members_t *m, fw_zk_t *zk, const char *self_id, const char *address,
                      const char *metrics_address, const char *root, cal_members_cb changed,
                      void *arg);
/* Registers (once per session), re-arms the watch, re-reads the list. */
void cal_members_sync(cal_members_t *m);
/* 1 once our node exists in the current session. */
int cal_members_registered(const cal_members_t *m);
const cal_member_t *cal_members_find(const cal_members_t *m, const char *id);
/* Deletes our node (graceful shutdown); cb(zk, rc, arg) when done. */
int cal_members_leave(cal_members_t *m, fw_zk_void_cb cb, void *arg);
/* After the session's close callback. */
void cal_members_free(cal_members_t *m);

#endif
