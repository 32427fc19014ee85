/* The produce endpoint: listener, connections, memory bounds (see server.h). */
#include "server.h"

#include "conn.h"
#include "error.h"
#include "forward.h"
#include "log.h"
#include "net.h"
#include "produce.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void on_connection(uv_stream_t *stream, int status)
{
    cal_listener_t *l = stream->data;
    if (status < 0) {
        fw_log_warn("calligraphus", "accept: %s", uv_strerror(status));
        return;
    }
    int rc = cal_conn_accept(l->server, stream, l->proto, l->proto_arg);
    if (rc < 0)
        fw_log_warn("calligraphus", "refused a %s connection: %s", l->proto->name, fw_strerror(rc));
}

int cal_server_listen(cal_server_t *s, const char *listen, const cal_conn_proto_t *proto,
                      void *proto_arg, char *bound, size_t cap)
{
    if (s->nlisteners == CAL_SERVER_LISTENERS)
        return -ENOSPC;
    struct sockaddr_storage ss;
    int rc = fw_addr_parse(listen, &ss);
    if (rc < 0)
        return rc;
    cal_listener_t *l = &s->listeners[s->nlisteners];
    uv_tcp_init(s->loop, &l->tcp);
    l->tcp.data = l;
    l->server = s;
    l->proto = proto;
    l->proto_arg = proto_arg;
    rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
    if (rc < 0) {
        uv_close((uv_handle_t *)&l->tcp, NULL);
        return rc;
    }
    s->nlisteners++;
    s->handles++;
    int len = sizeof(ss);
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
    fw_addr_format((struct sockaddr *)&ss, l->address, sizeof(l->address));
    if (bound != NULL)
        snprintf(bound, cap, "%s", l->address);
    return 0;
}

int cal_server_init(cal_server_t *s, uv_loop_t *loop, const char *listen, cal_node_t *node,
                    cal_stats_t *stats, const cal_server_limits_t *limits)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->node = node;
    s->stats = stats;
    s->limits = *limits;
    return cal_server_listen(s, listen, &cal_produce_proto, NULL, s->address, sizeof(s->address));
}

void cal_server_account(cal_server_t *s, cal_conn_t *c, int64_t delta)
{
    s->inflight += (uint64_t)delta;
    c->inflight += (uint64_t)delta;
    fw_metric_gauge_add(s->stats->inflight_bytes, (double)delta);
    if (s->inflight > s->inflight_peak) {
        s->inflight_peak = s->inflight;
        fw_metric_set(s->stats->inflight_peak_bytes, (double)s->inflight_peak);
    }
    int over = s->inflight >= s->limits.total_inflight_bytes;
    if (over != s->paused_all) {
        /* Crossing the global bound stops or restarts every connection. */
        s->paused_all = over;
        if (over)
            fw_log_debug("calligraphus", "memory bound reached (%llu bytes); reads pause",
                         (unsigned long long)s->inflight);
        for (cal_conn_t *x = s->conns; x != NULL; x = x->next)
            cal_conn_update_reading(x);
    } else {
        cal_conn_update_reading(c);
    }
}

void cal_server_drain(cal_server_t *s)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    for (int i = 0; i < s->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&s->listeners[i].tcp))
            uv_close((uv_handle_t *)&s->listeners[i].tcp, NULL);
    for (cal_conn_t *c = s->conns; c != NULL; c = c->next)
        cal_conn_update_reading(c);
}

static void on_idle_closed(uv_handle_t *h)
{
    cal_server_t *s = h->data;
    if (s->closed_cb != NULL)
        s->closed_cb(s);
}

/* Waits (one loop turn at a time) until every connection is freed. */
static void on_close_idle(uv_idle_t *idle)
{
    cal_server_t *s = idle->data;
    if (s->conns != NULL)
        return;
    uv_idle_stop(idle);
    uv_close((uv_handle_t *)idle, on_idle_closed);
}

void cal_server_close(cal_server_t *s, cal_server_cb cb)
{
    cal_server_drain(s);
    cal_forward_close_all(s);
    s->closed_cb = cb;
    s->closing_conns = 1;
    for (cal_conn_t *c = s->conns; c != NULL; c = c->next)
        if (c->writes == 0)
            cal_conn_close(c); /* else its last write closes it (conn.c) */
    uv_idle_init(s->loop, &s->close_idle);
    s->close_idle.data = s;
    uv_idle_start(&s->close_idle, on_close_idle);
}
