/*
 * calligraphus: the writer daemon. Flags and config file, signals, and the
 * order things start and stop in; the work is in node.c (cluster and
 * buckets), server.c/conn.c/produce.c (requests) and bucket.c (disk).
 */
#include "error.h"
#include "frame.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "net.h"
#include "node.h"
#include "scribe.h"
#include "scribe_thrift.h"
#include "server.h"
#include "version.h"

#include "config.h"

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    uint64_t max_frame;
    uint64_t conn_inflight;
    uint64_t inflight;
    uint64_t category_inflight;
    uint64_t batch_bytes;
    int64_t max_producers;
    int64_t dedup_segments;
    int64_t forward_timeout;
    int64_t max_conns;
    char *scribe_listen;
    char *scribe_unknown_category;
    int64_t scribe_new_category_buckets;
    int64_t scribe_retry_window;
    int64_t scribe_retry_max;
    uint64_t scribe_max_frame;
    int64_t scribe_resubmit;
} options_t;

static const fw_option_t OPTIONS[] = {
    {"config", FW_OPT_STRING, offsetof(options_t, config), NULL, "FILE",
     "read options from FILE (`name = value` lines; flags override it)"},
    {"listen", FW_OPT_STRING, offsetof(options_t, listen), "127.0.0.1:7410", "ADDR:PORT",
     "where producers and other writers connect (port 0 picks one; the bound address is "
     "logged)"},
    {"advertise", FW_OPT_STRING, offsetof(options_t, advertise), NULL, "HOST:PORT",
     "the address others should use, a host name or an IP (default: the bound --listen "
     "address)"},
    {"root", FW_OPT_STRING, offsetof(options_t, root), NULL, "DIR",
     "where segments are written: ROOT/<category>/<bucket>/<segment>.seg (required); writers "
     "that share buckets should share the root (see docs/decisions.md)"},
    {"id", FW_OPT_STRING, offsetof(options_t, id), NULL, "NAME",
     "this writer's name in ZooKeeper, stable across restarts (default: HOST-PORT)"},
    {"metrics", FW_OPT_STRING, offsetof(options_t, metrics), NULL, "ADDR:PORT",
     "serve Prometheus /metrics, /healthz and /readyz here"},
    {"zk", FW_OPT_STRING, offsetof(options_t, zk), "${FREEWAY_ZK:-127.0.0.1:2181/freeway}",
     "HOSTS[/chroot]", "ZooKeeper ensemble and chroot"},
    {"zk-auth", FW_OPT_STRING, offsetof(options_t, zk_auth), "${FREEWAY_ZK_AUTH:-}",
     "USER:PASSWORD",
     "ZooKeeper digest identity: authenticate as it, and create nodes only it may change "
     "(everyone may read); better set in the config file or $FREEWAY_ZK_AUTH than on the command "
     "line"},
    {"session-timeout", FW_OPT_DURATION, offsetof(options_t, session_timeout), "10s", "DURATION",
     "ZooKeeper session timeout: how fast a dead writer's buckets move"},
    {"log-level", FW_OPT_STRING, offsetof(options_t, log_level), "info", "LEVEL",
     "debug, info, warn or error"},
    {"max-frame", FW_OPT_SIZE, offsetof(options_t, max_frame), "40M", "SIZE",
     "largest request accepted; a larger one closes its connection"},
    {"conn-inflight", FW_OPT_SIZE, offsetof(options_t, conn_inflight), "32M", "SIZE",
     "stop reading a connection with this many request bytes unanswered"},
    {"inflight", FW_OPT_SIZE, offsetof(options_t, inflight), "96M", "SIZE",
     "stop reading every connection with this many request bytes unanswered in all"},
    {"category-inflight", FW_OPT_SIZE, offsetof(options_t, category_inflight), "48M", "SIZE",
     "answer a category's blocks retry-later past this many of its bytes unanswered"},
    {"batch-bytes", FW_OPT_SIZE, offsetof(options_t, batch_bytes), "1M", "SIZE",
     "write a bucket's waiting blocks at once when this many bytes wait"},
    {"max-producers", FW_OPT_INT, offsetof(options_t, max_producers), "4096", "N",
     "producers remembered per bucket for retries"},
    {"dedup-segments", FW_OPT_INT, offsetof(options_t, dedup_segments), "4", "N",
     "newest segments read to rebuild the retry table when a bucket is taken"},
    {"forward-timeout", FW_OPT_DURATION, offsetof(options_t, forward_timeout), "10s", "DURATION",
     "how long to wait for the owner's answer to a forwarded block, and for a connection to it"},
    {"max-conns", FW_OPT_INT, offsetof(options_t, max_conns), "10000", "N",
     "connections accepted at once"},
    {"scribe-listen", FW_OPT_STRING, offsetof(options_t, scribe_listen), NULL, "ADDR:PORT",
     "also take Scribe's Thrift Log calls here (Scribe's port is 1463; docs/scribe.md)"},
    {"scribe-unknown-category", FW_OPT_STRING, offsetof(options_t, scribe_unknown_category),
     "reject", "reject|create",
     "a Scribe call naming a category that does not exist: answer TRY_LATER (reject), or "
     "create the category and answer TRY_LATER until it is ready (create)"},
    {"scribe-new-category-buckets", FW_OPT_INT, offsetof(options_t, scribe_new_category_buckets),
     "8", "N", "buckets of a category created for Scribe"},
    {"scribe-retry-window", FW_OPT_DURATION, offsetof(options_t, scribe_retry_window), "10m",
     "DURATION",
     "how long a Scribe call answered TRY_LATER, or left unanswered, is remembered so that "
     "it is not stored twice when it comes again"},
    {"scribe-retry-max", FW_OPT_INT, offsetof(options_t, scribe_retry_max), "100000", "N",
     "Scribe calls remembered at most (the oldest go first)"},
    {"scribe-max-frame", FW_OPT_SIZE, offsetof(options_t, scribe_max_frame), "16M", "SIZE",
     "largest Thrift frame accepted; a larger one closes its connection"},
    {"scribe-resubmit", FW_OPT_DURATION, offsetof(options_t, scribe_resubmit), "2s", "DURATION",
     "how long the writer sends a Scribe call's blocks again after a passing failure (an "
     "owner moving, backpressure) before it answers TRY_LATER; 0: answer at once"},
    FW_OPTIONS_END,
};

