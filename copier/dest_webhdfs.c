/*
 * webhdfs:// destinations: HDFS through its WebHDFS REST API, with libcurl
 * on the copier's loop (curl_uv.c). Each cp_dest request is a short chain of
 * HTTP requests (engineering-notes §5):
 *
 *   LENGTH     GET    GETFILESTATUS                   -> FileStatus.length
 *   TRUNCATE   POST   TRUNCATE&newlength=N            -> true, or false and
 *              GET    GETFILESTATUS every so often    -> until length == N
 *   WRITE >0   POST   APPEND&noredirect=true          -> the datanode's URL
 *              POST   the bytes, to the datanode      -> 200
 *   WRITE 0    PUT    MKDIRS of the bucket directory  (once per directory)
 *              PUT    CREATE .<id>.seg.tmp&overwrite=true&noredirect=true
 *              PUT    the bytes, to the datanode      -> 201
 *              PUT    RENAME to <id>.seg              -> true, or false and
 *              DELETE <id>.seg, RENAME again          (a copy a crash left unrecorded)
 *              GET    GETFILESTATUS <id>.seg          -> exactly len bytes?
 *
 * The stall timeout (cp_dest_options_t) fails a request through which no
 * byte moved for that long (CURLOPT_LOW_SPEED_*), bounds its connect, and
 * bounds how long a TRUNCATE waits for the block recovery.
 *
 * Nothing is retried here: a request that fails ends the cp_dest request
 * with an error, and the copier decides (LENGTH, TRUNCATE, write again). The
 * requests that carry bytes go on a fresh connection that is not kept, so
 * libcurl's resend-on-a-dead-reused-connection can never send an APPEND twice,
 * and redirects are never followed (the datanode URL is taken by hand from
 * the 307's Location or the 200's {"Location":...}).
 */
#include "dest.h"

#include "clock.h"
#include "curl_uv.h"
#include "webhdfs_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WH_PATH_MAX      2048
#define WH_URL_MAX       8192
#define WH_BODY_MAX      32768
#define WH_DIRS_MAX      256
#define WH_STALL_DEFAULT 60000
#define WH_BACKOFF_MIN   50
#define WH_BACKOFF_MAX   1000

typedef enum { WH_LENGTH, WH_TRUNCATE, WH_WRITE } wh_kind_t;

/* The HTTP request an operation is waiting for. */
typedef enum {
    STEP_STATUS,        /* LENGTH: GETFILESTATUS */
    STEP_TRUNCATE,      /* TRUNCATE */
    STEP_TRUNCATE_WAIT, /* GETFILESTATUS while the last block recovers */
    STEP_MKDIRS,        /* the bucket directory of a new segment */
    STEP_CREATE,        /* namenode: where to write the temporary file */
    STEP_CREATE_DATA,   /* datanode: the bytes */
    STEP_RENAME,        /* the temporary name to the final one */
    STEP_REPLACE,       /* DELETE of the final name after a refused rename */
    STEP_RENAME_CHECK,  /* GETFILESTATUS of the final name after a refused rename */
    STEP_APPEND,        /* namenode: where to append */
    STEP_APPEND_DATA,   /* datanode: the bytes */
} wh_step_t;

typedef enum { M_GET, M_PUT, M_POST, M_DELETE } wh_method_t;

typedef struct wh_op_s wh_op_t;

typedef struct wh_dest_s {
    cp_dest_t base;
    cp_curl_t curl;
    /* "http://host:port/webhdfs/v1", to which an encoded HDFS path is added. */
    char nn[512];
    /* The HDFS directory segments go under, without a trailing '/' ("" for /). */
    char root[1024];
    /* "&user.name=..." or "". */
    char user_q[320];
    int64_t stall_ms;
    /* Operations that have not called back yet. */
    wh_op_t *ops;
    /* Operations not yet freed (their timer may still be closing). */
    int nops;
    /* Bucket directories already made, oldest replaced first when full. */
    char *dirs[WH_DIRS_MAX];
    int ndirs;
    int dir_next;
    int closing;
    int curl_closed;
    cp_dest_close_cb close_cb;
} wh_dest_t;

