/*
 * fw_members: a daemon's registration under nodes/<kind>/<id> (ephemeral,
 * holding whatever the caller describes itself with) and the list of the
 * live members of that kind with their node data, kept current through a
 * child watch. Copiers find the others that share their destinations here;
 * `freeway status` reads the same nodes.
 *
 * Everything runs on the session's loop. The caller calls fw_members_sync
 * whenever its session is (re)connected; the node is made once per session
 * (a node of the same id left by a previous life of this process, whose
 * session has not expired yet, is replaced), and the list is re-read and
 * re-watched.
 */
#ifndef FW_MEMBERS_H
#define FW_MEMBERS_H

#include <stddef.h>
#include <stdint.h>

#include "zk.h"

#define FW_MEMBER_ID_MAX 128

typedef struct fw_members_s fw_members_t;

typedef struct fw_member_s {
    char id[FW_MEMBER_ID_MAX];
    /** The member's node data (NUL-terminated), NULL until it was read. */
    char *data;
    size_t len;
} fw_member_t;

/* The list, a member's data or our registration changed. */
typedef void (*fw_members_cb)(fw_members_t *m, void *arg);

struct fw_members_s {
    fw_zk_t *zk;
    char dir[64]; /* "/nodes/<kind>" */
    char self_id[FW_MEMBER_ID_MAX];
    char *self_data;
    size_t self_len;
    int64_t registered_session; /* the session our node belongs to; 0 = none */
    int registering;
    fw_member_t *list; /* sorted by id */
    int count;
    int listed;
    int children_watch;
    uint64_t list_gen; /* a newer listing makes older data reads moot */
    fw_members_cb changed;
    void *arg;
};

/*
 * 0 or -ENOMEM. data is copied. changed NULL: registration only (no list,
 * no watch), for a daemon that only needs to be found.
 */
int fw_members_init(fw_members_t *m, fw_zk_t *zk, const char *kind, const char *self_id,
                    const void *data, size_t len, fw_members_cb changed, void *arg);
/* Registers (once per session), re-arms the watch, re-reads the list. */
void fw_members_sync(fw_members_t *m);
/* 1 once our node exists in the current session. */
int fw_members_registered(const fw_members_t *m);
const fw_member_t *fw_members_find(const fw_members_t *m, const char *id);
/* Deletes our node (graceful shutdown); cb(zk, rc, arg) when done. 0 or an error. */
int fw_members_leave(fw_members_t *m, fw_zk_void_cb cb, void *arg);
/* After the session's close callback (no callback may still be pending). */
void fw_members_free(fw_members_t *m);

#endif
