/* The subscription endpoint (see server.h). */
#include "server.h"

#include "log.h"
#include "net.h"
#include "sub.h"

#include <stdio.h>
#include <string.h>

static void on_connection(uv_stream_t *listener, int status)
{
    pt_server_t *s = listener->data;
    if (status < 0 || s->stopping) {
        fw_log_warn("ptail", "accept: %s", uv_strerror(status));
        return;
    }
    int rc = pt_sub_accept(s, listener);
    if (rc < 0)
        fw_log_warn("ptail", "accept: %s", uv_strerror(rc));
}

static void on_tick(uv_timer_t *t)
{
    pt_server_t *s = t->data;
    for (pt_sub_t *sub = s->subs, *next; sub != NULL; sub = next) {
        next = sub->next;
        pt_sub_poll(sub);
    }
}

int pt_server_init(pt_server_t *s, uv_loop_t *loop, const char *listen, const char *root,
                   const pt_limits_t *limits, pt_stats_t *stats)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->limits = *limits;
    s->stats = stats;
    snprintf(s->root, sizeof(s->root), "%s", root);
    struct sockaddr_storage ss;
    int rc = fw_addr_parse(listen, &ss);
    if (rc < 0)
        return rc;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->handles = 1;
    if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 256, on_connection)) < 0) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        s->handles = 0;
        return rc;
    }
    int len = sizeof(ss);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    fw_addr_format((struct sockaddr *)&ss, s->address, sizeof(s->address));
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    s->handles++;
    uv_timer_start(&s->tick, on_tick, limits->poll_ms, limits->poll_ms);
    return 0;
}

static void maybe_closed(pt_server_t *s)
{
    if (s->stopping && s->handles == 0 && s->closed_cb != NULL) {
        pt_server_cb cb = s->closed_cb;
        s->closed_cb = NULL;
        cb(s);
    }
}

static void on_closed(uv_handle_t *h)
{
    pt_server_t *s = h->data;
    s->handles--;
    maybe_closed(s);
}

void pt_server_sub_gone(pt_server_t *s)
{
    s->handles--;
    maybe_closed(s);
}

void pt_server_close(pt_server_t *s, pt_server_cb cb)
{
    s->stopping = 1;
    s->closed_cb = cb;
    uv_close((uv_handle_t *)&s->listener, on_closed);
    uv_close((uv_handle_t *)&s->tick, on_closed);
    for (pt_sub_t *sub = s->subs; sub != NULL; sub = sub->next)
        pt_sub_close(sub);
}