/* One cp_dest request, from submit to its callback. */
struct wh_op_s {
    wh_dest_t *d;
    cp_dest_req_t *req;
    wh_kind_t kind;
    wh_step_t step;
    /* The HTTP request in flight, NULL between two of them. */
    CURL *easy;
    struct curl_slist *headers;
    /* What is being uploaded, and how much of it libcurl has taken. */
    const uint8_t *upload;
    size_t upload_len;
    size_t sent;
    /* The answer's body (cut at WH_BODY_MAX). */
    char body[WH_BODY_MAX];
    size_t body_len;
    char errbuf[CURL_ERROR_SIZE];
    /* HDFS paths: the segment, its bucket directory, its temporary name. */
    char path[WH_PATH_MAX];
    char dir[WH_PATH_MAX];
    char tmp[WH_PATH_MAX];
    /* The datanode URL of a CREATE or APPEND. */
    char location[WH_URL_MAX];
    /* TRUNCATE: polls while the last block recovers, until the deadline. */
    uv_timer_t timer;
    int waiting;
    int64_t deadline_ms;
    uint64_t backoff_ms;
    /* WRITE at 0: the final name was deleted once to make room. */
    int replaced;
    wh_op_t *prev, *next;
};

/* ---- names and URLs ---------------------------------------------------------------- */

/* Appends s percent-encoded (RFC 3986 unreserved characters kept, '/' too
 * when keep_slash) at out[*pos]; -ENAMETOOLONG if it does not fit. */
static int url_encode(char *out, size_t cap, size_t *pos, const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = *pos;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        if (k + (keep ? 1 : 3) >= cap)
            return -ENAMETOOLONG;
        if (keep) {
            out[k++] = (char)c;
        } else {
            out[k++] = '%';
            out[k++] = hex[c >> 4];
            out[k++] = hex[c & 15];
        }
    }
    out[k] = '\0';
    *pos = k;
    return 0;
}

/* The namenode URL of an operation on an HDFS path; query starts with "op=". */
static int nn_url(const wh_dest_t *d, char *out, size_t cap, const char *path, const char *query)
{
    size_t k = (size_t)snprintf(out, cap, "%s", d->nn);
    if (k >= cap || url_encode(out, cap, &k, path, 1) < 0)
        return -ENAMETOOLONG;
    int n = snprintf(out + k, cap - k, "?%s%s", query, d->user_q);
    return n < 0 || (size_t)n >= cap - k ? -ENAMETOOLONG : 0;
}

static int op_paths(wh_op_t *op)
{
    const wh_dest_t *d = op->d;
    const cp_dest_req_t *req = op->req;
    char rel[512];
    int rc = cp_dest_rel_path(rel, sizeof(rel), req->category, req->bucket, req->segment_id);
    if (rc < 0)
        return rc;
    if ((size_t)snprintf(op->path, sizeof(op->path), "%s/%s", d->root, rel) >= sizeof(op->path))
        return -ENAMETOOLONG;
    const char *slash = strrchr(op->path, '/');
    size_t dlen = (size_t)(slash - op->path);
    memcpy(op->dir, op->path, dlen);
    op->dir[dlen] = '\0';
    if ((size_t)snprintf(op->tmp, sizeof(op->tmp), "%s/.%s.tmp", op->dir, slash + 1) >=
        sizeof(op->tmp))
        return -ENAMETOOLONG;
    return 0;
}

/* ---- the directory cache ------------------------------------------------------------- */

static int dir_known(const wh_dest_t *d, const char *dir)
{
    for (int i = 0; i < d->ndirs; i++) {
        if (strcmp(d->dirs[i], dir) == 0)
            return 1;
    }
    return 0;
}

static void dir_remember(wh_dest_t *d, const char *dir)
{
    if (dir_known(d, dir))
        return;
    char *copy = strdup(dir);
    if (copy == NULL)
        return; /* only costs a MKDIRS next time */
    if (d->ndirs < WH_DIRS_MAX) {
        d->dirs[d->ndirs++] = copy;
        return;
    }
    free(d->dirs[d->dir_next]);
    d->dirs[d->dir_next] = copy;
    d->dir_next = (d->dir_next + 1) % WH_DIRS_MAX;
}

/* After a failed create: the directory may be gone, so make it again next time. */
static void dir_forget(wh_dest_t *d, const char *dir)
{
    for (int i = 0; i < d->ndirs; i++) {
        if (strcmp(d->dirs[i], dir) == 0) {
            free(d->dirs[i]);
            d->dirs[i] = d->dirs[--d->ndirs];
            d->dirs[d->ndirs] = NULL;
            if (d->dir_next >= d->ndirs)
                d->dir_next = 0;
            return;
        }
    }
}

