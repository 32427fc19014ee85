/* The NATS JetStream producer of the peer benchmark (bench/peers/README.md):
 * one connection, an asynchronous publish of each line of a file with a
 * bounded number awaiting their acks, then a wait for every ack. It can
 * create the stream (file storage); it does not start the server. */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "peer_input.h"

#define PROG "nats_publish"

#include <nats/nats.h>

/* Filled by the ack handler, which runs on the library's own thread. */
struct acks {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    long long ok;
    long long failed;
    long long bad_seq; /* acks without a stream sequence */
    char first_error[256];
};

static void usage(void)
{
    fprintf(stderr, "usage: nats_publish --url URL [--stream NAME] [--subject SUBJ] [--create] "
                    "[--max-pending N] [--count N] FILE\n"
                    "  publishes each line of FILE (newline stripped) to SUBJ asynchronously,\n"
                    "  at most N unacked (default 4096), waits for every ack and prints one\n"
                    "  JSON line with the figures. --create makes the stream (file storage,\n"
                    "  one replica) if it does not exist.\n");
}

/* Called once per published message, with its ack or its error. The
 * message is ours to destroy. */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    struct acks *a = closure;
    pthread_mutex_lock(&a->mu);
    if (pa != NULL) {
        a->ok++;
        if (pa->Sequence == 0)
            a->bad_seq++;
    } else {
        if (a->failed == 0 && pae != NULL)
            snprintf(a->first_error, sizeof(a->first_error), "%s (status %d, code %d)",
                     pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err), (int)pae->Err,
                     (int)pae->ErrCode);
        a->failed++;
    }
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->mu);
    natsMsg_Destroy(msg);
}

static int fail(const char *what, natsStatus s)
{
    fprintf(stderr, "nats_publish: %s: %s\n", what, natsStatus_GetText(s));
    nats_PrintLastErrorStack(stderr);
    return 1;
}

/* Creates the stream unless it exists: file storage, one replica, the
 * server's defaults otherwise (no limits, so nothing is discarded). */
static natsStatus ensure_stream(jsCtx *js, const char *name, const char *subject)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, js, name, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return NATS_OK;
    }
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
        return s;
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[1] = {subject};
    cfg.Name = name;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = 1;
    s = js_AddStream(&si, js, &cfg, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    return s;
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    const char *stream = "BENCH";
    const char *subject = "bench.peers";
    long long max_pending = 4096;
    long long limit = -1;
    int create = 0;
    const char *path = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage();
            return 0;
        }
        if (strcmp(a, "--create") == 0) {
            create = 1;
            continue;
        }
        if (a[0] == '-' && a[1] == '-' && i + 1 >= argc) {
            fprintf(stderr, "nats_publish: %s wants a value\n", a);
            return 2;
        }
        if (strcmp(a, "--url") == 0)
            url = argv[++i];
        else if (strcmp(a, "--stream") == 0)
            stream = argv[++i];
        else if (strcmp(a, "--subject") == 0)
            subject = argv[++i];
        else if (strcmp(a, "--max-pending") == 0)
            max_pending = parse_count(PROG, a, argv[++i]);
        else if (strcmp(a, "--count") == 0)
            limit = parse_count(PROG, a, argv[++i]);
        else if (a[0] == '-' || path != NULL) {
            usage();
            return 2;
        } else
            path = a;
    }
    if (path == NULL || url == NULL) {
        usage();
        return 2;
    }

    struct input in = {0};
    int rc = input_open(&in, path);
    if (rc < 0) {
        fprintf(stderr, "nats_publish: %s: %s\n", path, strerror(-rc));
        return 1;
    }

    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(opts, url);
    /* A lost connection is a failed run, not something to ride out. */
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(opts, false);
    if (s == NATS_OK)
        s = natsConnection_Connect(&nc, opts);
    if (s != NATS_OK)
        return fail("connect", s);

    static struct acks acks = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, ""};
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = max_pending;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = &acks;
    /* A publish that finds max-pending acks outstanding waits for one; the
     * default 200 ms stall would fail it whenever a disk flush is slow. */
    jo.PublishAsync.StallWait = 60000;
    s = natsConnection_JetStream(&js, nc, &jo);
    if (s != NATS_OK)
        return fail("JetStream context", s);
    if (create) {
        s = ensure_stream(js, stream, subject);
        if (s != NATS_OK)
            return fail("create the stream", s);
    }

    long long sent = 0, bytes = 0;
    const char *line;
    size_t len;
    double cpu0 = cpu_s();
    double t0 = now_s();
    while ((limit < 0 || sent < limit) && input_next(&in, &line, &len)) {
        s = js_PublishAsync(js, subject, line, (int)len, NULL);
        if (s != NATS_OK) {
            fprintf(stderr, "nats_publish: publish %lld: %s\n", sent, natsStatus_GetText(s));
            nats_PrintLastErrorStack(stderr);
            return 1;
        }
        sent++;
        bytes += (long long)len;
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 120000;
    s = js_PublishAsyncComplete(js, &po);
    if (s != NATS_OK)
        return fail("wait for the acks", s);
    /* The library is done once nothing is pending; wait for the handler's
     * count as well, which is what this tool reports. */
    pthread_mutex_lock(&acks.mu);
    while (acks.ok + acks.failed < sent)
        pthread_cond_wait(&acks.cond, &acks.mu);
    long long ok = acks.ok, failed = acks.failed, bad_seq = acks.bad_seq;
    pthread_mutex_unlock(&acks.mu);
    double secs = now_s() - t0;
    double cpu = cpu_s() - cpu0;

    if (limit >= 0 && sent < limit) {
        fprintf(stderr, "nats_publish: %s has only %lld lines, %lld wanted\n", path, sent, limit);
        return 1;
    }
    if (failed > 0 || bad_seq > 0) {
        fprintf(stderr,
                "nats_publish: %lld of %lld publishes failed, %lld acks without a "
                "sequence; first error: %s\n",
                failed, sent, bad_seq, acks.first_error);
        return 1;
    }

    /* The stream's own count, as a check beside the acks. */
    jsStreamInfo *si = NULL;
    s = js_GetStreamInfo(&si, js, stream, NULL, NULL);
    if (s != NATS_OK) {
        fprintf(stderr, "nats_publish: stream %s: ", stream);
        return fail("info", s);
    }
    unsigned long long stream_msgs = (unsigned long long)si->State.Msgs;
    unsigned long long stream_bytes = (unsigned long long)si->State.Bytes;
    jsStreamInfo_Destroy(si);

    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
    nats_Close();

    if (secs <= 0)
        secs = 1e-9;
    printf("{\"tool\": \"nats_publish\", \"client\": \"nats.c %s\", \"max_pending\": %lld, "
           "\"records\": %lld, \"payload_bytes\": %lld, \"seconds\": %.6f, "
           "\"records_per_s\": %.1f, \"mb_per_s\": %.3f, \"client_cpu_s\": %.3f, "
           "\"acked\": %lld, \"errors\": 0, \"stream_msgs\": %llu, \"stream_bytes\": %llu}\n",
           nats_GetVersion(), max_pending, sent, bytes, secs, (double)sent / secs,
           (double)bytes / MB / secs, cpu, ok, stream_msgs, stream_bytes);
    return 0;
}
