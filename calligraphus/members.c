/* Registration and the live writers (see members.h). */
#include "members.h"

#include "buf.h"
#include "version.h"
#include "log.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODES "/nodes/calligraphus"

void cal_members_init(cal_members_t *m, fw_zk_t *zk, const char *self_id, const char *address,
                      const char *metrics_address, const char *root, cal_members_cb changed,
                      void *arg)
{
    memset(m, 0, sizeof(*m));
    m->zk = zk;
    snprintf(m->self_id, sizeof(m->self_id), "%s", self_id);
    snprintf(m->self_address, sizeof(m->self_address), "%s", address);
    snprintf(m->metrics_address, sizeof(m->metrics_address), "%s",
             metrics_address ? metrics_address : "");
    snprintf(m->root, sizeof(m->root), "%s", root);
    m->changed = changed;
    m->arg = arg;
}

int cal_members_registered(const cal_members_t *m)
{
    return m->registered_session != 0 && m->registered_session == fw_zk_session_id(m->zk);
}

const cal_member_t *cal_members_find(const cal_members_t *m, const char *id)
{
    for (int i = 0; i < m->count; i++)
        if (strcmp(m->list[i].id, id) == 0)
            return &m->list[i];
    return NULL;
}

/* ---- registration ------------------------------------------------------------ */

static void self_path(const cal_members_t *m, char *out, size_t cap)
{
    snprintf(out, cap, NODES "/%s", m->self_id);
}

static void do_register(cal_members_t *m);

static void on_stale_deleted(fw_zk_t *zk, int rc, void *arg)
{
    (void)zk;
    (void)rc;
    cal_members_t *m = arg;
    m->registering = 0;
    do_register(m);
}

static void on_existing(fw_zk_t *zk, int rc, const struct Stat *stat, void *arg)
{
    cal_members_t *m = arg;
    if (rc != ZOK) {
        m->registering = 0;
        if (rc == ZNONODE)
            do_register(m);
        return;
    }
    if (stat->ephemeralOwner == fw_zk_session_id(zk)) {
        m->registering = 0;
        m->registered_session = stat->ephemeralOwner;
        m->changed(m, m->arg);
        return;
    }
    /* Left by our previous life (same id, a session not yet expired): it
     * would vanish by itself, taking our registration with it. */
    fw_log_warn("calligraphus", "replacing a stale registration of %s", m->self_id);
    char path[300];
    self_path(m, path, sizeof(path));
    if (fw_zk_delete(zk, path, stat->version, on_stale_deleted, m) < 0)
        m->registering = 0;
}

static void on_created(fw_zk_t *zk, int rc, const char *path, void *arg)
{
    (void)path;
    cal_members_t *m = arg;
    if (rc == ZOK) {
        m->registering = 0;
        m->registered_session = fw_zk_session_id(zk);
        fw_log_info("calligraphus", "registered as %s at %s", m->self_id, m->self_address);
        m->changed(m, m->arg);
        return;
    }
    if (rc == ZNODEEXISTS) {
        char p[300];
        self_path(m, p, sizeof(p));
        if (fw_zk_exists(zk, p, NULL, NULL, on_existing, m) == 0)
            return;
    }
    m->registering = 0; /* the next sync tries again */
}

static void do_register(cal_members_t *m)
{
    if (m->registering || cal_members_registered(m))
        return;
    Fwpb__NodeInfo info = FWPB__NODE_INFO__INIT;
    info.kind = "calligraphus";
    info.id = m->self_id;
    info.address = m->self_address;
    if (m->metrics_address[0] != '\0')
        info.metrics_address = m->metrics_address;
    info.version = FW_VERSION_STRING;
    info.has_started_ms = 1;
    info.started_ms = m->started_ms;
    info.root = m->root;
    fw_buf_t text = FW_BUF_INIT;
    if (fw_pbtext_format(&info.base, &text) < 0) {
        fw_buf_free(&text);
        return;
    }
    char path[300];
    self_path(m, path, sizeof(path));
    m->registering = 1;
    if (fw_zk_create(m->zk, path, text.data, text.len, FW_ZK_EPHEMERAL, on_created, m) < 0)
        m->registering = 0;
    fw_buf_free(&text);
}