/* ---- finishing --------------------------------------------------------------------------- */

static void maybe_closed(wh_dest_t *d)
{
    if (!d->closing || !d->curl_closed || d->nops > 0 || d->close_cb == NULL)
        return;
    cp_dest_close_cb cb = d->close_cb;
    d->close_cb = NULL;
    for (int i = 0; i < d->ndirs; i++)
        free(d->dirs[i]);
    cb(&d->base);
    free(d);
}

static void on_op_closed(uv_handle_t *h)
{
    wh_op_t *op = h->data;
    wh_dest_t *d = op->d;
    curl_slist_free_all(op->headers);
    free(op);
    d->nops--;
    maybe_closed(d);
}

static void op_unlink(wh_op_t *op)
{
    wh_dest_t *d = op->d;
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        d->ops = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    op->prev = op->next = NULL;
}

/* Calls the request back once; op is freed after its timer has closed. */
static void op_finish(wh_op_t *op, int status)
{
    cp_dest_req_t *req = op->req;
    op_unlink(op);
    if (status < 0 && op->kind == WH_WRITE && req->offset == 0)
        dir_forget(op->d, op->dir);
    if (status == 0)
        req->error[0] = '\0';
    req->priv = NULL;
    uv_timer_stop(&op->timer);
    uv_close((uv_handle_t *)&op->timer, on_op_closed);
    req->cb(req, status);
}

/* What the operator reads: "webhdfs OP PATH: ..." for the step that failed. */
static const char *step_op(const wh_op_t *op)
{
    switch (op->step) {
    case STEP_STATUS:
        return "GETFILESTATUS";
    case STEP_TRUNCATE:
    case STEP_TRUNCATE_WAIT:
        return "TRUNCATE";
    case STEP_MKDIRS:
        return "MKDIRS";
    case STEP_CREATE:
    case STEP_CREATE_DATA:
        return "CREATE";
    case STEP_RENAME:
    case STEP_RENAME_CHECK:
        return "RENAME";
    case STEP_REPLACE:
        return "DELETE";
    case STEP_APPEND:
    case STEP_APPEND_DATA:
        break;
    }
    return "APPEND";
}

static const char *step_path(const wh_op_t *op)
{
    switch (op->step) {
    case STEP_MKDIRS:
        return op->dir;
    case STEP_CREATE:
    case STEP_CREATE_DATA:
    case STEP_RENAME:
        return op->tmp;
    default:
        return op->path;
    }
}

__attribute__((format(printf, 3, 4))) static void op_fail(wh_op_t *op, int status, const char *fmt,
                                                          ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    cp_dest_error(op->req, "webhdfs %s %s: %s", step_op(op), step_path(op), what);
    op_finish(op, status);
}

/* 403s that mean "someone holds or is recovering the file: try later". */
static int retry_later(const char *exception)
{
    static const char *const names[] = {
        "AlreadyBeingCreatedException",
        "RecoveryInProgressException",
        "LeaseExpired",
        "RetriableException",
        "StandbyException",
        "SafeModeException",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strncmp(exception, names[i], strlen(names[i])) == 0)
            return 1;
    }
    return 0;
}

/* An answer that is not the one the step wanted. */
static void op_http_error(wh_op_t *op, long code, const char *note)
{
    int status = code == 404 ? -ENOENT : code == 401 ? -EPERM : code == 403 ? -EACCES : -EIO;
    cp_wh_remote_exc_t exc;
    if (cp_wh_json_remote_exception(op->body, op->body_len, &exc) == 0) {
        if (code == 403 && retry_later(exc.exception))
            status = -EAGAIN;
        /* Hadoop's messages may carry a stack trace: keep the error one line. */
        for (char *p = exc.message; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20)
                *p = ' ';
        }
        op_fail(op, status, "%ld %s: %s%s", code, exc.exception[0] ? exc.exception : "?",
                exc.message, note);
        return;
    }
    /* Not WebHDFS's own error (a proxy, a servlet container): show how it starts. */
    char start[64];
    size_t n = 0;
    for (size_t i = 0; i < op->body_len && n + 1 < sizeof(start); i++) {
        char c = op->body[i];
        start[n++] = c >= 0x20 && c < 0x7f ? c : ' ';
    }
    start[n] = '\0';
    op_fail(op, status, "HTTP %ld%s%s%s", code, n ? ": " : "", start, note);
}

static int curl_status(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    default:
        return -EIO;
    }
}