typedef struct daemon_s {
    uv_loop_t loop;
    options_t opt;
    fw_metrics_t *metrics;
    cal_stats_t *stats;
    cal_node_t node;
    cal_server_t server;
    cal_scribe_t *scribe;
    fw_http_t http;
    int http_on;
    uv_signal_t sigterm, sigint;
    int stopping;
    char id[CAL_ID_MAX];
    char address[CAL_ADDR_MAX];
} daemon_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: calligraphus --root DIR [--listen ADDR:PORT] [OPTIONS]\n\n"
                 "The freeway writer: takes blocks from producers, appends them to the\n"
                 "segments of the buckets it owns (fdatasync before the ack), forwards the\n"
                 "others to their owners, and shares the buckets with the other writers\n"
                 "through ZooKeeper. SIGTERM seals every open segment and exits 0.\n\n"
                 "options:\n");
    fw_config_usage(OPTIONS, out);
}

static void on_http_closed(fw_http_t *http)
{
    (void)http;
}

static void on_scribe_closed(void *arg)
{
    daemon_t *d = arg;
    cal_scribe_free(d->scribe);
    d->scribe = NULL;
}

static void on_server_closed(cal_server_t *s)
{
    daemon_t *d = (daemon_t *)((char *)s - offsetof(daemon_t, server));
    fw_buf_free(&s->scratch);
    if (d->scribe != NULL)
        cal_scribe_close(d->scribe, on_scribe_closed, d);
    if (d->http_on)
        fw_http_close(&d->http, on_http_closed);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    fw_log_info("calligraphus", "stopped");
}

