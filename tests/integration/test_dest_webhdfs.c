/*
 * The webhdfs:// destination (copier/dest_webhdfs.c over copier/curl_uv.c),
 * driven directly on a uv loop: create and append byte for byte, LENGTH,
 * TRUNCATE (at once, and after a block recovery), failed, dropped, partial
 * and stalled appends, a rename onto an existing segment, error mapping,
 * and close with requests in flight.
 *
 * The server is tests/webhdfs/fake_webhdfs.py, a stand-in for HDFS: Debian
 * packages no Hadoop server (engineering-notes §5.1), so a Python namenode +
 * datanode that follows Hadoop's WebHDFS document plays HDFS here, keeping
 * "HDFS" files as plain files under its --root, where the test reads them
 * back. It also injects faults into datanode requests (PUT /fault) and
 * counts requests per op (GET /stats). Everything is on 127.0.0.1.
 */
#include "fwt_proc.h"
#include "fwt_webhdfs.h"
#include "fwtest.h"

#include "copier/dest.h"
#include "copier/webhdfs_json.h"

#include <curl/curl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CATEGORY "orders"
#define BUCKET   3

/* ---- the destination on a loop -------------------------------------------------------- */

static uv_loop_t loop;
static fwt_webhdfs_t server;

typedef struct call_s {
    cp_dest_req_t req;
    int calls;
    int status;
} call_t;

static void on_req(cp_dest_req_t *req, int status)
{
    call_t *c = req->data;
    c->calls++;
    c->status = status;
}

static void setup(int truncate_delay_ms)
{
    FWT_ASSERT_OK(uv_loop_init(&loop));
    fwt_webhdfs_start(&server, "webhdfs", truncate_delay_ms);
}

static cp_dest_t *dest_open_port(int port, int64_t stall_ms)
{
    char url[256], err[256] = "";
    snprintf(url, sizeof(url), "webhdfs://127.0.0.1:%d/freeway/", port);
    cp_dest_options_t opts = {.hdfs_user = "freeway", .stall_timeout_ms = stall_ms, .sync = 1};
    cp_dest_t *d = NULL;
    int rc = cp_dest_open(&loop, url, &opts, &d, err, sizeof(err));
    if (rc < 0)
        FWT_FAIL("cp_dest_open %s: %d %s", url, rc, err);
    return d;
}

static cp_dest_t *dest_open(int64_t stall_ms)
{
    return dest_open_port(server.nn_port, stall_ms);
}

static void on_dest_closed(cp_dest_t *d)
{
    int *closed = d->data;
    (*closed)++;
}

static void walk_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "handle left open: %s\n", uv_handle_type_name(uv_handle_get_type(h)));
}

/* Closes d, then checks the loop ends with no handle left. */
static void dest_close(cp_dest_t *d)
{
    int closed = 0;
    d->data = &closed;
    cp_dest_close(d, on_dest_closed);
    while (closed == 0)
        uv_run(&loop, UV_RUN_ONCE);
    FWT_ASSERT_INT_EQ(closed, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        uv_walk(&loop, walk_handle, NULL);
        FWT_FAIL("the loop still has handles after the destination closed");
    }
}

static void call_init(call_t *c, uint64_t id, uint64_t offset, const uint8_t *bytes, size_t len)
{
    memset(c, 0, sizeof(*c));
    c->req.data = c;
    c->req.category = CATEGORY;
    c->req.bucket = BUCKET;
    c->req.segment_id = id;
    c->req.offset = offset;
    c->req.bytes = bytes;
    c->req.len = len;
    c->req.cb = on_req;
}

/* Runs the loop until c's callback; checks it ran exactly once. */
static int call_wait(call_t *c)
{
    while (c->calls == 0)
        uv_run(&loop, UV_RUN_ONCE);
    FWT_ASSERT_INT_EQ(c->calls, 1);
    if (c->status < 0)
        fprintf(stderr, "  status %d: %s\n", c->status, c->req.error);
    return c->status;
}