/* ---- one HTTP request ------------------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    wh_op_t *op = arg;
    size_t len = size * n;
    size_t room = sizeof(op->body) - op->body_len;
    if (len > room)
        len = room; /* keep reading: only the start is ever looked at */
    memcpy(op->body + op->body_len, p, len);
    op->body_len += len;
    return size * n;
}

static size_t on_upload(char *buf, size_t size, size_t n, void *arg)
{
    wh_op_t *op = arg;
    size_t len = size * n;
    if (len > op->upload_len - op->sent)
        len = op->upload_len - op->sent;
    if (len == 0)
        return 0; /* the end (and a request without a body has no buffer) */
    memcpy(buf, op->upload + op->sent, len);
    op->sent += len;
    return len;
}

/* libcurl would only rewind to send the bytes again: never. */
static int on_seek(void *arg, curl_off_t offset, int origin)
{
    (void)arg;
    (void)offset;
    (void)origin;
    return CURL_SEEKFUNC_CANTSEEK;
}

static void on_done(CURL *easy, CURLcode result, void *arg);

/*
 * Starts one request of op. A method other than GET carries bytes[0..len)
 * (none for the namenode's steps) with its size set, so libcurl never
 * falls back to chunked encoding; datanode requests get a fresh connection.
 */
static int op_send(wh_op_t *op, wh_step_t step, wh_method_t method, const char *url,
                   const uint8_t *bytes, size_t len, int datanode)
{
    wh_dest_t *d = op->d;
    CURL *e = curl_easy_init();
    if (e == NULL)
        return -ENOMEM;
    op->step = step;
    op->body_len = 0;
    op->errbuf[0] = '\0';
    op->upload = bytes;
    op->upload_len = len;
    op->sent = 0;
    curl_slist_free_all(op->headers);
    op->headers = NULL;

    long stall_s = (long)((d->stall_ms + 999) / 1000);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, op->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, op);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)d->stall_ms);
    /* A stall, not a slow transfer, fails a request: less than 1 byte/s for the
     * whole window. libcurl averages the speed over its last 5 s, so a stall
     * after a burst is noticed up to about 5 s late. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, stall_s > 0 ? stall_s : 1L);
    if (method == M_DELETE)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
    if (method != M_GET && method != M_DELETE) {
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/octet-stream");
        struct curl_slist *h2 = h != NULL ? curl_slist_append(h, "Expect:") : NULL;
        if (h2 == NULL) {
            curl_slist_free_all(h);
            curl_easy_cleanup(e);
            return -ENOMEM;
        }
        op->headers = h2;
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, op->headers);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(e, CURLOPT_READDATA, op);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        if (method == M_PUT)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
    }
    if (datanode) {
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
    int rc = cp_curl_add(&d->curl, e, on_done, op);
    if (rc < 0) {
        curl_easy_cleanup(e);
        return rc;
    }
    op->easy = e;
    return 0;
}

static int send_nn(wh_op_t *op, wh_step_t step, wh_method_t method, const char *path,
                   const char *query)
{
    char url[WH_URL_MAX];
    int rc = nn_url(op->d, url, sizeof(url), path, query);
    return rc < 0 ? rc : op_send(op, step, method, url, NULL, 0, 0);
}

static int send_status(wh_op_t *op, wh_step_t step)
{
    return send_nn(op, step, M_GET, op->path, "op=GETFILESTATUS");
}

static int send_truncate(wh_op_t *op)
{
    char q[64];
    snprintf(q, sizeof(q), "op=TRUNCATE&newlength=%" PRIu64, op->req->offset);
    return send_nn(op, STEP_TRUNCATE, M_POST, op->path, q);
}

static int send_mkdirs(wh_op_t *op)
{
    return send_nn(op, STEP_MKDIRS, M_PUT, op->dir, "op=MKDIRS");
}

static int send_create(wh_op_t *op)
{
    return send_nn(op, STEP_CREATE, M_PUT, op->tmp, "op=CREATE&overwrite=true&noredirect=true");
}

static int send_rename(wh_op_t *op)
{
    char q[WH_URL_MAX / 2];
    size_t k = (size_t)snprintf(q, sizeof(q), "op=RENAME&destination=");
    int rc = url_encode(q, sizeof(q), &k, op->path, 0);
    return rc < 0 ? rc : send_nn(op, STEP_RENAME, M_PUT, op->tmp, q);
}

static int send_replace(wh_op_t *op)
{
    return send_nn(op, STEP_REPLACE, M_DELETE, op->path, "op=DELETE&recursive=false");
}

static int send_append(wh_op_t *op)
{
    return send_nn(op, STEP_APPEND, M_POST, op->path, "op=APPEND&noredirect=true");
}

/* Starts the next request, or ends op if it cannot start. */
static void op_next(wh_op_t *op, int rc)
{
    if (rc < 0)
        op_fail(op, rc, "cannot start the request: %s", strerror(-rc));
}

