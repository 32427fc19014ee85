/*
 * The producer spool's fault cases (issue 7; found by review, each failed
 * before its fix), against a stand-in writer
 * thread that keeps the writers' dedup rules: per (producer, bucket) it
 * stores sequence last+1, acks a lower one as a duplicate without storing
 * it, answers a higher one SEQUENCE_GAP with last+1, and takes any sequence
 * from a producer it does not know. It counts how often each record (value
 * "r<id>") was stored. The test can make it refuse buckets (RETRY_LATER),
 * refuse one block for good (BAD_BLOCK), stop storing after a budget, or
 * forget every producer (as a writer whose dedup table aged an id out).
 * A stand-in, not a real calligraphus, because these cases need a writer
 * that refuses one chosen block for good or forgets producers on demand,
 * which a real one does not do on request.
 */
#include "fwtest.h"
#include "fwt_proc.h"

#include "block.h"
#include "clock.h"
#include "error.h"
#include "frame.h"
#include "freeway.h"
#include "proto/common.pb-c.h"
#include "proto/meta.pb-c.h"
#include "proto/produce.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define CATEGORY    "c"
#define MAX_BUCKETS 64
#define MAX_RECORDS 20000
#define DW_CONNS    16
#define DEDUP_MAX   64

typedef struct dw_conn_s {
    int fd;
    fw_buf_t in;
} dw_conn_t;

typedef struct dedup_s {
    uint64_t pid;
    uint32_t bucket;
    uint64_t last;
} dedup_t;

typedef struct dw_s {
    int lfd;
    char addr[64];
    pthread_t thread;
    int running;
    atomic_int stop;
    uint32_t buckets;
    dw_conn_t conns[DW_CONNS];
    pthread_mutex_t mu;      /* the rest */
    int refuse[MAX_BUCKETS]; /* RETRY_LATER to every block of the bucket */
    uint64_t fail_pid;       /* BAD_BLOCK once to (fail_pid or any, fail_seq) */
    uint64_t fail_seq;
    int fail_done;
    int64_t budget; /* blocks it still stores before it answers RETRY_LATER (-1: no limit) */
    dedup_t dedup[DEDUP_MAX];
    int ndedup;
    uint32_t stored[MAX_RECORDS];
    uint64_t blocks_stored, dups, gaps;
    fw_buf_t scratch;
} dw_t;

static void send_all(int fd, const uint8_t *b, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k <= 0)
            return;
        b += k;
        n -= (size_t)k;
    }
}

static void frame_msg(fw_buf_t *out, uint8_t type, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    FWT_ASSERT_OK(fw_buf_reserve(out, FW_FRAME_HEADER_SIZE + len));
    uint8_t *h = out->data + out->len;
    uint32_t length = FW_FRAME_HEADER_SIZE - FW_FRAME_PREFIX_SIZE + (uint32_t)len;
    for (int i = 0; i < 4; i++) {
        h[i] = (uint8_t)(length >> (8 * i));
        h[8 + i] = (uint8_t)((uint32_t)len >> (8 * i));
    }
    h[4] = 'F';
    h[5] = 'W';
    h[6] = FW_FRAME_VERSION;
    h[7] = type;
    protobuf_c_message_pack(m, h + FW_FRAME_HEADER_SIZE);
    out->len += FW_FRAME_HEADER_SIZE + len;
}