static int do_length(cp_dest_t *d, uint64_t id, uint64_t *len)
{
    call_t c;
    call_init(&c, id, 0, NULL, 0);
    FWT_ASSERT_OK(cp_dest_length(d, &c.req));
    int rc = call_wait(&c);
    *len = c.req.offset;
    return rc;
}

static int do_write(cp_dest_t *d, uint64_t id, uint64_t offset, const uint8_t *bytes, size_t len,
                    char *error)
{
    call_t c;
    call_init(&c, id, offset, bytes, len);
    FWT_ASSERT_OK(cp_dest_write(d, &c.req));
    int rc = call_wait(&c);
    if (error != NULL)
        memcpy(error, c.req.error, sizeof(c.req.error));
    return rc;
}

static int do_truncate(cp_dest_t *d, uint64_t id, uint64_t len, char *error)
{
    call_t c;
    call_init(&c, id, len, NULL, 0);
    FWT_ASSERT_OK(cp_dest_truncate(d, &c.req));
    int rc = call_wait(&c);
    if (error != NULL)
        memcpy(error, c.req.error, sizeof(c.req.error));
    return rc;
}

/* The stand-in's file for a segment: root/freeway/<category>/<bucket>/<id>.seg. */
static void seg_file(uint64_t id, char *out, size_t cap)
{
    char rel[256];
    FWT_ASSERT_OK(cp_dest_rel_path(rel, sizeof(rel), CATEGORY, BUCKET, id));
    snprintf(out, cap, "%.512s/freeway/%.200s", server.root, rel);
}

/* Reads a whole file; *len = its size. The caller frees. */
static uint8_t *read_all(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        FWT_FAIL("open %s: %s", path, strerror(errno));
    struct stat st;
    FWT_ASSERT(fstat(fd, &st) == 0);
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    FWT_ASSERT(buf != NULL);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        FWT_ASSERT(n > 0);
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return buf;
}

static void assert_seg_equals(uint64_t id, const uint8_t *want, size_t want_len)
{
    char path[FWT_PATH_MAX + 256];
    seg_file(id, path, sizeof(path));
    size_t len;
    uint8_t *got = read_all(path, &len);
    FWT_ASSERT_UINT_EQ(len, want_len);
    FWT_ASSERT_MEM_EQ(got, want, len);
    free(got);
}

static uint8_t *random_bytes(size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    FWT_ASSERT(p != NULL);
    fwt_rand_bytes(p, len);
    return p;
}

/* Creates segment id with len random bytes (offset 0); returns them. */
static uint8_t *create_seg(cp_dest_t *d, uint64_t id, size_t len)
{
    uint8_t *bytes = random_bytes(len);
    FWT_ASSERT_OK(do_write(d, id, 0, bytes, len, NULL));
    return bytes;
}

/* ---- tests ------------------------------------------------------------------------------- */

FWT_TEST(create_then_appends_byte_identical)
{
    setup(0);
    cp_dest_t *d = dest_open(10000);
    size_t cap = 2 << 20, len = 0;
    uint8_t *all = random_bytes(cap);

    len = 100; /* a segment header */
    FWT_ASSERT_OK(do_write(d, 1, 0, all, len, NULL));
    for (int i = 0; i < 6; i++) {
        size_t n = i == 5 ? 1 << 20 : (size_t)fwt_rand_range(1, 100000);
        FWT_ASSERT_OK(do_write(d, 1, len, all + len, n, NULL));
        len += n;
        uint64_t got = 0;
        FWT_ASSERT_OK(do_length(d, 1, &got));
        FWT_ASSERT_UINT_EQ(got, len);
    }
    assert_seg_equals(1, all, len);

    /* The temporary name is gone, and a second segment in the same bucket
     * needs no second MKDIRS. */
    char path[FWT_PATH_MAX + 256], tmp[FWT_PATH_MAX + 300];
    seg_file(1, path, sizeof(path));
    char *slash = strrchr(path, '/');
    snprintf(tmp, sizeof(tmp), "%.*s/.%s.tmp", (int)(slash - path), path, slash + 1);
    FWT_ASSERT(access(tmp, F_OK) != 0);
    FWT_ASSERT_OK(do_write(d, 2, 0, all, 10, NULL));
    assert_seg_equals(2, all, 10);
    FWT_ASSERT_UINT_EQ(fwt_webhdfs_count(&server, "MKDIRS"), 1);
    FWT_ASSERT_UINT_EQ(fwt_webhdfs_count(&server, "RENAME"), 2);

    dest_close(d);
    free(all);
    fwt_webhdfs_stop(&server);
}