/* ---- answers ------------------------------------------------------------------------------ */

static int body_bool(const wh_op_t *op, int *out)
{
    static const char *const path[] = {"boolean"};
    return cp_wh_json_get_bool(op->body, op->body_len, path, 1, out);
}

/* FileStatus.length of a file; -EISDIR for anything but a file. */
static int body_length(const wh_op_t *op, uint64_t *out)
{
    static const char *const len_path[] = {"FileStatus", "length"};
    static const char *const type_path[] = {"FileStatus", "type"};
    char type[16];
    int rc = cp_wh_json_get_str(op->body, op->body_len, type_path, 2, type, sizeof(type));
    if (rc == 0 && strcmp(type, "FILE") != 0)
        return -EISDIR;
    return cp_wh_json_get_u64(op->body, op->body_len, len_path, 2, out);
}

/* The datanode URL from a 307's Location header or a 200's {"Location":...}. */
static int take_location(wh_op_t *op, long code)
{
    static const char *const path[] = {"Location"};
    if (code == 200 &&
        cp_wh_json_get_str(op->body, op->body_len, path, 1, op->location, sizeof(op->location)) < 0)
        op->location[0] = '\0';
    if (strncmp(op->location, "http://", 7) != 0 && strncmp(op->location, "https://", 8) != 0) {
        op_fail(op, -EIO, "HTTP %ld without a datanode http(s) Location", code);
        return -EIO;
    }
    return 0;
}

static void on_backoff(uv_timer_t *t)
{
    wh_op_t *op = t->data;
    op->waiting = 0;
    op_next(op, send_status(op, STEP_TRUNCATE_WAIT));
}

/* The last block is being recovered: look again a little later, until the deadline. */
static void truncate_wait(wh_op_t *op, uint64_t now_len)
{
    int64_t now = fw_clock_mono_ms();
    if (op->deadline_ms == 0) {
        op->deadline_ms = now + op->d->stall_ms;
        op->backoff_ms = WH_BACKOFF_MIN;
    } else if (now >= op->deadline_ms) {
        op_fail(op, -ETIMEDOUT, "still %" PRIu64 " bytes, not %" PRIu64 ", after %" PRId64 " ms",
                now_len, op->req->offset, op->d->stall_ms);
        return;
    } else if (op->backoff_ms < WH_BACKOFF_MAX) {
        op->backoff_ms *= 2;
        if (op->backoff_ms > WH_BACKOFF_MAX)
            op->backoff_ms = WH_BACKOFF_MAX;
    }
    op->waiting = 1;
    uv_timer_start(&op->timer, on_backoff, op->backoff_ms, 0);
}