static void dw_metadata(dw_t *w, dw_conn_t *c, const fw_frame_t *fr)
{
    Fwpb__MetadataRequest *req = fwpb__metadata_request__unpack(NULL, fr->meta_len, fr->meta);
    FWT_ASSERT(req != NULL);
    Fwpb__CategoryMetadata *cms = calloc(req->n_categories + 1, sizeof(*cms));
    Fwpb__CategoryMetadata **cmp = calloc(req->n_categories + 1, sizeof(*cmp));
    Fwpb__BucketOwner owners[MAX_BUCKETS], *ownp[MAX_BUCKETS];
    for (uint32_t b = 0; b < w->buckets; b++) {
        fwpb__bucket_owner__init(&owners[b]);
        owners[b].bucket = b;
        owners[b].address = w->addr;
        owners[b].has_epoch = 1;
        owners[b].epoch = 1;
        ownp[b] = &owners[b];
    }
    for (size_t k = 0; k < req->n_categories; k++) {
        Fwpb__CategoryMetadata *cm = &cms[k];
        fwpb__category_metadata__init(cm);
        cmp[k] = cm;
        cm->category = req->categories[k];
        if (strcmp(req->categories[k], CATEGORY) != 0) {
            cm->status = FWPB__STATUS__STATUS_UNKNOWN_CATEGORY;
            continue;
        }
        cm->status = FWPB__STATUS__STATUS_OK;
        cm->has_buckets = 1;
        cm->buckets = w->buckets;
        cm->n_owners = w->buckets;
        cm->owners = ownp;
    }
    char *writers[] = {w->addr};
    Fwpb__MetadataResponse out = FWPB__METADATA_RESPONSE__INIT;
    out.request_id = req->request_id;
    out.n_categories = req->n_categories;
    out.categories = cmp;
    out.n_writers = 1;
    out.writers = writers;
    out.has_max_frame_bytes = 1;
    out.max_frame_bytes = 1u << 20;
    fw_buf_t buf = FW_BUF_INIT;
    frame_msg(&buf, FW_FRAME_METADATA_RESP, &out.base);
    send_all(c->fd, buf.data, buf.len);
    fw_buf_free(&buf);
    free(cms);
    free(cmp);
    fwpb__metadata_request__free_unpacked(req, NULL);
}

static dedup_t *dedup_find(dw_t *w, uint64_t pid, uint32_t bucket)
{
    for (int i = 0; i < w->ndedup; i++) {
        if (w->dedup[i].pid == pid && w->dedup[i].bucket == bucket)
            return &w->dedup[i];
    }
    return NULL;
}

/* Stores a block: counts each record "r<id>" it holds. */
static void dw_store(dw_t *w, const uint8_t *blk, size_t len)
{
    fw_block_header_t h;
    fw_record_iter_t it;
    FWT_ASSERT_OK(fw_block_decode(blk, len, UINT32_MAX, &w->scratch, &h, &it));
    fw_record_t rec;
    while (fw_record_next(&it, &rec) == 1) {
        char v[32];
        size_t n = rec.value_len < sizeof(v) - 1 ? rec.value_len : sizeof(v) - 1;
        memcpy(v, rec.value, n);
        v[n] = '\0';
        unsigned long id = strtoul(v + 1, NULL, 10);
        if (id < MAX_RECORDS)
            w->stored[id]++;
    }
    w->blocks_stored++;
}

static Fwpb__Status dw_judge(dw_t *w, uint32_t bucket, const uint8_t *blk, size_t len,
                             uint64_t *expected, int *dup)
{
    fw_block_header_t h;
    FWT_ASSERT_OK(fw_block_verify(blk, len, &h));
    if (w->refuse[bucket])
        return FWPB__STATUS__STATUS_RETRY_LATER;
    if (!w->fail_done && h.sequence == w->fail_seq &&
        (w->fail_pid == 0 || w->fail_pid == h.producer_id)) {
        w->fail_done = 1;
        return FWPB__STATUS__STATUS_BAD_BLOCK;
    }
    dedup_t *d = dedup_find(w, h.producer_id, bucket);
    if (d != NULL && h.sequence <= d->last) {
        *dup = 1;
        w->dups++;
        return FWPB__STATUS__STATUS_OK;
    }
    if (d != NULL && h.sequence > d->last + 1) {
        *expected = d->last + 1;
        w->gaps++;
        return FWPB__STATUS__STATUS_SEQUENCE_GAP;
    }
    if (w->budget == 0)
        return FWPB__STATUS__STATUS_RETRY_LATER;
    if (w->budget > 0)
        w->budget--;
    if (d == NULL) {
        FWT_ASSERT(w->ndedup < DEDUP_MAX);
        d = &w->dedup[w->ndedup++];
        d->pid = h.producer_id;
        d->bucket = bucket;
    }
    d->last = h.sequence;
    dw_store(w, blk, len);
    return FWPB__STATUS__STATUS_OK;
}