/* Starts n writes at once (segments 1..n, each at offsets[i]) and waits for all. */
static void write_all_at_once(cp_dest_t *d, call_t *calls, int n, const uint64_t *offsets,
                              uint8_t *const *bytes, const size_t *lens)
{
    for (int i = 0; i < n; i++) {
        call_init(&calls[i], (uint64_t)i + 1, offsets[i], bytes[i], lens[i]);
        FWT_ASSERT_OK(cp_dest_write(d, &calls[i].req));
    }
    for (int i = 0; i < n; i++)
        FWT_ASSERT_OK(call_wait(&calls[i]));
}

/*
 * Several requests in flight on one loop, round after round, so sockets come
 * and go and their numbers are reused. Four at a time: the stand-in (Python's
 * http.server) listens with a backlog of 5, and more simultaneous connects
 * overflow it and get reset by the kernel.
 */
FWT_TEST(many_requests_at_once)
{
    enum { N = 4, ROUNDS = 10 };
    setup(0);
    cp_dest_t *d = dest_open(10000);
    static call_t calls[N];
    uint8_t *data[N];
    uint64_t offsets[N];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        data[i] = random_bytes(ROUNDS * 20000);
        offsets[i] = 0;
    }
    for (int r = 0; r < ROUNDS; r++) {
        uint8_t *at[N];
        for (int i = 0; i < N; i++) {
            lens[i] = (size_t)fwt_rand_range(1, 20000);
            at[i] = data[i] + offsets[i];
        }
        write_all_at_once(d, calls, N, offsets, at, lens);
        for (int i = 0; i < N; i++)
            offsets[i] += lens[i];
    }
    for (int i = 0; i < N; i++) {
        assert_seg_equals((uint64_t)i + 1, data[i], offsets[i]);
        free(data[i]);
    }
    dest_close(d);
    fwt_webhdfs_stop(&server);
}

FWT_TEST(length_of_missing_segment)
{
    setup(0);
    cp_dest_t *d = dest_open(10000);
    uint64_t len = 7;
    /* Neither the bucket directory nor the segment exists. */
    FWT_ASSERT_INT_EQ(do_length(d, 42, &len), -ENOENT);
    free(create_seg(d, 1, 5));
    FWT_ASSERT_INT_EQ(do_length(d, 42, &len), -ENOENT);
    /* An append to a missing segment fails at the namenode. */
    uint8_t b = 1;
    char error[256];
    FWT_ASSERT_INT_EQ(do_write(d, 42, 10, &b, 1, error), -ENOENT);
    FWT_ASSERT(strstr(error, "webhdfs APPEND /freeway/orders/3/") != NULL);
    FWT_ASSERT(strstr(error, "404 FileNotFoundException") != NULL);
    dest_close(d);
    fwt_webhdfs_stop(&server);
}

FWT_TEST(truncate_at_once)
{
    setup(0);
    cp_dest_t *d = dest_open(10000);
    uint8_t *bytes = create_seg(d, 1, 1000);
    FWT_ASSERT_OK(do_truncate(d, 1, 600, NULL));
    uint64_t len = 0;
    FWT_ASSERT_OK(do_length(d, 1, &len));
    FWT_ASSERT_UINT_EQ(len, 600);
    assert_seg_equals(1, bytes, 600);
    /* To the current length: nothing to do. */
    FWT_ASSERT_OK(do_truncate(d, 1, 600, NULL));
    /* Longer than the file: the namenode refuses (400). */
    char error[256];
    FWT_ASSERT_INT_EQ(do_truncate(d, 1, 5000, error), -EIO);
    FWT_ASSERT(strstr(error, "400 HadoopIllegalArgumentException") != NULL);
    /* Appending after the truncate continues where it now ends. */
    FWT_ASSERT_OK(do_write(d, 1, 600, bytes + 600, 400, NULL));
    assert_seg_equals(1, bytes, 1000);
    dest_close(d);
    free(bytes);
    fwt_webhdfs_stop(&server);
}