static void step_done(wh_op_t *op, long code)
{
    cp_dest_req_t *req = op->req;
    uint64_t len = 0;
    int b = 0, rc;
    switch (op->step) {
    case STEP_STATUS:
        if (code != 200)
            break;
        if ((rc = body_length(op, &len)) < 0) {
            op_fail(op, rc == -EISDIR ? rc : -EIO, "unreadable FileStatus");
            return;
        }
        req->offset = len;
        op_finish(op, 0);
        return;

    case STEP_TRUNCATE:
        if (code != 200)
            break;
        if (body_bool(op, &b) < 0) {
            op_fail(op, -EIO, "unreadable answer");
            return;
        }
        if (b)
            op_finish(op, 0);
        else
            truncate_wait(op, req->offset); /* false: the last block is being recovered */
        return;

    case STEP_TRUNCATE_WAIT:
        if (code != 200)
            break;
        if ((rc = body_length(op, &len)) < 0) {
            op_fail(op, rc == -EISDIR ? rc : -EIO, "unreadable FileStatus");
            return;
        }
        if (len == req->offset)
            op_finish(op, 0);
        else if (len < req->offset)
            op_fail(op, -EIO, "the file is %" PRIu64 " bytes, shorter than the %" PRIu64 " asked",
                    len, req->offset);
        else
            truncate_wait(op, len);
        return;

    case STEP_MKDIRS:
        if (code != 200)
            break;
        if (body_bool(op, &b) < 0 || !b) {
            op_fail(op, -EIO, "the namenode answered false");
            return;
        }
        dir_remember(op->d, op->dir);
        op_next(op, send_create(op));
        return;

    case STEP_CREATE:
    case STEP_APPEND:
        if ((code < 300 || code >= 400) && code != 200)
            break;
        if (take_location(op, code) < 0)
            return;
        if (op->step == STEP_CREATE)
            rc = op_send(op, STEP_CREATE_DATA, M_PUT, op->location, req->bytes, req->len, 1);
        else
            rc = op_send(op, STEP_APPEND_DATA, M_POST, op->location, req->bytes, req->len, 1);
        op_next(op, rc);
        return;

    case STEP_CREATE_DATA:
        if (code != 201 && code != 200)
            break;
        op_next(op, send_rename(op));
        return;

    case STEP_RENAME:
        if (code != 200)
            break;
        if (body_bool(op, &b) < 0) {
            op_fail(op, -EIO, "unreadable answer");
            return;
        }
        if (b) {
            op_finish(op, 0);
            return;
        }
        /* Refused: the final name exists, or the temporary one does not. A
         * final name with no recorded progress is a copy a crash left behind
         * (the bucket's claim makes us its only writer): it gives way, once. */
        if (!op->replaced) {
            op_next(op, send_replace(op));
            return;
        }
        /* An earlier attempt whose answer was lost may have renamed it already. */
        op_next(op, send_status(op, STEP_RENAME_CHECK));
        return;

    case STEP_REPLACE:
        if (code != 200)
            break;
        op->replaced = 1;
        op_next(op, send_rename(op));
        return;

    case STEP_RENAME_CHECK:
        if (code == 404) {
            op_fail(op, -EIO, "refused, and %s does not exist", op->path);
            return;
        }
        if (code != 200)
            break;
        if (body_length(op, &len) < 0) {
            op_fail(op, -EIO, "refused, and %s is unreadable", op->path);
            return;
        }
        if (len == req->len) {
            op_finish(op, 0); /* a previous attempt landed */
            return;
        }
        op_fail(op, -EEXIST, "refused: %s exists with %" PRIu64 " bytes, not %zu", op->path, len,
                req->len);
        return;

    case STEP_APPEND_DATA:
        if (code == 200) {
            op_finish(op, 0);
            return;
        }
        op_http_error(op, code, " (the bytes may or may not have been appended)");
        return;
    }
    op_http_error(op, code, "");
}

static void on_done(CURL *easy, CURLcode result, void *arg)
{
    wh_op_t *op = arg;
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 300 && code < 400) {
        char *redirect = NULL;
        curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &redirect);
        if (redirect == NULL || strlen(redirect) >= sizeof(op->location))
            op->location[0] = '\0';
        else
            strcpy(op->location, redirect);
    }
    curl_easy_cleanup(easy);
    op->easy = NULL;

    if (op->d->closing) {
        op_fail(op, -ECANCELED, "cancelled: the destination is closing");
        return;
    }
    if (result != CURLE_OK) {
        const char *msg = op->errbuf[0] ? op->errbuf : curl_easy_strerror(result);
        op_fail(op, curl_status(result), "%s%s", msg,
                op->step == STEP_APPEND_DATA ? " (the bytes may or may not have been appended)"
                                             : "");
        return;
    }
    step_done(op, code);
}

/* ---- the cp_dest operations ----------------------------------------------------------------- */

