/* Registration and the live members of a kind (see members.h). */
#include "members.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_list(fw_member_t *list, int count)
{
    for (int i = 0; i < count; i++)
        free(list[i].data);
    free(list);
}

int fw_members_init(fw_members_t *m, fw_zk_t *zk, const char *kind, const char *self_id,
                    const void *data, size_t len, fw_members_cb changed, void *arg)
{
    memset(m, 0, sizeof(*m));
    m->zk = zk;
    snprintf(m->dir, sizeof(m->dir), "/nodes/%s", kind);
    snprintf(m->self_id, sizeof(m->self_id), "%s", self_id);
    m->self_data = malloc(len + 1);
    if (m->self_data == NULL)
        return -ENOMEM;
    memcpy(m->self_data, data, len);
    m->self_data[len] = '\0';
    m->self_len = len;
    m->changed = changed;
    m->arg = arg;
    return 0;
}

int fw_members_registered(const fw_members_t *m)
{
    return m->registered_session != 0 && m->registered_session == fw_zk_session_id(m->zk);
}

const fw_member_t *fw_members_find(const fw_members_t *m, const char *id)
{
    for (int i = 0; i < m->count; i++)
        if (strcmp(m->list[i].id, id) == 0)
            return &m->list[i];
    return NULL;
}

/* ---- registration ------------------------------------------------------------ */

static void self_path(const fw_members_t *m, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", m->dir, m->self_id);
}

static void do_register(fw_members_t *m);

static void on_stale_deleted(fw_zk_t *zk, int rc, void *arg)
{
    (void)zk;
    (void)rc;
    fw_members_t *m = arg;
    m->registering = 0;
    do_register(m);
}

static void on_existing(fw_zk_t *zk, int rc, const struct Stat *stat, void *arg)
{
    fw_members_t *m = arg;
    if (rc != ZOK) {
        m->registering = 0;
        if (rc == ZNONODE)
            do_register(m);
        return;
    }
    if (stat->ephemeralOwner == fw_zk_session_id(zk)) {
        m->registering = 0;
        m->registered_session = stat->ephemeralOwner;
        if (m->changed != NULL)
            m->changed(m, m->arg);
        return;
    }
    /* Left by our previous life (same id, a session not yet expired): it
     * would vanish by itself, taking our registration with it. */
    fw_log_warn("members", "replacing a stale registration of %s/%s", m->dir, m->self_id);
    char path[300];
    self_path(m, path, sizeof(path));
    if (fw_zk_delete(zk, path, stat->version, on_stale_deleted, m) < 0)
        m->registering = 0;
}

static void on_created(fw_zk_t *zk, int rc, const char *path, void *arg)
{
    fw_members_t *m = arg;
    if (rc == ZOK) {
        m->registering = 0;
        m->registered_session = fw_zk_session_id(zk);
        (void)path;
        fw_log_info("members", "registered as %s under %s", m->self_id, m->dir);
        if (m->changed == NULL)
            return;
        if (!m->listed)
            fw_members_sync(m);
        m->changed(m, m->arg);
        return;
    }
    if (rc == ZNODEEXISTS) {
        char p[300];
        self_path(m, p, sizeof(p));
        if (fw_zk_exists(zk, p, NULL, NULL, on_existing, m) == 0)
            return;
    }
    if (rc == ZNOAUTH)
        fw_log_error("members",
                     "cannot register under %s: not authenticated (the tree was "
                     "made with --zk-auth; give this daemon the same identity)",
                     m->dir);
    m->registering = 0; /* the next sync tries again */
}

static void on_dir(fw_zk_t *zk, int rc, void *arg)
{
    fw_members_t *m = arg;
    char path[300];
    self_path(m, path, sizeof(path));
    /* A refusal (ZNOAUTH) was logged by fw_zk_ensure_path, naming the node. */
    if (rc != ZOK ||
        fw_zk_create(zk, path, m->self_data, m->self_len, FW_ZK_EPHEMERAL, on_created, m) < 0)
        m->registering = 0;
}

static void do_register(fw_members_t *m)
{
    if (m->registering || fw_members_registered(m))
        return;
    m->registering = 1;
    if (fw_zk_ensure_path(m->zk, m->dir, on_dir, m) < 0)
        m->registering = 0;
}