FWT_TEST(truncate_waits_for_block_recovery)
{
    setup(300);
    cp_dest_t *d = dest_open(10000);
    uint8_t *bytes = create_seg(d, 1, 1000);
    uint64_t polls_before = fwt_webhdfs_count(&server, "GETFILESTATUS");
    int64_t t0 = fwt_now_ms();
    FWT_ASSERT_OK(do_truncate(d, 1, 600, NULL));
    int64_t took = fwt_now_ms() - t0;
    uint64_t polls = fwt_webhdfs_count(&server, "GETFILESTATUS") - polls_before;
    fprintf(stderr, "truncate took %lld ms, %llu GETFILESTATUS\n", (long long)took,
            (unsigned long long)polls);
    /* {"boolean":false} first, then polls with a backoff, not a busy loop. */
    FWT_ASSERT_INT_OP(took, >=, 250);
    FWT_ASSERT_INT_OP(polls, >=, 1);
    FWT_ASSERT_INT_OP(polls, <=, 12);
    assert_seg_equals(1, bytes, 600);

    /* While a recovery runs, HDFS says "try later": -EAGAIN. Start one by hand. */
    char body[4096], error[256];
    FWT_ASSERT_INT_EQ(fwt_webhdfs_http(&server, "POST",
                                       "/webhdfs/v1/freeway/orders/3/00000000000000000001.seg"
                                       "?op=TRUNCATE&newlength=100",
                                       body),
                      200);
    FWT_ASSERT(strstr(body, "false") != NULL);
    FWT_ASSERT_INT_EQ(do_write(d, 1, 600, bytes, 10, error), -EAGAIN);
    FWT_ASSERT(strstr(error, "403 RecoveryInProgressException") != NULL);
    dest_close(d);
    free(bytes);
    fwt_webhdfs_stop(&server);
}

FWT_TEST(truncate_wait_has_a_deadline)
{
    setup(5000);
    cp_dest_t *d = dest_open(1000); /* the wait is bounded by the stall timeout */
    free(create_seg(d, 1, 1000));
    char error[256];
    int64_t t0 = fwt_now_ms();
    FWT_ASSERT_INT_EQ(do_truncate(d, 1, 600, error), -ETIMEDOUT);
    int64_t took = fwt_now_ms() - t0;
    FWT_ASSERT_INT_OP(took, >=, 900);
    FWT_ASSERT_INT_OP(took, <, 4000);
    FWT_ASSERT(strstr(error, "webhdfs TRUNCATE /freeway/orders/3/00000000000000000001.seg: "
                             "still 1000 bytes, not 600") != NULL);
    dest_close(d);
    fwt_webhdfs_stop(&server);
}

FWT_TEST(append_fails_with_remote_exception)
{
    setup(0);
    cp_dest_t *d = dest_open(10000);
    uint8_t *bytes = create_seg(d, 1, 300);
    fwt_webhdfs_fault(&server, "APPEND", "fail", 1);
    char error[256];
    FWT_ASSERT_INT_EQ(do_write(d, 1, 100, bytes + 100, 200, error), -EIO);
    FWT_ASSERT_STR_EQ(error, "webhdfs APPEND /freeway/orders/3/00000000000000000001.seg: 500 "
                             "RuntimeException: injected fault: APPEND failed, nothing written "
                             "(the bytes may or may not have been appended)");
    /* Wait: the segment was made 300 long; the copier would have appended at 300. */
    uint64_t len = 0;
    FWT_ASSERT_OK(do_length(d, 1, &len));
    FWT_ASSERT_UINT_EQ(len, 300);
    /* The fault was for one request: the next append goes through. */
    FWT_ASSERT_OK(do_write(d, 1, 300, bytes, 50, NULL));
    FWT_ASSERT_OK(do_length(d, 1, &len));
    FWT_ASSERT_UINT_EQ(len, 350);
    dest_close(d);
    free(bytes);
    fwt_webhdfs_stop(&server);
}

