/*
 * cal_members: this writer's registration under nodes/calligraphus/<id>
 * (ephemeral, pbtext NodeInfo) and the list of live writers with their
 * addresses: common/members.c does the ZooKeeper part, this file reads the
 * writers' addresses out of their nodes. The balancer divides the buckets
 * by this list; the metadata answer gives producers the addresses.
 */
#ifndef CAL_MEMBERS_H
#define CAL_MEMBERS_H

#include <stdint.h>

#include "common/members.h" /* not this file: the same name in common/ */
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
    fw_members_t base;
    cal_member_t *list; /* live writers, sorted by id */
    int count;
    int listed;
    cal_members_cb changed;
    void *arg;
};

/* 0 or -ENOMEM. */
int cal_members_init(cal_members_t *m, fw_zk_t *zk, const char *self_id, const char *address,
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