static void on_node_stopped(cal_node_t *n)
{
    daemon_t *d = (daemon_t *)((char *)n - offsetof(daemon_t, node));
    cal_server_close(&d->server, on_server_closed);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    daemon_t *d = sig->data;
    if (d->stopping) {
        fw_log_warn("calligraphus", "signal %d again while stopping; still sealing", signum);
        return;
    }
    d->stopping = 1;
    fw_log_info("calligraphus", "signal %d: stop accepting, flush, seal, release", signum);
    cal_server_drain(&d->server);
    cal_node_stop(&d->node, on_node_stopped);
}

static int ready(void *arg, char *reason, size_t cap)
{
    return cal_node_ready(arg, reason, cap);
}

static int check_options(daemon_t *d)
{
    options_t *o = &d->opt;
    fw_log_level_t level;
    char why[200];
    if (o->advertise != NULL && fw_addr_check_published(o->advertise, why, sizeof(why)) < 0) {
        fprintf(stderr, "calligraphus: --advertise %s: %s\n", o->advertise, why);
        return -1;
    }
    if (o->zk_auth != NULL && o->zk_auth[0] != '\0' && strchr(o->zk_auth, ':') == NULL) {
        fprintf(stderr, "calligraphus: --zk-auth must be USER:PASSWORD\n");
        return -1;
    }
    if (fw_log_parse_level(o->log_level, &level) < 0) {
        fprintf(stderr, "calligraphus: --log-level must be debug, info, warn or error\n");
        return -1;
    }
    fw_log_set_level(level);
    if (o->root == NULL || o->root[0] == '\0') {
        fprintf(stderr, "calligraphus: --root DIR is required (see --help)\n");
        return -1;
    }
    if (o->max_frame < 1024 || o->max_frame > FW_FRAME_MAX_LIMIT) {
        fprintf(stderr, "calligraphus: --max-frame must be 1K..%uM\n", FW_FRAME_MAX_LIMIT >> 20);
        return -1;
    }
    if (strcmp(o->scribe_unknown_category, "reject") != 0 &&
        strcmp(o->scribe_unknown_category, "create") != 0) {
        fprintf(stderr, "calligraphus: --scribe-unknown-category must be reject or create\n");
        return -1;
    }
    if (o->scribe_new_category_buckets < 1 || o->scribe_new_category_buckets > FW_BUCKETS_MAX ||
        o->scribe_retry_max < 1 || o->scribe_retry_window < 1000 || o->scribe_max_frame < 1024 ||
        o->scribe_max_frame > CAL_SCRIBE_FRAME_MAX_LIMIT || o->scribe_resubmit < 0 ||
        o->scribe_resubmit > 60000) {
        fprintf(stderr,
                "calligraphus: --scribe-new-category-buckets must be 1..%d, "
                "--scribe-retry-max at least 1, --scribe-retry-window at least 1s, "
                "--scribe-max-frame 1K..2G, --scribe-resubmit 0..60s\n",
                FW_BUCKETS_MAX);
        return -1;
    }
    if (o->session_timeout < 1000 || o->max_producers < 1 || o->dedup_segments < 1 ||
        o->max_conns < 1 || o->conn_inflight < 1 || o->inflight < o->conn_inflight) {
        fprintf(stderr, "calligraphus: --session-timeout must be at least 1s; --max-producers, "
                        "--dedup-segments, --max-conns and --conn-inflight at least 1; "
                        "--inflight at least --conn-inflight\n");
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
    d->stats = d->metrics ? cal_stats_create(d->metrics) : NULL;
    if (d->stats == NULL) {
        fprintf(stderr, "calligraphus: out of memory\n");
        return -ENOMEM;
    }
    cal_server_limits_t limits = {
        .max_frame = (uint32_t)o->max_frame,
        .conn_inflight_bytes = o->conn_inflight,
        .total_inflight_bytes = o->inflight,
        .category_inflight_bytes = o->category_inflight,
        .forward_timeout_ms = (uint32_t)o->forward_timeout,
        .max_conns = (uint32_t)o->max_conns,
    };
    /* Bind first: the address we publish is the one we got. */
    rc = cal_server_init(&d->server, &d->loop, o->listen, &d->node, d->stats, &limits);
    if (rc < 0) {
        fprintf(stderr, "calligraphus: cannot listen on %s: %s\n", o->listen, fw_strerror(rc));
        return rc;
    }
    if (fw_addr_published(o->advertise, d->server.address, d->address, sizeof(d->address)))
        fw_log_warn("calligraphus",
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
        rc = fw_http_init(&d->http, &d->loop, o->metrics, d->metrics, ready, &d->node);
        if (rc < 0) {
            fprintf(stderr, "calligraphus: cannot serve metrics on %s: %s\n", o->metrics,
                    fw_strerror(rc));
            return rc;
        }
        d->http_on = 1;
        fw_http_address(&d->http, metrics_addr, sizeof(metrics_addr));
    }
    cal_node_config_t nc = {
        .id = d->id,
        .address = d->address,
        .metrics_address = metrics_addr,
        .root = o->root,
        .zk_connect = o->zk,
        .zk_auth = o->zk_auth,
        .session_timeout_ms = (int)o->session_timeout,
        .batch_bytes = o->batch_bytes,
        .max_producers = (size_t)o->max_producers,
        .dedup_segments = (int)o->dedup_segments,
        .max_parallel_moves = 4,
    };
    rc = cal_node_init(&d->node, &d->loop, &nc, d->stats);
    if (rc < 0) {
        fprintf(stderr, "calligraphus: cannot start: %s\n", fw_strerror(rc));
        return rc;
    }
    char scribe_addr[128] = "";
    if (o->scribe_listen != NULL) {
        cal_scribe_config_t sc = {
            .listen = o->scribe_listen,
            .create_unknown = strcmp(o->scribe_unknown_category, "create") == 0,
            .new_category_buckets = (uint32_t)o->scribe_new_category_buckets,
            .retry_window_ms = o->scribe_retry_window,
            .retry_max = (uint32_t)o->scribe_retry_max,
            .max_frame = (uint32_t)o->scribe_max_frame,
            .resubmit_ms = o->scribe_resubmit,
        };
        rc = cal_scribe_start(&d->scribe, &d->server, &sc, scribe_addr, sizeof(scribe_addr));
        if (rc < 0) {
            fprintf(stderr, "calligraphus: cannot listen for Scribe on %s: %s\n", o->scribe_listen,
                    fw_strerror(rc));
            return rc;
        }
    }
    uv_signal_init(&d->loop, &d->sigterm);
    uv_signal_init(&d->loop, &d->sigint);
    d->sigterm.data = d->sigint.data = d;
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    fw_log_info("calligraphus", "%s listening on %s (advertised %s), root %s, zk %s", d->id,
                d->server.address, d->address, o->root, o->zk);
    if (d->http_on)
        fw_log_info("calligraphus", "metrics on http://%s/metrics", metrics_addr);
    if (d->scribe != NULL)
        fw_log_info("calligraphus", "scribe listening on %s", scribe_addr);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    /* A file-size limit must fail the write (EFBIG), not kill the writer. */
    signal(SIGXFSZ, SIG_IGN);
    static daemon_t d;
    int rc = fw_config_daemon("calligraphus", OPTIONS, &d.opt, argc, argv, usage);
    if (rc >= 0)
        return rc;
    if (check_options(&d) < 0) {
        fw_config_free(OPTIONS, &d.opt);
        return 2;
    }
    rc = run(&d);
    int status = rc < 0 ? 1 : 0;
    if (rc == 0 && uv_loop_close(&d.loop) != 0)
        fw_log_warn("calligraphus", "event loop closed with handles open");
    cal_scribe_free(d.scribe); /* NULL after a clean stop; left by a failed start */
    cal_stats_destroy(d.stats);
    fw_metrics_destroy(d.metrics);
    fw_config_free(OPTIONS, &d.opt);
    return status;
}