FWT_TEST(append_dropped_after_write_is_an_error)
{
    setup(0);
    cp_dest_t *d = dest_open(10000);
    uint8_t *bytes = create_seg(d, 1, 1000);
    char error[256];

    /* The datanode wrote everything and hung up: unknown outcome, so an
     * error, and LENGTH tells the copier the bytes landed. */
    fwt_webhdfs_fault(&server, "APPEND", "drop-after-write", 1);
    int rc = do_write(d, 1, 1000, bytes, 500, error);
    FWT_ASSERT_INT_OP(rc, <, 0);
    FWT_ASSERT(strstr(error, "webhdfs APPEND /freeway/orders/3/00000000000000000001.seg: ") ==
               error);
    FWT_ASSERT(strstr(error, "may or may not have been appended") != NULL);
    uint64_t len = 0;
    FWT_ASSERT_OK(do_length(d, 1, &len));
    FWT_ASSERT_UINT_EQ(len, 1500);

    /* Half written: LENGTH shows it, and TRUNCATE repairs it. */
    fwt_webhdfs_fault(&server, "APPEND", "partial", 1);
    FWT_ASSERT_INT_OP(do_write(d, 1, 1500, bytes + 500, 400, error), <, 0);
    FWT_ASSERT_OK(do_length(d, 1, &len));
    FWT_ASSERT_UINT_EQ(len, 1700);
    FWT_ASSERT_OK(do_truncate(d, 1, 1500, NULL));
    FWT_ASSERT_OK(do_write(d, 1, 1500, bytes + 500, 500, NULL));
    uint8_t want[2000];
    memcpy(want, bytes, 1000);
    memcpy(want + 1000, bytes, 500);
    memcpy(want + 1500, bytes + 500, 500);
    assert_seg_equals(1, want, 2000);
    dest_close(d);
    free(bytes);
    fwt_webhdfs_stop(&server);
}

FWT_TEST(stalled_datanode_times_out)
{
    setup(0);
    cp_dest_t *d = dest_open(1000);
    uint8_t *bytes = create_seg(d, 1, 100);
    fwt_webhdfs_fault(&server, "APPEND", "stall", 1);
    char error[256];
    int64_t t0 = fwt_now_ms();
    FWT_ASSERT_INT_EQ(do_write(d, 1, 100, bytes, 100, error), -ETIMEDOUT);
    int64_t took = fwt_now_ms() - t0;
    fprintf(stderr, "stalled append failed after %lld ms\n", (long long)took);
    /* libcurl averages the speed over its last 5 s, so a stall is noticed up to
     * about 5 s after the stall timeout. */
    FWT_ASSERT_INT_OP(took, >=, 900);
    FWT_ASSERT_INT_OP(took, <, 12000);
    FWT_ASSERT(strstr(error, "may or may not have been appended") != NULL);
    /* A create that stalls fails the same way, and leaves no segment. */
    fwt_webhdfs_fault(&server, "CREATE", "stall", 1);
    FWT_ASSERT_INT_EQ(do_write(d, 2, 0, bytes, 100, error), -ETIMEDOUT);
    FWT_ASSERT(strstr(error, "webhdfs CREATE /freeway/orders/3/.00000000000000000002.seg.tmp: ") ==
               error);
    uint64_t len;
    FWT_ASSERT_INT_EQ(do_length(d, 2, &len), -ENOENT);
    dest_close(d);
    free(bytes);
    fwt_webhdfs_stop(&server);
}

