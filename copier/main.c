/*
 * copier: the continuous copier daemon. Flags and config file, signals, and
 * the order things start and stop in; the work is in copier.c and task.c.
 */
#include "config.h"
#include "copier.h"
#include "error.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "version.h"

#include <ctype.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DESTS 16

typedef struct options_s {
    char *config;
    char *source;
    char *dest;
    char *id;
    char *zk;
    char *zk_auth;
    int64_t session_timeout;
    char *metrics;
    uint64_t rate;
    int64_t retention;
    int64_t poll;
    uint64_t chunk;
    int64_t damage_grace;
    char *hdfs_user;
    int64_t stall_timeout;
    char *log_level;
} options_t;

static const fw_option_t OPTIONS[] = {
    {"config", FW_OPT_STRING, offsetof(options_t, config), NULL, "FILE",
     "read options from FILE (`name = value` lines; flags override it)"},
    {"source", FW_OPT_STRING, offsetof(options_t, source), NULL, "DIR",
     "the writer's root to copy from: every bucket of every category (required)"},
    {"dest", FW_OPT_STRING, offsetof(options_t, dest), NULL, "URL[,URL...]",
     "where to copy: file:///PATH (local, NFS or mounted) or webhdfs://HOST:PORT/PATH; "
     "several, comma-separated (required)"},
    {"id", FW_OPT_STRING, offsetof(options_t, id), NULL, "NAME",
     "this copier's name in ZooKeeper, stable across restarts (default: the host name; "
     "give each copier on one host its own)"},
    {"zk", FW_OPT_STRING, offsetof(options_t, zk), "${FREEWAY_ZK:-127.0.0.1:2181/freeway}",
     "HOSTS[/chroot]", "ZooKeeper ensemble and chroot (claims and progress under copier/)"},
    {"zk-auth", FW_OPT_STRING, offsetof(options_t, zk_auth), "${FREEWAY_ZK_AUTH:-}",
     "USER:PASSWORD",
     "ZooKeeper digest identity: authenticate as it, and create nodes only it may change "
     "(everyone may read); better set in the config file or $FREEWAY_ZK_AUTH than on the command "
     "line"},
    {"session-timeout", FW_OPT_DURATION, offsetof(options_t, session_timeout), "10s", "DURATION",
     "ZooKeeper session timeout: how soon another copier takes over a dead one's buckets"},
    {"metrics", FW_OPT_STRING, offsetof(options_t, metrics), NULL, "ADDR:PORT",
     "serve Prometheus /metrics, /healthz and /readyz here"},
    {"rate", FW_OPT_SIZE, offsetof(options_t, rate), "0", "BYTES/s",
     "copy at most this many bytes per second, smoothly (token bucket); 0 = no limit"},
    {"retention", FW_OPT_DURATION, offsetof(options_t, retention), "0", "DURATION",
     "delete source segments that are sealed, copied to every --dest and older than this; "
     "0 keeps everything"},
    {"poll", FW_OPT_DURATION, offsetof(options_t, poll), "1s", "DURATION",
     "look for new data this often even without file events (NFS, lost events)"},
    {"chunk", FW_OPT_SIZE, offsetof(options_t, chunk), "4M", "SIZE",
     "bytes per copy step (each step is one write, one sync and one progress record)"},
    {"damage-grace", FW_OPT_DURATION, offsetof(options_t, damage_grace), "10s", "DURATION",
     "how long a damaged block at the tail of an open segment may wait for the writer's "
     "recovery before the bucket is reported stopped"},
    {"hdfs-user", FW_OPT_STRING, offsetof(options_t, hdfs_user), NULL, "NAME",
     "webhdfs: user.name for clusters without Kerberos"},
    {"stall-timeout", FW_OPT_DURATION, offsetof(options_t, stall_timeout), "30s", "DURATION",
     "webhdfs: a request that moves no byte for this long fails"},
    {"log-level", FW_OPT_STRING, offsetof(options_t, log_level), "info", "LEVEL",
     "debug, info, warn or error"},
    FW_OPTIONS_END,
};

typedef struct daemon_s {
    uv_loop_t loop;
    options_t opt;
    fw_metrics_t *metrics;
    cp_copier_t copier;
    fw_http_t http;
    int http_on;
    uv_signal_t sigterm, sigint;
    int stopping;
    char id[128];
    char metrics_address[128];
    char *dest_list; /* the --dest value, split in place */
    const char *dests[MAX_DESTS];
    int ndests;
} daemon_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: copier --source DIR --dest URL[,URL...] [OPTIONS]\n\n"
                 "The freeway continuous copier: copies every bucket of every category under\n"
                 "DIR to each destination as the segments grow, block by verified block, and\n"
                 "records its progress in ZooKeeper once the destination holds the bytes\n"
                 "durably. Copiers given the same destination share its buckets. SIGTERM\n"
                 "finishes the copy step in flight, records it, and exits 0.\n\n"
                 "options:\n");
    fw_config_usage(OPTIONS, out);
}

static void on_http_closed(fw_http_t *http)
{
    (void)http;
}

static void on_copier_stopped(cp_copier_t *c)
{
    daemon_t *d = (daemon_t *)((char *)c - offsetof(daemon_t, copier));
    if (d->http_on)
        fw_http_close(&d->http, on_http_closed);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    daemon_t *d = sig->data;
    if (d->stopping)
        return;
    d->stopping = 1;
    fw_log_info("copier", "signal %d: finishing the copies in flight", signum);
    cp_copier_stop(&d->copier, on_copier_stopped);
}