static void dw_produce(dw_t *w, dw_conn_t *c, const fw_frame_t *fr)
{
    Fwpb__ProduceRequest *req = fwpb__produce_request__unpack(NULL, fr->meta_len, fr->meta);
    FWT_ASSERT(req != NULL);
    size_t n = req->n_blocks;
    Fwpb__BlockResult *res = calloc(n + 1, sizeof(*res));
    Fwpb__BlockResult **resp = calloc(n + 1, sizeof(*resp));
    const uint8_t *body = fr->body;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < n; i++) {
        fwpb__block_result__init(&res[i]);
        resp[i] = &res[i];
        uint64_t expected = 0;
        int dup = 0;
        res[i].status =
            dw_judge(w, req->blocks[i]->bucket, body, req->blocks[i]->length, &expected, &dup);
        if (res[i].status == FWPB__STATUS__STATUS_OK) {
            res[i].has_segment_id = res[i].has_offset = 1;
            res[i].segment_id = 1;
            res[i].offset = 64;
            res[i].has_duplicate = 1;
            res[i].duplicate = (protobuf_c_boolean)dup;
        } else if (res[i].status == FWPB__STATUS__STATUS_SEQUENCE_GAP) {
            res[i].has_expected_sequence = 1;
            res[i].expected_sequence = expected;
        }
        body += req->blocks[i]->length;
    }
    pthread_mutex_unlock(&w->mu);
    Fwpb__ProduceResponse out = FWPB__PRODUCE_RESPONSE__INIT;
    out.request_id = req->request_id;
    out.n_results = n;
    out.results = resp;
    fw_buf_t frame = FW_BUF_INIT;
    frame_msg(&frame, FW_FRAME_PRODUCE_RESP, &out.base);
    send_all(c->fd, frame.data, frame.len);
    fw_buf_free(&frame);
    free(res);
    free(resp);
    fwpb__produce_request__free_unpacked(req, NULL);
}

static void dw_conn_close(dw_conn_t *c)
{
    close(c->fd);
    c->fd = -1;
    fw_buf_free(&c->in);
}

static void dw_input(dw_t *w, dw_conn_t *c)
{
    uint8_t buf[65536];
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n <= 0) {
        dw_conn_close(c);
        return;
    }
    FWT_ASSERT_OK(fw_buf_append(&c->in, buf, (size_t)n));
    size_t off = 0;
    for (;;) {
        fw_frame_t fr;
        size_t need;
        ssize_t m =
            fw_frame_decode(c->in.data + off, c->in.len - off, FW_FRAME_MAX_DEFAULT, &fr, &need);
        if (m <= 0)
            break;
        if (fr.type == FW_FRAME_PRODUCE_REQ)
            dw_produce(w, c, &fr);
        else if (fr.type == FW_FRAME_METADATA_REQ)
            dw_metadata(w, c, &fr);
        off += (size_t)m;
    }
    memmove(c->in.data, c->in.data + off, c->in.len - off);
    c->in.len -= off;
}

static void *dw_main(void *arg)
{
    dw_t *w = arg;
    while (!atomic_load(&w->stop)) {
        struct pollfd pfd[DW_CONNS + 1];
        int idx[DW_CONNS + 1], n = 0;
        pfd[n] = (struct pollfd){.fd = w->lfd, .events = POLLIN};
        idx[n++] = -1;
        for (int i = 0; i < DW_CONNS; i++) {
            if (w->conns[i].fd >= 0) {
                pfd[n] = (struct pollfd){.fd = w->conns[i].fd, .events = POLLIN};
                idx[n++] = i;
            }
        }
        if (poll(pfd, (nfds_t)n, 20) <= 0)
            continue;
        for (int k = 0; k < n; k++) {
            if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (idx[k] < 0) {
                int fd = accept(w->lfd, NULL, NULL);
                if (fd < 0)
                    continue;
                int i = 0;
                while (i < DW_CONNS && w->conns[i].fd >= 0)
                    i++;
                if (i == DW_CONNS)
                    close(fd);
                else
                    w->conns[i].fd = fd;
            } else if (w->conns[idx[k]].fd == pfd[k].fd) {
                dw_input(w, &w->conns[idx[k]]);
            }
        }
    }
    return NULL;
}

static void dw_free(void *arg)
{
    dw_t *w = arg;
    if (w->running) {
        atomic_store(&w->stop, 1);
        pthread_join(w->thread, NULL);
        for (int i = 0; i < DW_CONNS; i++)
            if (w->conns[i].fd >= 0)
                dw_conn_close(&w->conns[i]);
        close(w->lfd);
    }
    fw_buf_free(&w->scratch);
    free(w);
}

