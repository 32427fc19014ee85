/*
 * ptail: the streaming daemon. Flags and config file, signals, and the
 * order things start and stop in; subscriptions are served by server.c and
 * sub.c over the files (cursor.c), and registry.c makes it findable.
 */
#include "config.h"
#include "error.h"
#include "frame.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "registry.h"
#include "server.h"
#include "stats.h"
#include "version.h"

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct options_s {
    char *config;
    char *listen;
    char *advertise;
    char *root;
    char *id;
    char *metrics;
    char *zk;
    char *zk_auth;
    int64_t session_timeout;
    char *log_level;
    int64_t max_subscribers;
    uint64_t out_buffer;
    int64_t poll;
    int64_t damage_grace;
} options_t;

static const fw_option_t OPTIONS[] = {
    {"config", FW_OPT_STRING, offsetof(options_t, config), NULL, "FILE",
     "read options from FILE (`name = value` lines; flags override it)"},
    {"listen", FW_OPT_STRING, offsetof(options_t, listen), "127.0.0.1:7420", "ADDR:PORT",
     "where consumers connect (port 0 picks one; the bound address is logged)"},
    {"advertise", FW_OPT_STRING, offsetof(options_t, advertise), NULL, "HOST:PORT",
     "the address consumers should use, a host name or an IP (default: the bound --listen "
     "address)"},
    {"root", FW_OPT_STRING, offsetof(options_t, root), NULL, "DIR",
     "the segments to serve: a writer's root or a copier's destination (required)"},
    {"id", FW_OPT_STRING, offsetof(options_t, id), NULL, "NAME",
     "this ptail's name in ZooKeeper (default: HOST-PORT)"},
    {"metrics", FW_OPT_STRING, offsetof(options_t, metrics), NULL, "ADDR:PORT",
     "serve Prometheus /metrics, /healthz and /readyz here"},
    {"zk", FW_OPT_STRING, offsetof(options_t, zk), "${FREEWAY_ZK:-127.0.0.1:2181/freeway}",
     "HOSTS[/chroot]", "ZooKeeper ensemble and chroot (ptail registers under nodes/ptail)"},
    {"zk-auth", FW_OPT_STRING, offsetof(options_t, zk_auth), "${FREEWAY_ZK_AUTH:-}",
     "USER:PASSWORD",
     "ZooKeeper digest identity: authenticate as it, and create nodes only it may change "
     "(everyone may read); better set in the config file or $FREEWAY_ZK_AUTH than on the command "
     "line"},
    {"session-timeout", FW_OPT_DURATION, offsetof(options_t, session_timeout), "10s", "DURATION",
     "ZooKeeper session timeout"},
    {"log-level", FW_OPT_STRING, offsetof(options_t, log_level), "info", "LEVEL",
     "debug, info, warn or error"},
    {"max-subscribers", FW_OPT_INT, offsetof(options_t, max_subscribers), "1024", "N",
     "subscriptions served at once; more are refused with retry-later"},
    {"out-buffer", FW_OPT_SIZE, offsetof(options_t, out_buffer), "1M", "SIZE",
     "per subscriber, stream bytes read ahead of the socket (memory: about twice this)"},
    {"poll", FW_OPT_DURATION, offsetof(options_t, poll), "1s", "DURATION",
     "look for new data this often even without file events (filesystems without inotify)"},
    {"damage-grace", FW_OPT_DURATION, offsetof(options_t, damage_grace), "10s", "DURATION",
     "how long a damaged block in a bucket that moved on may wait for a writer's recovery "
     "before it is reported to consumers as a gap"},
    FW_OPTIONS_END,
};

typedef struct daemon_s {
    uv_loop_t loop;
    options_t opt;
    fw_metrics_t *metrics;
    pt_stats_t stats;
    pt_server_t server;
    pt_registry_t registry;
    fw_http_t http;
    int http_on;
    uv_signal_t sigterm, sigint;
    int stopping;
    char id[128];
    char address[128];
} daemon_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: ptail --root DIR [--listen ADDR:PORT] [OPTIONS]\n\n"
                 "The freeway streaming daemon: serves subscriptions to a category's buckets\n"
                 "from the segment files under DIR, as they grow, with checkpoints in the\n"
                 "stream so a consumer can resume exactly where it was. SIGTERM ends every\n"
                 "subscription and exits 0.\n\n"
                 "options:\n");
    fw_config_usage(OPTIONS, out);
}

static void on_http_closed(fw_http_t *http)
{
    (void)http;
}

static void on_registry_stopped(pt_registry_t *r)
{
    daemon_t *d = (daemon_t *)((char *)r - offsetof(daemon_t, registry));
    if (d->http_on)
        fw_http_close(&d->http, on_http_closed);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    fw_log_info("ptail", "stopped");
}

static void on_server_closed(pt_server_t *s)
{
    daemon_t *d = (daemon_t *)((char *)s - offsetof(daemon_t, server));
    pt_registry_stop(&d->registry, on_registry_stopped);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    daemon_t *d = sig->data;
    if (d->stopping)
        return;
    d->stopping = 1;
    fw_log_info("ptail", "signal %d: ending subscriptions", signum);
    pt_server_close(&d->server, on_server_closed);
}