static int ready(void *arg, char *reason, size_t cap)
{
    daemon_t *d = arg;
    return cp_copier_ready(&d->copier, reason, cap);
}

/* Splits "a,b c" into d->dests (in place). */
static int split_dests(daemon_t *d)
{
    d->dest_list = strdup(d->opt.dest);
    if (d->dest_list == NULL)
        return -1;
    for (char *p = d->dest_list; *p;) {
        while (*p == ',' || isspace((unsigned char)*p))
            *p++ = '\0';
        if (*p == '\0')
            break;
        if (d->ndests == MAX_DESTS) {
            fprintf(stderr, "copier: at most %d destinations\n", MAX_DESTS);
            return -1;
        }
        d->dests[d->ndests++] = p;
        while (*p && *p != ',' && !isspace((unsigned char)*p))
            p++;
    }
    for (int i = 0; i < d->ndests; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(d->dests[i], d->dests[j]) == 0) {
                fprintf(stderr, "copier: --dest %s given twice\n", d->dests[i]);
                return -1;
            }
    return d->ndests > 0 ? 0 : -1;
}

static int check_options(daemon_t *d)
{
    const options_t *o = &d->opt;
    fw_log_level_t level;
    if (o->zk_auth != NULL && o->zk_auth[0] != '\0' && strchr(o->zk_auth, ':') == NULL) {
        fprintf(stderr, "copier: --zk-auth must be USER:PASSWORD\n");
        return -1;
    }
    if (fw_log_parse_level(o->log_level, &level) < 0) {
        fprintf(stderr, "copier: --log-level must be debug, info, warn or error\n");
        return -1;
    }
    fw_log_set_level(level);
    if (o->source == NULL || o->source[0] == '\0' || o->dest == NULL) {
        fprintf(stderr, "copier: --source DIR and --dest URL are required (see --help)\n");
        return -1;
    }
    if (split_dests(d) < 0) {
        if (d->ndests == 0)
            fprintf(stderr, "copier: --dest needs at least one URL\n");
        return -1;
    }
    if (o->poll < 10 || o->session_timeout < 1000 || o->chunk < 4096 || o->chunk > (256u << 20) ||
        o->retention < 0 || o->damage_grace < 0 || o->stall_timeout < 100) {
        fprintf(stderr, "copier: --poll must be at least 10ms, --session-timeout 1s, --chunk "
                        "4K to 256M, --stall-timeout 100ms\n");
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
    if (d->metrics == NULL)
        return -ENOMEM;
    if (o->id != NULL) {
        snprintf(d->id, sizeof(d->id), "%s", o->id);
    } else {
        gethostname(d->id, sizeof(d->id) - 1);
    }
    if (o->metrics != NULL) {
        rc = fw_http_init(&d->http, &d->loop, o->metrics, d->metrics, ready, d);
        if (rc < 0) {
            fprintf(stderr, "copier: cannot serve metrics on %s: %s\n", o->metrics,
                    fw_strerror(rc));
            return rc;
        }
        d->http_on = 1;
        fw_http_address(&d->http, d->metrics_address, sizeof(d->metrics_address));
    }
    cp_config_t cfg = {
        .id = d->id,
        .source = o->source,
        .dests = d->dests,
        .ndests = d->ndests,
        .zk = o->zk,
        .zk_auth = o->zk_auth,
        .session_timeout_ms = (int)o->session_timeout,
        .rate = o->rate,
        .retention_ms = o->retention,
        .poll_ms = o->poll,
        .chunk = o->chunk,
        .damage_grace_ms = o->damage_grace,
        .dest_options =
            {
                .hdfs_user = o->hdfs_user ? o->hdfs_user : "",
                .stall_timeout_ms = o->stall_timeout,
                .sync = 1,
            },
        .metrics_address = d->metrics_address,
    };
    rc = cp_copier_start(&d->copier, &d->loop, &cfg, d->metrics);
    if (rc < 0)
        return rc;
    uv_signal_init(&d->loop, &d->sigterm);
    uv_signal_init(&d->loop, &d->sigint);
    d->sigterm.data = d->sigint.data = d;
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    fw_log_info("copier", "%s copying %s to %s (rate %s, retention %s), zk %s", d->id, o->source,
                o->dest, o->rate ? "limited" : "unlimited", o->retention ? "on" : "off", o->zk);
    if (d->http_on)
        fw_log_info("copier", "metrics on http://%s/metrics", d->metrics_address);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    static daemon_t d;
    int rc = fw_config_daemon("copier", OPTIONS, &d.opt, argc, argv, usage);
    if (rc >= 0)
        return rc;
    if (check_options(&d) < 0) {
        free(d.dest_list);
        fw_config_free(OPTIONS, &d.opt);
        return 2;
    }
    rc = run(&d);
    int status = rc < 0 ? 1 : 0;
    if (rc == 0 && uv_loop_close(&d.loop) != 0)
        fw_log_warn("copier", "event loop closed with handles open");
    fw_metrics_destroy(d.metrics);
    free(d.dest_list);
    fw_config_free(OPTIONS, &d.opt);
    return status;
}