/* ---- the list ------------------------------------------------------------------ */

typedef struct addr_read_s {
    cal_members_t *m;
    uint64_t gen;
    char id[CAL_ID_MAX];
} addr_read_t;

static void on_member_read(fw_zk_t *zk, int rc, const char *data, size_t len,
                           const struct Stat *stat, void *arg)
{
    (void)zk;
    (void)stat;
    addr_read_t *r = arg;
    cal_members_t *m = r->m;
    if (rc == ZOK && r->gen == m->list_gen) {
        ProtobufCMessage *msg;
        char err[128];
        if (fw_pbtext_parse(&fwpb__node_info__descriptor, data, len, &msg, err, sizeof(err)) == 0) {
            Fwpb__NodeInfo *info = (Fwpb__NodeInfo *)msg;
            for (int i = 0; i < m->count; i++)
                if (strcmp(m->list[i].id, r->id) == 0 &&
                    strcmp(m->list[i].address, info->address) != 0) {
                    snprintf(m->list[i].address, sizeof(m->list[i].address), "%s", info->address);
                    m->changed(m, m->arg);
                }
            protobuf_c_message_free_unpacked(msg, NULL);
        } else {
            fw_log_warn("calligraphus", "writer %s: unreadable registration (%s)", r->id, err);
        }
    }
    free(r);
}

static int compare_members(const void *a, const void *b)
{
    return strcmp(((const cal_member_t *)a)->id, ((const cal_member_t *)b)->id);
}

static void list_members(cal_members_t *m);

static void on_children_watch(fw_zk_t *zk, int rc, int type, const char *path, void *arg)
{
    (void)zk;
    (void)type;
    (void)path;
    cal_members_t *m = arg;
    m->children_watch = 0;
    if (rc == ZOK)
        list_members(m);
}

static void on_children(fw_zk_t *zk, int rc, int count, const char *const *names, void *arg)
{
    cal_members_t *m = arg;
    if (rc != ZOK) {
        m->children_watch = 0;
        return;
    }
    cal_member_t *list = calloc((size_t)count + 1, sizeof(*list));
    if (list == NULL)
        return;
    for (int i = 0; i < count; i++) {
        snprintf(list[i].id, sizeof(list[i].id), "%s", names[i]);
        const cal_member_t *old = cal_members_find(m, names[i]);
        if (old != NULL)
            memcpy(list[i].address, old->address, sizeof(list[i].address));
    }
    qsort(list, (size_t)count, sizeof(*list), compare_members);
    free(m->list);
    m->list = list;
    m->count = count;
    m->listed = 1;
    m->list_gen++;
    /* Addresses are re-read at every change: a writer restarted under the
     * same id may listen elsewhere now. */
    for (int i = 0; i < count; i++) {
        addr_read_t *r = calloc(1, sizeof(*r));
        if (r == NULL)
            break;
        r->m = m;
        r->gen = m->list_gen;
        snprintf(r->id, sizeof(r->id), "%s", list[i].id);
        char path[300];
        snprintf(path, sizeof(path), NODES "/%s", list[i].id);
        if (fw_zk_get(zk, path, NULL, NULL, on_member_read, r) < 0)
            free(r);
    }
    m->changed(m, m->arg);
}

static void list_members(cal_members_t *m)
{
    int watch = !m->children_watch;
    m->children_watch = 1;
    if (fw_zk_get_children(m->zk, NODES, watch ? on_children_watch : NULL, m, on_children, m) < 0 &&
        watch)
        m->children_watch = 0;
}

void cal_members_sync(cal_members_t *m)
{
    if (!fw_zk_connected(m->zk))
        return;
    do_register(m);
    if (!m->children_watch || !m->listed)
        list_members(m);
}

int cal_members_leave(cal_members_t *m, fw_zk_void_cb cb, void *arg)
{
    char path[300];
    self_path(m, path, sizeof(path));
    m->registered_session = 0;
    return fw_zk_delete(m->zk, path, -1, cb, arg);
}

void cal_members_free(cal_members_t *m)
{
    free(m->list);
    m->list = NULL;
    m->count = 0;
}