static dw_t *dw_start(uint32_t buckets)
{
    dw_t *w = calloc(1, sizeof(*w));
    FWT_ASSERT(w != NULL);
    w->buckets = buckets;
    w->budget = -1;
    pthread_mutex_init(&w->mu, NULL);
    for (int i = 0; i < DW_CONNS; i++)
        w->conns[i].fd = -1;
    w->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    FWT_ASSERT(bind(w->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    FWT_ASSERT(listen(w->lfd, 16) == 0);
    socklen_t len = sizeof(sa);
    FWT_ASSERT(getsockname(w->lfd, (struct sockaddr *)&sa, &len) == 0);
    snprintf(w->addr, sizeof(w->addr), "127.0.0.1:%u", ntohs(sa.sin_port));
    FWT_ASSERT(pthread_create(&w->thread, NULL, dw_main, w) == 0);
    w->running = 1;
    fwt_defer(dw_free, w);
    return w;
}

#define DW(w, stmt)                                                                                \
    do {                                                                                           \
        pthread_mutex_lock(&(w)->mu);                                                              \
        stmt;                                                                                      \
        pthread_mutex_unlock(&(w)->mu);                                                            \
    } while (0)

/* ---- the producer's side ----------------------------------------------------------------- */

typedef struct tally_s {
    atomic_uint_fast64_t calls, spooled, acked, failed;
    uint8_t runs[MAX_RECORDS];
    int status[MAX_RECORDS];
    int was_spooled[MAX_RECORDS];
} tally_t;

static tally_t tally;

static void on_delivery(const fw_delivery_t *d, void *arg)
{
    size_t id = (size_t)(uintptr_t)arg;
    tally.runs[id]++;
    tally.status[id] = d->status;
    tally.was_spooled[id] = d->spooled;
    if (d->status == 0 && d->spooled)
        atomic_fetch_add(&tally.spooled, 1);
    else if (d->status == 0)
        atomic_fetch_add(&tally.acked, 1);
    else
        atomic_fetch_add(&tally.failed, 1);
    atomic_fetch_add(&tally.calls, 1);
}

static int64_t t0;
static void on_log(fw_producer_log_level_t level, const char *msg, void *arg)
{
    (void)arg;
    if (level >= FW_PRODUCER_LOG_INFO || getenv("FW_TEST_LOG") != NULL)
        fprintf(stderr, "%6" PRId64 " ms producer: %s\n", fwt_now_ms() - t0, msg);
}

static void options(fw_producer_options_t *o, dw_t *w, const char *spool)
{
    fw_producer_options_init(o);
    o->bootstrap = w->addr;
    o->batch_bytes = 256; /* many small blocks */
    o->linger_ms = 1;
    o->codec = FW_PRODUCER_CODEC_NONE;
    o->request_timeout_ms = 2000;
    o->log_cb = on_log;
    o->log_level = FW_PRODUCER_LOG_DEBUG;
    o->spool_dir = spool;
    o->spool_after_ms = 300;
    o->spool_sync = FW_SPOOL_SYNC_ALWAYS;
}

/* Record id, sent to bucket `bucket` of `buckets` (a key that hashes there). */
static int send_to(fw_producer_t *p, size_t id, int bucket, uint32_t buckets)
{
    char key[32], value[32];
    int klen;
    for (int k = 0;; k++) {
        klen = snprintf(key, sizeof(key), "k%d", k);
        if (bucket < 0 || fw_key_bucket(key, (size_t)klen, buckets) == (uint32_t)bucket)
            break;
    }
    int vlen = snprintf(value, sizeof(value), "r%zu", id);
    return fw_producer_send(p, CATEGORY, key, (size_t)klen, value, (size_t)vlen, 0, on_delivery,
                            (void *)(uintptr_t)id);
}

static int calls_reach(void *arg)
{
    return atomic_load(&tally.calls) >= *(uint64_t *)arg;
}

typedef struct stored_wait_s {
    dw_t *w;
    uint64_t blocks;
} stored_wait_t;

static int stored_reach(void *arg)
{
    stored_wait_t *s = arg;
    pthread_mutex_lock(&s->w->mu);
    int ok = s->w->blocks_stored >= s->blocks;
    pthread_mutex_unlock(&s->w->mu);
    return ok;
}

static void report(dw_t *w, size_t n, uint64_t *twice, uint64_t *never)
{
    *twice = *never = 0;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < n; i++) {
        if (w->stored[i] > 1)
            (*twice)++;
        if (w->stored[i] == 0)
            (*never)++;
    }
    fprintf(stderr,
            "writer: %" PRIu64 " blocks stored, %" PRIu64 " duplicate acks, %" PRIu64
            " gaps; records stored more than once: %" PRIu64 ", never: %" PRIu64 "\n",
            w->blocks_stored, w->dups, w->gaps, *twice, *never);
    pthread_mutex_unlock(&w->mu);
}

/*
 * Spools 300 records (the writer refuses), then lets the writer store some
 * of them and refuse the rest, and closes the producer: the spool file holds
 * blocks already stored (resolved) and blocks not yet stored. `mid` is run
 * between the two producers. A second producer on the spool sends the rest.
 */
#define N1 300

static void spool_then_partial_replay(dw_t *w, const char *spool, uint64_t fail_seq, int64_t budget,
                                      void (*mid)(dw_t *w))
{
    memset(&tally, 0, sizeof(tally));
    t0 = fwt_now_ms();
    fw_producer_options_t o;
    options(&o, w, spool);
    fw_producer_t *p = NULL;
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    DW(w, w->refuse[0] = 1);
    for (size_t i = 0; i < N1; i++)
        FWT_ASSERT_OK(send_to(p, i, -1, 1));
    uint64_t all = N1;
    fwt_wait_until(calls_reach, &all, 20000, "every record spooled");
    FWT_ASSERT_UINT_EQ(atomic_load(&tally.spooled), N1);

    DW(w, (w->fail_seq = fail_seq, w->budget = budget, w->refuse[0] = 0));
    stored_wait_t sw = {w, (uint64_t)budget};
    fwt_wait_until(stored_reach, &sw, 20000, "the writer's budget stored");
    usleep(300 * 1000);
    fw_producer_close(p, 200);
    fprintf(stderr, "---- first producer closed\n");
    if (mid != NULL)
        mid(w);

    DW(w, w->budget = -1);
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    int rc = fw_producer_drain_spool(p, 10000);
    fw_producer_stats_t st;
    fw_producer_stats(p, &st);
    fw_producer_close(p, 1000);
    fprintf(stderr, "second producer: drain %d, %" PRIu64 " records replayed and acked\n", rc,
            st.records_replay_acked);
}

/*
 * One block of a spooled window is refused for good (BAD_BLOCK: its records
 * are lost, and logged); the producer renumbers the next ones down by one and
 * the writer stores some of them. After a restart the spool still holds them
 * with their old sequence numbers, and the first one above the writer's last
 * is stored a second time.
 */
FWT_TEST(a_restart_after_renumbering_sends_the_renumbered_sequences)
{
    char spool[PATH_MAX];
    snprintf(spool, sizeof(spool), "%s/spool", fwt_tmpdir());
    dw_t *w = dw_start(1);
    spool_then_partial_replay(w, spool, 5, 10, NULL);
    uint64_t twice, never;
    report(w, N1, &twice, &never);
    FWT_ASSERT_UINT_EQ(twice, 0);
}

/*
 * A restarted producer whose spool holds many buckets, run out of
 * descriptors: before the fix each bucket kept a reader open and the spool
 * took EMFILE for damage and deleted the file, so records whose callbacks
 * said "spooled" were never stored. Every one must be stored once.
 */
#define NB 48
#define N3 (NB * 10)

FWT_TEST(running_out_of_descriptors_during_replay_loses_nothing)
{
    char spool[PATH_MAX];
    snprintf(spool, sizeof(spool), "%s/spool", fwt_tmpdir());
    dw_t *w = dw_start(NB);
    memset(&tally, 0, sizeof(tally));
    t0 = fwt_now_ms();
    fw_producer_options_t o;
    options(&o, w, spool);
    o.log_level = FW_PRODUCER_LOG_WARN;
    fw_producer_t *p = NULL;
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    DW(w, for (int b = 0; b < NB; b++) w->refuse[b] = 1);
    for (size_t i = 0; i < N3; i++)
        FWT_ASSERT_OK(send_to(p, i, (int)(i % NB), NB));
    uint64_t all = N3;
    fwt_wait_until(calls_reach, &all, 20000, "every record spooled");
    FWT_ASSERT_UINT_EQ(atomic_load(&tally.spooled), N3);
    fw_producer_close(p, 200);
    fprintf(stderr, "---- first producer closed: %u records spooled\n", (unsigned)N3);

    /* The writer is back; the new producer's process has fewer descriptors than buckets. */
    DW(w, for (int b = 0; b < NB; b++) w->refuse[b] = 0);
    struct rlimit old, lim;
    FWT_ASSERT(getrlimit(RLIMIT_NOFILE, &old) == 0);
    lim = old;
    lim.rlim_cur = 40;
    FWT_ASSERT(setrlimit(RLIMIT_NOFILE, &lim) == 0);
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    int rc = fw_producer_drain_spool(p, 10000);
    fw_producer_close(p, 1000);
    FWT_ASSERT(setrlimit(RLIMIT_NOFILE, &old) == 0);
    fprintf(stderr, "second producer: drain %d\n", rc);
    uint64_t twice, never;
    report(w, N3, &twice, &never);
    FWT_ASSERT_UINT_EQ(never, 0);
}

/*
 * Bucket 0's writer refuses everything; bucket 1's takes everything at once.
 * Bucket 0 fills the spool and then the memory buffer. A full buffer makes
 * every bucket with blocks spool (fw_spooler_memory_full), bucket 1 too,
 * although its writer is fine and the spool has no room: bucket 1's blocks
 * then wait in memory for room that only bucket 0's writer can make.
 */
#define N4 4000

static int b1_sent[N4];

/* Bucket 1's accepted records whose callback has not run yet. */
static int b1_unanswered(void)
{
    int n = 0;
    for (size_t i = 1; i < N4; i += 2)
        n += b1_sent[i] && __atomic_load_n(&tally.runs[i], __ATOMIC_ACQUIRE) == 0;
    return n;
}

FWT_TEST(a_full_spool_does_not_stall_a_bucket_whose_writer_is_healthy)
{
    char spool[PATH_MAX];
    snprintf(spool, sizeof(spool), "%s/spool", fwt_tmpdir());
    dw_t *w = dw_start(2);
    memset(&tally, 0, sizeof(tally));
    memset(b1_sent, 0, sizeof(b1_sent));
    t0 = fwt_now_ms();
    fw_producer_options_t o;
    options(&o, w, spool);
    o.log_level = FW_PRODUCER_LOG_INFO;
    o.max_buffer_bytes = 32u << 10;
    o.spool_max_bytes = 32u << 10;
    o.spool_full = FW_SPOOL_FULL_FAIL;
    o.send_timeout_ms = 0;
    fw_producer_t *p = NULL;
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    DW(w, w->refuse[0] = 1);
    int refused = 0, accepted_b1 = 0;
    for (size_t i = 0; i < N4; i++) {
        int b = (int)(i % 2);
        int rc = send_to(p, i, b, 2);
        if (rc == 0 && b == 1) {
            b1_sent[i] = 1;
            accepted_b1++;
        }
        refused += rc != 0;
        usleep(500);
    }
    /* Bucket 1's writer answers at once: every record of it accepted gets its answer (the bug
     * this guards against waits for ever; 30 s is for a loaded machine). */
    int64_t give_up = fw_clock_mono_ms() + 30000;
    while (b1_unanswered() > 0 && fw_clock_mono_ms() < give_up)
        usleep(10 * 1000);
    int b1_waiting = 0, b1_acked = 0, b1_spooled = 0;
    for (size_t i = 1; i < N4; i += 2) {
        if (!b1_sent[i])
            continue;
        if (tally.runs[i] == 0)
            b1_waiting++;
        else if (tally.status[i] == 0 && tally.was_spooled[i])
            b1_spooled++;
        else if (tally.status[i] == 0)
            b1_acked++;
    }
    fw_producer_stats_t st;
    fw_producer_stats(p, &st);
    fprintf(stderr,
            "sends refused: %d; bucket 1: %d accepted, %d acked, %d spooled, %d still waiting; "
            "spool %" PRIu64 " bytes\n",
            refused, accepted_b1, b1_acked, b1_spooled, b1_waiting, st.spool_bytes);
    fw_producer_close(p, 500);
    int cancelled = 0;
    for (size_t i = 1; i < N4; i += 2)
        cancelled += b1_sent[i] && tally.status[i] == -ECANCELED;
    fprintf(stderr, "bucket 1 records cancelled at close: %d\n", cancelled);
    FWT_ASSERT_INT_EQ(b1_waiting, 0);
}

/*
 * fw_producer_drain_spool returns 0 while the writer has stored nothing:
 * its flush ends when the last record's callback said "spooled", and
 * spool_drained, still 1 from when the spool was empty, is only cleared by
 * the publish() that follows the append. Callbacks of later records that
 * take a while (here 2 ms each) make the window wide; any delay of the I/O
 * thread does the same.
 */
static void on_delivery_slow(const fw_delivery_t *d, void *arg)
{
    on_delivery(d, arg);
    usleep(2000);
}

typedef struct drainer_s {
    fw_producer_t *p;
    int rc;
} drainer_t;

static void *drainer(void *arg)
{
    drainer_t *d = arg;
    d->rc = fw_producer_drain_spool(d->p, 3000);
    return NULL;
}

FWT_TEST(drain_spool_waits_while_the_spool_holds_blocks)
{
    char spool[PATH_MAX];
    snprintf(spool, sizeof(spool), "%s/spool", fwt_tmpdir());
    dw_t *w = dw_start(1);
    memset(&tally, 0, sizeof(tally));
    t0 = fwt_now_ms();
    fw_producer_options_t o;
    options(&o, w, spool);
    o.log_level = FW_PRODUCER_LOG_INFO;
    fw_producer_t *p = NULL;
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    DW(w, w->refuse[0] = 1); /* for the whole test: nothing can be delivered */
    for (size_t i = 0; i < 100; i++)
        FWT_ASSERT_OK(send_to(p, i, -1, 1));
    drainer_t d = {p, 1};
    pthread_t t;
    FWT_ASSERT(pthread_create(&t, NULL, drainer, &d) == 0);
    usleep(50 * 1000); /* the drain's flush has started a new generation */
    for (size_t i = 100; i < 300; i++)
        FWT_ASSERT_OK(fw_producer_send(p, CATEGORY, "k", 1, "r", 1, 0, on_delivery_slow,
                                       (void *)(uintptr_t)i));
    int64_t t1 = fwt_now_ms();
    pthread_join(t, NULL);
    fw_producer_stats_t st;
    fw_producer_stats(p, &st);
    fprintf(stderr,
            "drain returned %d after %" PRId64 " ms; the writer stored %" PRIu64
            " blocks; spool now %" PRIu64 " blocks\n",
            d.rc, fwt_now_ms() - t1, w->blocks_stored, st.spool_blocks);
    fw_producer_close(p, 200);
    FWT_ASSERT_INT_EQ(d.rc, -ETIMEDOUT);
}

/*
 * A block larger than the whole spool: ENOSPC with the spool empty sets
 * spool_full with spool_full_bytes = 0, which publish() never clears, and
 * the bucket, now spooling, keeps the block in memory for ever, though its
 * writer takes blocks again.
 */
FWT_TEST(a_block_larger_than_the_spool_goes_straight_to_a_writer)
{
    char spool[PATH_MAX];
    snprintf(spool, sizeof(spool), "%s/spool", fwt_tmpdir());
    dw_t *w = dw_start(1);
    memset(&tally, 0, sizeof(tally));
    t0 = fwt_now_ms();
    fw_producer_options_t o;
    options(&o, w, spool);
    o.log_level = FW_PRODUCER_LOG_INFO;
    o.batch_bytes = 256u << 10;
    o.spool_max_bytes = 64u << 10;
    fw_producer_t *p = NULL;
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    DW(w, w->refuse[0] = 1);
    static char big[100u << 10];
    memset(big, 'x', sizeof(big));
    memcpy(big, "r0 ", 3);
    FWT_ASSERT_OK(
        fw_producer_send(p, CATEGORY, "k", 1, big, sizeof(big), 0, on_delivery, (void *)0));
    usleep(1000 * 1000);     /* it stalls and spools: ENOSPC */
    DW(w, w->refuse[0] = 0); /* the writer is back */
    int rc = fw_producer_drain_spool(p, 3000);
    fprintf(stderr, "drain: %d; callbacks run: %" PRIu64 "; writer stored %" PRIu64 " blocks\n", rc,
            (uint64_t)atomic_load(&tally.calls), w->blocks_stored);
    fw_producer_close(p, 200);
    fprintf(stderr, "after close: status %d\n", tally.status[0]);
    FWT_ASSERT_UINT_EQ(w->blocks_stored, 1);
}