/*
 * A first write replaces a segment of the same name that is already there:
 * a copy a crash left before the copier recorded its progress (the bucket's
 * claim makes the copier its only writer, and the progress says it holds
 * nothing of that segment).
 */
FWT_TEST(rename_onto_existing_segment)
{
    setup(0);
    cp_dest_t *d = dest_open(10000);
    /* A stale segment 1, 50 bytes, already there. */
    char path[FWT_PATH_MAX + 256], dir[FWT_PATH_MAX + 256];
    seg_file(1, path, sizeof(path));
    snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(path, '/') - path), path);
    char *argv[] = {"/bin/mkdir", "-p", dir, NULL};
    FWT_ASSERT_INT_EQ(fwt_run(argv, 10000, NULL), 0);
    uint8_t other[50];
    memset(other, 'x', sizeof(other));
    FILE *f = fopen(path, "wb");
    FWT_ASSERT(f != NULL);
    FWT_ASSERT_UINT_EQ(fwrite(other, 1, sizeof(other), f), sizeof(other));
    fclose(f);

    uint8_t *bytes = random_bytes(80);
    uint64_t deletes = fwt_webhdfs_count(&server, "DELETE");
    FWT_ASSERT_OK(do_write(d, 1, 0, bytes, 80, NULL));
    FWT_ASSERT_UINT_EQ(fwt_webhdfs_count(&server, "DELETE"), deletes + 1);
    assert_seg_equals(1, bytes, 80);

    /* Written again (a create whose answer was lost): the new copy replaces it. */
    FWT_ASSERT_OK(do_write(d, 2, 0, bytes, 80, NULL));
    FWT_ASSERT_OK(do_write(d, 2, 0, bytes, 80, NULL));
    assert_seg_equals(2, bytes, 80);
    dest_close(d);
    free(bytes);
    fwt_webhdfs_stop(&server);
}

FWT_TEST(namenode_down_is_connection_refused)
{
    FWT_ASSERT_OK(uv_loop_init(&loop));
    cp_dest_t *d = dest_open_port(fwt_free_port(), 2000);
    call_t c;
    call_init(&c, 1, 0, NULL, 0);
    FWT_ASSERT_OK(cp_dest_length(d, &c.req));
    FWT_ASSERT_INT_EQ(call_wait(&c), -ECONNREFUSED);
    FWT_ASSERT(strncmp(c.req.error, "webhdfs GETFILESTATUS /freeway/orders/3/", 40) == 0);
    dest_close(d);
}

/* ---- close with requests in flight ------------------------------------------------------ */

typedef struct closer_s {
    uv_timer_t timer;
    cp_dest_t *d;
    int closed;
    int refused; /* what a request made after cp_dest_close returned */
    call_t late;
} closer_t;

static void on_closer_dest_closed(cp_dest_t *d)
{
    closer_t *cl = d->data;
    cl->closed++;
}

static void on_closer_timer(uv_timer_t *t)
{
    closer_t *cl = t->data;
    uv_close((uv_handle_t *)t, NULL);
    cl->d->data = cl;
    cp_dest_close(cl->d, on_closer_dest_closed);
    call_init(&cl->late, 9, 0, NULL, 0);
    cl->refused = cp_dest_length(cl->d, &cl->late.req);
}

/* Starts reqs, closes the destination after ms, and checks each got -ECANCELED once. */
static void close_after(cp_dest_t *d, call_t *calls, int n, int ms)
{
    closer_t cl = {.d = d};
    FWT_ASSERT_OK(uv_timer_init(&loop, &cl.timer));
    cl.timer.data = &cl;
    FWT_ASSERT_OK(uv_timer_start(&cl.timer, on_closer_timer, (uint64_t)ms, 0));
    uv_run(&loop, UV_RUN_DEFAULT); /* ends once everything is closed */
    FWT_ASSERT_INT_EQ(cl.closed, 1);
    FWT_ASSERT_INT_EQ(cl.refused, -ESHUTDOWN);
    FWT_ASSERT_INT_EQ(cl.late.calls, 0);
    for (int i = 0; i < n; i++) {
        FWT_ASSERT_INT_EQ(calls[i].calls, 1);
        FWT_ASSERT_INT_EQ(calls[i].status, -ECANCELED);
        FWT_ASSERT(strstr(calls[i].req.error, "cancelled") != NULL);
    }
    if (uv_loop_close(&loop) != 0) {
        uv_walk(&loop, walk_handle, NULL);
        FWT_FAIL("the loop still has handles after the destination closed");
    }
}