static int wh_submit(cp_dest_t *base, cp_dest_req_t *req, wh_kind_t kind)
{
    wh_dest_t *d = (wh_dest_t *)base;
    if (d->closing)
        return -ESHUTDOWN;
    req->error[0] = '\0';
    wh_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return -ENOMEM;
    op->d = d;
    op->req = req;
    op->kind = kind;
    int rc = op_paths(op);
    if (rc < 0) {
        cp_dest_error(req, "webhdfs: bad segment path: %s", strerror(-rc));
        free(op);
        return rc;
    }
    rc = uv_timer_init(base->loop, &op->timer);
    if (rc < 0) {
        free(op);
        return rc;
    }
    op->timer.data = op;
    op->next = d->ops;
    if (d->ops != NULL)
        d->ops->prev = op;
    d->ops = op;
    d->nops++;
    req->priv = op;

    switch (kind) {
    case WH_LENGTH:
        rc = send_status(op, STEP_STATUS);
        break;
    case WH_TRUNCATE:
        rc = send_truncate(op);
        break;
    case WH_WRITE:
        if (req->offset > 0)
            rc = send_append(op);
        else if (dir_known(d, op->dir))
            rc = send_create(op);
        else
            rc = send_mkdirs(op);
        break;
    }
    if (rc < 0) {
        /* Never started: no callback; op goes once its timer has closed. */
        op_unlink(op);
        req->priv = NULL;
        cp_dest_error(req, "webhdfs: cannot start the request: %s", strerror(-rc));
        uv_close((uv_handle_t *)&op->timer, on_op_closed);
        return rc;
    }
    return 0;
}

static int wh_length(cp_dest_t *d, cp_dest_req_t *req)
{
    return wh_submit(d, req, WH_LENGTH);
}

static int wh_truncate(cp_dest_t *d, cp_dest_req_t *req)
{
    return wh_submit(d, req, WH_TRUNCATE);
}

static int wh_write(cp_dest_t *d, cp_dest_req_t *req)
{
    return wh_submit(d, req, WH_WRITE);
}

static void on_curl_closed(cp_curl_t *c)
{
    wh_dest_t *d = c->data;
    d->curl_closed = 1;
    maybe_closed(d);
}

static void wh_close(cp_dest_t *base, cp_dest_close_cb cb)
{
    wh_dest_t *d = (wh_dest_t *)base;
    if (d->closing)
        return;
    d->closing = 1;
    d->close_cb = cb;
    /* Operations waiting on a timer have nothing in libcurl: end them here.
     * A callback cannot end another operation, so the list only shrinks. */
    wh_op_t *op = d->ops;
    while (op != NULL) {
        wh_op_t *next = op->next;
        if (op->easy == NULL)
            op_fail(op, -ECANCELED, "cancelled: the destination is closing");
        op = next;
    }
    /* The rest are aborted by libcurl's glue; on_done ends them with -ECANCELED. */
    cp_curl_close(&d->curl, on_curl_closed);
}

static const cp_dest_ops_t WEBHDFS_OPS = {
    .length = wh_length,
    .truncate = wh_truncate,
    .write = wh_write,
    .close = wh_close,
};

int cp_dest_webhdfs_open(uv_loop_t *loop, const char *url, const char *host, int port,
                         const char *path, const cp_dest_options_t *opts, cp_dest_t **out,
                         char *err, size_t errlen)
{
    *out = NULL;
    /* The host goes into URLs as it is: refuse what would change their meaning. */
    if (host[0] == '\0' || strpbrk(host, "/?#@[]% \t\r\n") != NULL) {
        snprintf(err, errlen, "webhdfs URL: bad host \"%s\"", host);
        return -EINVAL;
    }
    wh_dest_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    size_t n = strlen(path);
    while (n > 0 && path[n - 1] == '/')
        n--;
    if (cp_dest_set_url(&d->base, url) < 0 || n >= sizeof(d->root)) {
        snprintf(err, errlen, "webhdfs URL too long");
        free(d);
        return -EINVAL;
    }
    memcpy(d->root, path, n);
    d->root[n] = '\0';
    snprintf(d->nn, sizeof(d->nn), "http://%s:%d/webhdfs/v1", host, port);
    const char *user = opts != NULL && opts->hdfs_user != NULL ? opts->hdfs_user : "";
    if (user[0] != '\0') {
        size_t k = (size_t)snprintf(d->user_q, sizeof(d->user_q), "&user.name=");
        if (url_encode(d->user_q, sizeof(d->user_q), &k, user, 0) < 0) {
            snprintf(err, errlen, "webhdfs: HDFS user name too long");
            free(d);
            return -EINVAL;
        }
    }
    d->stall_ms =
        opts != NULL && opts->stall_timeout_ms > 0 ? opts->stall_timeout_ms : WH_STALL_DEFAULT;
    int rc = cp_curl_init(&d->curl, loop);
    if (rc < 0) {
        snprintf(err, errlen, "webhdfs: cannot set up libcurl: %s", strerror(-rc));
        free(d);
        return rc;
    }
    d->curl.data = d;
    d->base.ops = &WEBHDFS_OPS;
    d->base.loop = loop;
    *out = &d->base;
    return 0;
}
