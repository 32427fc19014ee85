/*
 * The producer's audit reports are its own records, not the application's:
 * while the writer of the audit category turns their blocks away
 * (RETRY_LATER: a full disk, an ownership move), fw_producer_flush and
 * fw_producer_close must still answer for the application's records alone,
 * as they did before reports existed, and close within its timeout; nor may
 * the reports show among the records of the stats.
 *
 * The writer is a stand-in, a thread in the test process with a loopback
 * listener: a real one cannot be made to refuse one category and store
 * another. It answers metadata for "web" and the audit category (one bucket
 * each, owned by itself) and acks every block of web.
 */
#include "fwt_proc.h"
#include "fwtest.h"

#include "block.h"
#include "client/audit.h"
#include "error.h"
#include "frame.h"
#include "freeway.h"
#include "proto/common.pb-c.h"
#include "proto/produce.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NCONNS 8

typedef struct sw_s {
    int lfd;
    char addr[64];
    pthread_t thread;
    int running;
    atomic_int stop;
    atomic_int audit_blocks; /* blocks of the audit category turned away */
    atomic_int web_blocks;   /* blocks of web acked */
    int fds[NCONNS];
    fw_buf_t in[NCONNS];
    uint64_t offset;
} sw_t;

static void send_frame(int fd, uint8_t type, const ProtobufCMessage *m)
{
    fw_buf_t out = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_frame_append(&out, type, m, NULL, 0, FW_FRAME_MAX_DEFAULT));
    const uint8_t *p = out.data;
    size_t len = out.len;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        p += n;
        len -= (size_t)n;
    }
    fw_buf_free(&out);
}

static void sw_metadata(sw_t *w, int fd, const fw_frame_t *fr)
{
    Fwpb__MetadataRequest *req = fwpb__metadata_request__unpack(NULL, fr->meta_len, fr->meta);
    FWT_ASSERT(req != NULL);
    Fwpb__CategoryMetadata *cms = calloc(req->n_categories + 1, sizeof(*cms));
    Fwpb__CategoryMetadata **cmp = calloc(req->n_categories + 1, sizeof(*cmp));
    FWT_ASSERT(cms != NULL && cmp != NULL);
    Fwpb__BucketOwner owner = FWPB__BUCKET_OWNER__INIT;
    owner.bucket = 0;
    owner.address = w->addr;
    owner.has_epoch = 1;
    owner.epoch = 1;
    Fwpb__BucketOwner *ownp = &owner;
    for (size_t k = 0; k < req->n_categories; k++) {
        fwpb__category_metadata__init(&cms[k]);
        cmp[k] = &cms[k];
        cms[k].category = req->categories[k];
        if (strcmp(req->categories[k], "web") != 0 &&
            strcmp(req->categories[k], FW_AUDIT_CATEGORY_DEFAULT) != 0) {
            cms[k].status = FWPB__STATUS__STATUS_UNKNOWN_CATEGORY;
            continue;
        }
        cms[k].status = FWPB__STATUS__STATUS_OK;
        cms[k].has_buckets = 1;
        cms[k].buckets = 1;
        cms[k].n_owners = 1;
        cms[k].owners = &ownp;
    }
    char *writers[] = {w->addr};
    Fwpb__MetadataResponse out = FWPB__METADATA_RESPONSE__INIT;
    out.request_id = req->request_id;
    out.n_categories = req->n_categories;
    out.categories = cmp;
    out.n_writers = 1;
    out.writers = writers;
    send_frame(fd, FW_FRAME_METADATA_RESP, &out.base);
    free(cms);
    free(cmp);
    fwpb__metadata_request__free_unpacked(req, NULL);
}

/* Acks the blocks of web, turns those of the audit category away. */
static void sw_produce(sw_t *w, int fd, const fw_frame_t *fr)
{
    Fwpb__ProduceRequest *req = fwpb__produce_request__unpack(NULL, fr->meta_len, fr->meta);
    FWT_ASSERT(req != NULL);
    Fwpb__BlockResult *res = calloc(req->n_blocks + 1, sizeof(*res));
    Fwpb__BlockResult **resp = calloc(req->n_blocks + 1, sizeof(*resp));
    FWT_ASSERT(res != NULL && resp != NULL);
    for (size_t i = 0; i < req->n_blocks; i++) {
        fwpb__block_result__init(&res[i]);
        resp[i] = &res[i];
        if (strcmp(req->blocks[i]->category, "web") == 0) {
            res[i].status = FWPB__STATUS__STATUS_OK;
            res[i].has_segment_id = res[i].has_offset = 1;
            res[i].segment_id = 1;
            res[i].offset = 64 + 1000 * w->offset++;
            atomic_fetch_add(&w->web_blocks, 1);
        } else {
            res[i].status = FWPB__STATUS__STATUS_RETRY_LATER;
            atomic_fetch_add(&w->audit_blocks, 1);
        }
    }
    Fwpb__ProduceResponse out = FWPB__PRODUCE_RESPONSE__INIT;
    out.request_id = req->request_id;
    out.n_results = req->n_blocks;
    out.results = resp;
    send_frame(fd, FW_FRAME_PRODUCE_RESP, &out.base);
    free(res);
    free(resp);
    fwpb__produce_request__free_unpacked(req, NULL);
}