FWT_TEST(close_cancels_requests_in_flight)
{
    setup(0);
    cp_dest_t *d = dest_open(30000);
    uint8_t *bytes = create_seg(d, 1, 100);
    /* A datanode that stalls (the append sits in libcurl), and a second
     * request on the same loop. */
    FWT_ASSERT_OK(do_write(d, 2, 0, bytes, 100, NULL));
    fwt_webhdfs_fault(&server, "APPEND", "stall", 2);
    call_t calls[2];
    call_init(&calls[0], 1, 100, bytes, 100);
    FWT_ASSERT_OK(cp_dest_write(d, &calls[0].req));
    call_init(&calls[1], 2, 100, bytes, 100);
    FWT_ASSERT_OK(cp_dest_write(d, &calls[1].req));
    close_after(d, calls, 2, 300);
    free(bytes);
    fwt_webhdfs_stop(&server);
}

FWT_TEST(close_cancels_truncate_waiting_for_recovery)
{
    setup(5000);
    cp_dest_t *d = dest_open(30000);
    free(create_seg(d, 1, 1000));
    call_t c;
    call_init(&c, 1, 600, NULL, 0);
    FWT_ASSERT_OK(cp_dest_truncate(d, &c.req));
    close_after(d, &c, 1, 400); /* between two GETFILESTATUS polls, or in one */
    fwt_webhdfs_stop(&server);
}

static void on_run_for(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
}

/* Runs the loop for ms, whatever else it has to do. */
static void run_for(int ms)
{
    uv_timer_t t;
    FWT_ASSERT_OK(uv_timer_init(&loop, &t));
    FWT_ASSERT_OK(uv_timer_start(&t, on_run_for, (uint64_t)ms, 0));
    while (!uv_is_closing((uv_handle_t *)&t))
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_NOWAIT); /* its close callback */
}

/* A request's callback closes the destination (inside libcurl's glue, while
 * it drains finished transfers): the other request still gets -ECANCELED. */
static cp_dest_t *close_target;
static int closed_from_cb;

static void on_closed_from_cb(cp_dest_t *d)
{
    (void)d;
    closed_from_cb++;
}

static void on_req_then_close(cp_dest_req_t *req, int status)
{
    on_req(req, status);
    cp_dest_close(close_target, on_closed_from_cb);
}

FWT_TEST(close_from_a_callback)
{
    setup(0);
    cp_dest_t *d = dest_open(30000);
    uint8_t *bytes = create_seg(d, 1, 100);
    fwt_webhdfs_fault(&server, "APPEND", "stall", 1);
    call_t stalled, quick;
    call_init(&stalled, 1, 100, bytes, 100);
    FWT_ASSERT_OK(cp_dest_write(d, &stalled.req));
    run_for(300); /* the append reaches the stalled datanode */
    call_init(&quick, 1, 0, NULL, 0);
    quick.req.cb = on_req_then_close;
    close_target = d;
    FWT_ASSERT_OK(cp_dest_length(d, &quick.req));
    uv_run(&loop, UV_RUN_DEFAULT); /* ends once everything is closed */
    FWT_ASSERT_INT_EQ(quick.calls, 1);
    FWT_ASSERT_INT_EQ(quick.status, 0);
    FWT_ASSERT_UINT_EQ(quick.req.offset, 100);
    FWT_ASSERT_INT_EQ(stalled.calls, 1);
    FWT_ASSERT_INT_EQ(stalled.status, -ECANCELED);
    FWT_ASSERT_INT_EQ(closed_from_cb, 1);
    if (uv_loop_close(&loop) != 0) {
        uv_walk(&loop, walk_handle, NULL);
        FWT_FAIL("the loop still has handles after the destination closed");
    }
    free(bytes);
    fwt_webhdfs_stop(&server);
}