/* ---- the list ------------------------------------------------------------------ */

typedef struct data_read_s {
    fw_members_t *m;
    uint64_t gen;
    char id[FW_MEMBER_ID_MAX];
} data_read_t;

static void on_member_read(fw_zk_t *zk, int rc, const char *data, size_t len,
                           const struct Stat *stat, void *arg)
{
    (void)zk;
    (void)stat;
    data_read_t *r = arg;
    fw_members_t *m = r->m;
    fw_member_t *e =
        rc == ZOK && r->gen == m->list_gen ? (fw_member_t *)fw_members_find(m, r->id) : NULL;
    if (e != NULL && (e->data == NULL || e->len != len || memcmp(e->data, data, len) != 0)) {
        char *copy = malloc(len + 1);
        if (copy != NULL) {
            memcpy(copy, data, len);
            copy[len] = '\0';
            free(e->data);
            e->data = copy;
            e->len = len;
            m->changed(m, m->arg);
        }
    }
    free(r);
}

static int compare_members(const void *a, const void *b)
{
    return strcmp(((const fw_member_t *)a)->id, ((const fw_member_t *)b)->id);
}

static void list_members(fw_members_t *m);

static void on_children_watch(fw_zk_t *zk, int rc, int type, const char *path, void *arg)
{
    (void)zk;
    (void)type;
    (void)path;
    fw_members_t *m = arg;
    m->children_watch = 0;
    if (rc == ZOK)
        list_members(m);
}

static void on_children(fw_zk_t *zk, int rc, int count, const char *const *names, void *arg)
{
    fw_members_t *m = arg;
    if (rc != ZOK) {
        m->children_watch = 0;
        return;
    }
    fw_member_t *list = calloc((size_t)count + 1, sizeof(*list));
    if (list == NULL)
        return;
    for (int i = 0; i < count; i++) {
        snprintf(list[i].id, sizeof(list[i].id), "%s", names[i]);
        /* Keep what we knew until the fresh read answers. */
        const fw_member_t *old = fw_members_find(m, names[i]);
        if (old != NULL && old->data != NULL && (list[i].data = malloc(old->len + 1)) != NULL) {
            memcpy(list[i].data, old->data, old->len + 1);
            list[i].len = old->len;
        }
    }
    qsort(list, (size_t)count, sizeof(*list), compare_members);
    free_list(m->list, m->count);
    m->list = list;
    m->count = count;
    m->listed = 1;
    m->list_gen++;
    /* Data is re-read at every change: a member restarted under the same id
     * may describe itself differently now. */
    for (int i = 0; i < count; i++) {
        data_read_t *r = calloc(1, sizeof(*r));
        if (r == NULL)
            break;
        r->m = m;
        r->gen = m->list_gen;
        snprintf(r->id, sizeof(r->id), "%s", list[i].id);
        char path[300];
        snprintf(path, sizeof(path), "%s/%s", m->dir, list[i].id);
        if (fw_zk_get(zk, path, NULL, NULL, on_member_read, r) < 0)
            free(r);
    }
    m->changed(m, m->arg);
}

static void list_members(fw_members_t *m)
{
    int watch = !m->children_watch;
    m->children_watch = 1;
    if (fw_zk_get_children(m->zk, m->dir, watch ? on_children_watch : NULL, m, on_children, m) <
            0 &&
        watch)
        m->children_watch = 0;
}

void fw_members_sync(fw_members_t *m)
{
    if (!fw_zk_connected(m->zk))
        return;
    do_register(m);
    if (m->changed != NULL && (!m->children_watch || !m->listed))
        list_members(m);
}

int fw_members_leave(fw_members_t *m, fw_zk_void_cb cb, void *arg)
{
    char path[300];
    self_path(m, path, sizeof(path));
    m->registered_session = 0;
    return fw_zk_delete(m->zk, path, -1, cb, arg);
}

void fw_members_free(fw_members_t *m)
{
    free_list(m->list, m->count);
    m->list = NULL;
    m->count = 0;
    free(m->self_data);
    m->self_data = NULL;
}