static void sw_input(sw_t *w, int i)
{
    uint8_t buf[65536];
    ssize_t n = recv(w->fds[i], buf, sizeof(buf), 0);
    if (n <= 0) {
        close(w->fds[i]);
        w->fds[i] = -1;
        fw_buf_reset(&w->in[i]);
        return;
    }
    FWT_ASSERT_OK(fw_buf_append(&w->in[i], buf, (size_t)n));
    size_t off = 0;
    for (;;) {
        fw_frame_t fr;
        size_t need;
        ssize_t m = fw_frame_decode(w->in[i].data + off, w->in[i].len - off, FW_FRAME_MAX_DEFAULT,
                                    &fr, &need);
        if (m <= 0) {
            FWT_ASSERT(m == 0);
            break;
        }
        if (fr.type == FW_FRAME_METADATA_REQ)
            sw_metadata(w, w->fds[i], &fr);
        else if (fr.type == FW_FRAME_PRODUCE_REQ)
            sw_produce(w, w->fds[i], &fr);
        else
            FWT_FAIL("the producer sent a frame of type %u", fr.type);
        off += (size_t)m;
    }
    memmove(w->in[i].data, w->in[i].data + off, w->in[i].len - off);
    w->in[i].len -= off;
}

static void *sw_main(void *arg)
{
    sw_t *w = arg;
    while (!atomic_load(&w->stop)) {
        struct pollfd pfd[NCONNS + 1];
        int idx[NCONNS + 1], n = 0;
        pfd[n] = (struct pollfd){.fd = w->lfd, .events = POLLIN};
        idx[n++] = -1;
        for (int i = 0; i < NCONNS; i++)
            if (w->fds[i] >= 0) {
                pfd[n] = (struct pollfd){.fd = w->fds[i], .events = POLLIN};
                idx[n++] = i;
            }
        /* The timeout only bounds how late the stop flag is seen. */
        if (poll(pfd, (nfds_t)n, 20) <= 0)
            continue;
        for (int k = 0; k < n; k++) {
            if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (idx[k] >= 0) {
                sw_input(w, idx[k]);
                continue;
            }
            int fd = accept(w->lfd, NULL, NULL);
            int i = 0;
            while (fd >= 0 && i < NCONNS && w->fds[i] >= 0)
                i++;
            if (fd >= 0 && i < NCONNS)
                w->fds[i] = fd;
            else if (fd >= 0)
                close(fd);
        }
    }
    return NULL;
}

static void sw_free(void *arg)
{
    sw_t *w = arg;
    if (w->running) {
        atomic_store(&w->stop, 1);
        pthread_join(w->thread, NULL);
    }
    for (int i = 0; i < NCONNS; i++) {
        if (w->fds[i] >= 0)
            close(w->fds[i]);
        fw_buf_free(&w->in[i]);
    }
    close(w->lfd);
    free(w);
}

static sw_t *sw_start(void)
{
    sw_t *w = calloc(1, sizeof(*w));
    FWT_ASSERT(w != NULL);
    for (int i = 0; i < NCONNS; i++)
        w->fds[i] = -1;
    w->lfd = socket(AF_INET, SOCK_STREAM, 0);
    FWT_ASSERT(w->lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    FWT_ASSERT(bind(w->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    FWT_ASSERT(listen(w->lfd, 16) == 0);
    socklen_t len = sizeof(sa);
    FWT_ASSERT(getsockname(w->lfd, (struct sockaddr *)&sa, &len) == 0);
    snprintf(w->addr, sizeof(w->addr), "127.0.0.1:%u", ntohs(sa.sin_port));
    FWT_ASSERT(pthread_create(&w->thread, NULL, sw_main, w) == 0);
    w->running = 1;
    fwt_defer(sw_free, w);
    return w;
}

static int audit_turned_away(void *arg)
{
    return atomic_load(&((sw_t *)arg)->audit_blocks) > 0;
}

FWT_TEST(flush_and_close_answer_for_the_applications_records_only)
{
    sw_t *w = sw_start();
    fw_producer_options_t o;
    fw_producer_options_init(&o);
    o.bootstrap = w->addr;
    o.audit_interval_ms = 100;
    fw_producer_t *p = NULL;
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    FWT_ASSERT_OK(fw_producer_send(p, "web", NULL, 0, "a", 1, 0, NULL, NULL));
    FWT_ASSERT_OK(fw_producer_flush(p, 5000));
    fwt_wait_until(audit_turned_away, w, 10000, "a report to reach the writer");

    /* A report waits for the writer; the application's record does not. */
    FWT_ASSERT_OK(fw_producer_send(p, "web", NULL, 0, "b", 1, 0, NULL, NULL));
    FWT_ASSERT_INT_EQ(fw_producer_flush(p, 2000), 0);
    FWT_ASSERT_INT_EQ(atomic_load(&w->web_blocks), 2);
    /* Nor do the reports show among the application's records in the stats. */
    fw_producer_stats_t s;
    fw_producer_stats(p, &s);
    FWT_ASSERT_UINT_EQ(s.records_acked, 2);
    FWT_ASSERT_UINT_EQ(s.records_in_flight + s.records_queued, 0);
    FWT_ASSERT_UINT_EQ(s.records_failed, 0);

    int64_t t0 = fwt_now_ms();
    FWT_ASSERT_INT_EQ(fw_producer_close(p, 2000), 0);
    FWT_ASSERT_INT_OP(fwt_now_ms() - t0, <=, 2500);
}