/* ---- a namenode that redirects with 307 ----------------------------------------------- */

/*
 * The stand-in honours noredirect=true, as Hadoop 3 does; a namenode that
 * ignores it answers 307 with a Location header instead. This one does only
 * that, for APPEND, pointing at the stand-in's datanode, on a thread.
 */
typedef struct redirector_s {
    int listen_fd;
    int port;
    int dn_port, nn_port;
    char request_line[512]; /* the last one it was sent */
    pthread_t thread;
} redirector_t;

static void *redirector_main(void *arg)
{
    redirector_t *r = arg;
    int fd = accept(r->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char head[8192];
    size_t len = 0;
    while (len < sizeof(head) - 1) {
        ssize_t n = read(fd, head + len, sizeof(head) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        head[len] = '\0';
        if (strstr(head, "\r\n\r\n") != NULL)
            break;
    }
    head[len] = '\0';
    /* "POST /webhdfs/v1/PATH?QUERY HTTP/1.1" */
    char *eol = strstr(head, "\r\n");
    if (eol != NULL)
        *eol = '\0';
    snprintf(r->request_line, sizeof(r->request_line), "%.500s", head);
    char path[1024] = "";
    sscanf(head, "%*s %1023[^? ]", path);
    char answer[2048];
    int n = snprintf(answer, sizeof(answer),
                     "HTTP/1.1 307 TEMPORARY_REDIRECT\r\n"
                     "Location: http://127.0.0.1:%d%s?op=APPEND&user.name=freeway"
                     "&namenoderpcaddress=127.0.0.1:%d\r\n"
                     "Content-Type: application/octet-stream\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n",
                     r->dn_port, path, r->nn_port);
    (void)!write(fd, answer, (size_t)n);
    close(fd);
    return NULL;
}

static void redirector_start(redirector_t *r)
{
    memset(r, 0, sizeof(*r));
    r->dn_port = server.dn_port;
    r->nn_port = server.nn_port;
    r->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FWT_ASSERT(r->listen_fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof(sa);
    FWT_ASSERT(bind(r->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    FWT_ASSERT(listen(r->listen_fd, 4) == 0);
    FWT_ASSERT(getsockname(r->listen_fd, (struct sockaddr *)&sa, &salen) == 0);
    r->port = ntohs(sa.sin_port);
    FWT_ASSERT_INT_EQ(pthread_create(&r->thread, NULL, redirector_main, r), 0);
}

FWT_TEST(append_through_a_307_redirect)
{
    setup(0);
    cp_dest_t *d = dest_open(10000);
    uint8_t *bytes = create_seg(d, 1, 100);
    dest_close(d);
    FWT_ASSERT_OK(uv_loop_init(&loop));

    redirector_t r;
    redirector_start(&r);
    d = dest_open_port(r.port, 10000);
    FWT_ASSERT_OK(do_write(d, 1, 100, bytes, 100, NULL));
    FWT_ASSERT_INT_EQ(pthread_join(r.thread, NULL), 0);
    close(r.listen_fd);
    fprintf(stderr, "the redirector was sent: %s\n", r.request_line);
    FWT_ASSERT(strncmp(r.request_line,
                       "POST /webhdfs/v1/freeway/orders/3/00000000000000000001.seg?", 59) == 0);
    FWT_ASSERT(strstr(r.request_line, "op=APPEND&noredirect=true&user.name=freeway") != NULL);
    dest_close(d);

    uint8_t want[200];
    memcpy(want, bytes, 100);
    memcpy(want + 100, bytes, 100);
    assert_seg_equals(1, want, 200);
    free(bytes);
    fwt_webhdfs_stop(&server);
}
