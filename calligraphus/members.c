/* The live writers and their addresses (see members.h). */
#include "members.h"

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"
#include "version.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const cal_member_t *cal_members_find(const cal_members_t *m, const char *id)
{
    for (int i = 0; i < m->count; i++)
        if (strcmp(m->list[i].id, id) == 0)
            return &m->list[i];
    return NULL;
}

/* A writer's address from its node (left "" if unreadable). */
static void read_address(const fw_member_t *src, cal_member_t *dst)
{
    if (src->data == NULL)
        return;
    ProtobufCMessage *msg;
    char err[128];
    if (fw_pbtext_parse(&fwpb__node_info__descriptor, src->data, src->len, &msg, err, sizeof(err)) <
        0) {
        fw_log_warn("calligraphus", "writer %s: unreadable registration (%s)", src->id, err);
        return;
    }
    const char *address = ((Fwpb__NodeInfo *)msg)->address;
    /* Cut short, a name could still parse, as the wrong one: unusable instead. */
    if (strlen(address) < sizeof(dst->address))
        snprintf(dst->address, sizeof(dst->address), "%s", address);
    else
        fw_log_warn("calligraphus", "writer %s: address longer than %zu characters ignored",
                    src->id, sizeof(dst->address) - 1);
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void on_changed(fw_members_t *base, void *arg)
{
    cal_members_t *m = arg;
    cal_member_t *list = calloc((size_t)base->count + 1, sizeof(*list));
    if (list == NULL)
        return;
    for (int i = 0; i < base->count; i++) {
        snprintf(list[i].id, sizeof(list[i].id), "%s", base->list[i].id);
        read_address(&base->list[i], &list[i]);
    }
    free(m->list);
    m->list = list;
    m->count = base->count;
    m->listed = base->listed;
    m->changed(m, m->arg);
}

int cal_members_init(cal_members_t *m, fw_zk_t *zk, const char *self_id, const char *address,
                     const char *metrics_address, const char *root, cal_members_cb changed,
                     void *arg)
{
    memset(m, 0, sizeof(*m));
    m->changed = changed;
    m->arg = arg;
    Fwpb__NodeInfo info = FWPB__NODE_INFO__INIT;
    info.kind = "calligraphus";
    info.id = (char *)self_id;
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
        rc = fw_members_init(&m->base, zk, "calligraphus", self_id, text.data, text.len, on_changed,
                             m);
    fw_buf_free(&text);
    return rc;
}

int cal_members_registered(const cal_members_t *m)
{
    return fw_members_registered(&m->base);
}

void cal_members_sync(cal_members_t *m)
{
    fw_members_sync(&m->base);
}

int cal_members_leave(cal_members_t *m, fw_zk_void_cb cb, void *arg)
{
    return fw_members_leave(&m->base, cb, arg);
}

void cal_members_free(cal_members_t *m)
{
    fw_members_free(&m->base);
    free(m->list);
    m->list = NULL;
    m->count = 0;
}