static int ready(void *arg, char *reason, size_t cap)
{
    daemon_t *d = arg;
    if (d->stopping) {
        snprintf(reason, cap, "shutting down");
        return 0;
    }
    if (!fw_zk_connected(&d->registry.zk)) {
        snprintf(reason, cap, "ZooKeeper session %s",
                 fw_zk_state_name(fw_zk_state(&d->registry.zk)));
        return 0;
    }
    if (!pt_registry_registered(&d->registry)) {
        snprintf(reason, cap, "not registered in ZooKeeper");
        return 0;
    }
    struct stat st;
    if (stat(d->opt.root, &st) != 0) {
        snprintf(reason, cap, "root %s is not readable", d->opt.root);
        return 0;
    }
    return 1;
}

static int check_options(const options_t *o)
{
    fw_log_level_t level;
    char why[200];
    if (o->advertise != NULL && fw_addr_check_published(o->advertise, why, sizeof(why)) < 0) {
        fprintf(stderr, "ptail: --advertise %s: %s\n", o->advertise, why);
        return -1;
    }
    if (o->zk_auth != NULL && o->zk_auth[0] != '\0' && strchr(o->zk_auth, ':') == NULL) {
        fprintf(stderr, "ptail: --zk-auth must be USER:PASSWORD\n");
        return -1;
    }
    if (fw_log_parse_level(o->log_level, &level) < 0) {
        fprintf(stderr, "ptail: --log-level must be debug, info, warn or error\n");
        return -1;
    }
    fw_log_set_level(level);
    if (o->root == NULL || o->root[0] == '\0') {
        fprintf(stderr, "ptail: --root DIR is required (see --help)\n");
        return -1;
    }
    if (o->max_subscribers < 1 || o->out_buffer < 4096 || o->poll < 10 ||
        o->session_timeout < 1000 || o->damage_grace < 0) {
        fprintf(stderr, "ptail: --max-subscribers must be at least 1, --out-buffer 4K, --poll "
                        "10ms, --session-timeout 1s\n");
        return -1;
    }
    return 0;
}

static int run(daemon_t *d)
{
    options_t *o = &d->opt;
    int rc = uv_loop_init(&d->loop);
    if (rc < 0)
        return rc;
    d->metrics = fw_metrics_create();
    if (d->metrics == NULL || pt_stats_init(&d->stats, d->metrics) < 0) {
        fprintf(stderr, "ptail: out of memory\n");
        return -ENOMEM;
    }
    pt_limits_t limits = {
        .max_subscribers = (uint32_t)o->max_subscribers,
        .max_frame = 4u << 20, /* a SUBSCRIBE with a token for every bucket fits */
        .out_buffer_bytes = (uint32_t)o->out_buffer,
        .poll_ms = (uint32_t)o->poll,
        .damage_grace_ms = (uint32_t)o->damage_grace,
    };
    rc = pt_server_init(&d->server, &d->loop, o->listen, o->root, &limits, &d->stats);
    if (rc < 0) {
        fprintf(stderr, "ptail: cannot listen on %s: %s\n", o->listen, fw_strerror(rc));
        return rc;
    }
    if (fw_addr_published(o->advertise, d->server.address, d->address, sizeof(d->address)))
        fw_log_warn("ptail",
                    "advertising %s, which only this host can use: other hosts need "
                    "--advertise HOST:PORT",
                    d->address);
    if (o->id != NULL) {
        snprintf(d->id, sizeof(d->id), "%s", o->id);
    } else {
        char host[64] = "localhost";
        gethostname(host, sizeof(host) - 1);
        const char *port = strrchr(d->server.address, ':');
        snprintf(d->id, sizeof(d->id), "%s-%s", host, port ? port + 1 : "0");
    }
    char metrics_addr[128] = "";
    if (o->metrics != NULL) {
        rc = fw_http_init(&d->http, &d->loop, o->metrics, d->metrics, ready, d);
        if (rc < 0) {
            fprintf(stderr, "ptail: cannot serve metrics on %s: %s\n", o->metrics, fw_strerror(rc));
            return rc;
        }
        d->http_on = 1;
        fw_http_address(&d->http, metrics_addr, sizeof(metrics_addr));
    }
    rc = pt_registry_start(&d->registry, &d->loop, o->zk, o->zk_auth, (int)o->session_timeout,
                           d->id, d->address, metrics_addr, o->root);
    if (rc < 0) {
        fprintf(stderr, "ptail: bad --zk %s: %s\n", o->zk, fw_strerror(rc));
        return rc;
    }
    d->server.zk = &d->registry.zk;
    uv_signal_init(&d->loop, &d->sigterm);
    uv_signal_init(&d->loop, &d->sigint);
    d->sigterm.data = d->sigint.data = d;
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    fw_log_info("ptail", "%s listening on %s (advertised %s), root %s, zk %s", d->id,
                d->server.address, d->address, o->root, o->zk);
    if (d->http_on)
        fw_log_info("ptail", "metrics on http://%s/metrics", metrics_addr);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    static daemon_t d;
    int rc = fw_config_daemon("ptail", OPTIONS, &d.opt, argc, argv, usage);
    if (rc >= 0)
        return rc;
    if (check_options(&d.opt) < 0) {
        fw_config_free(OPTIONS, &d.opt);
        return 2;
    }
    rc = run(&d);
    int status = rc < 0 ? 1 : 0;
    if (rc == 0 && uv_loop_close(&d.loop) != 0)
        fw_log_warn("ptail", "event loop closed with handles open");
    fw_metrics_destroy(d.metrics);
    fw_config_free(OPTIONS, &d.opt);
    return status;
}
