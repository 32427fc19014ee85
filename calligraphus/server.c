/* The produce endpoint: listener, connections, memory bounds (see server.h). */
#include "server.h"

#include "conn.h"
#include "error.h"
#include "forward.h"
#include "log.h"
#include "net.h"

#include <stdio.h>
#include <string.h>

static void on_connection(uv_stream_t *listener, int status)
{
    cal_server_t *s = listener->data;
    if (status < 0) {
        fw_log_warn("calligraphus", "accept: %s", uv_strerror(status));
        return;
    }
    int rc = cal_conn_accept(s, listener);
    if (rc < 0)
        fw_log_warn("calligraphus", "refused a connection: %s", fw_strerror(rc));
}

int cal_server_init(cal_server_t *s, uv_loop_t *loop, const char *listen, cal_node_t *node,
                    cal_stats_t *stats, const cal_server_limits_t *limits)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->node = node;
    s->stats = stats;
    s->limits = *limits;
    struct sockaddr_storage ss;
    int rc = fw_addr_parse(listen, &ss);
    if (rc < 0)
        return rc;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->handles = 1;
    rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    if (rc < 0) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        s->handles = 0;
        return rc;
    }
    int len = sizeof(ss);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    fw_addr_format((struct sockaddr *)&ss, s->address, sizeof(s->address));
    return 0;
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
    if (s->handles > 0 && !uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, NULL);
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
