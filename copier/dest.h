/*
 * cp_dest: a destination filesystem the copier writes segments to, behind one
 * small asynchronous interface so the copy logic (task.c) is the same for
 * every backend:
 *
 *   file:///path                a local, NFS or mounted filesystem (dest_file.c)
 *   webhdfs://host:port/path    HDFS through its WebHDFS REST API (dest_webhdfs.c)
 *
 * A destination holds byte-identical copies of the source's segments at the
 * same relative paths, DEST/<category>/<bucket>/<segment-id>.seg, so a
 * checkpoint taken on the source is valid on the copy.
 *
 * Requests. Each operation takes a caller-owned cp_dest_req_t naming one
 * segment (category, bucket, segment_id) and runs asynchronously: it returns
 * 0 and later calls req->cb exactly once on the loop thread, or returns a
 * negative errno (and never calls cb). status is 0 or a negative errno
 * (-ENOENT, -EIO, -ETIMEDOUT, -ECONNREFUSED, ...), and on failure req->error
 * holds a sentence for the operator ("webhdfs APPEND /x/0/..seg: 403
 * AlreadyBeingCreatedException: ..."). The req must stay valid until its
 * callback ran. A backend may run several requests at once, but the copier
 * sends at most one at a time per segment.
 *
 * Durability: a WRITE or TRUNCATE reports 0 only when the destination holds
 * the result durably (file: fdatasync, and fsync of the directory for a new
 * name; webhdfs: the datanode's 200/201 after the stream closed). The
 * copier records its progress in ZooKeeper only after that.
 *
 * Failures are never retried inside a backend in a way that could apply an
 * operation twice: an APPEND that may or may not have landed is reported as
 * an error, and the copier then asks for LENGTH and truncates back to its
 * recorded progress (see task.c).
 */
#ifndef CP_DEST_H
#define CP_DEST_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "names.h"

typedef struct cp_dest_s cp_dest_t;
typedef struct cp_dest_req_s cp_dest_req_t;

typedef void (*cp_dest_cb)(cp_dest_req_t *req, int status);
typedef void (*cp_dest_close_cb)(cp_dest_t *dest);

struct cp_dest_req_s {
    /** For the caller; the backend never touches it. */
    void *data;
    /** The segment: DEST/<category>/<bucket>/<segment_id>.seg. */
    const char *category;
    uint32_t bucket;
    uint64_t segment_id;
    /**
     * LENGTH: out, the segment's length at the destination.
     * TRUNCATE: in, the new length (never more than the current one).
     * WRITE: in, where bytes go; it must be the segment's current length.
     *        0 creates the segment: the bytes are written under a temporary
     *        name that readers ignore (".<id>.seg.tmp" in the same directory,
     *        replaced if it exists) and renamed into place once durable, so
     *        a segment never appears at the destination without its whole
     *        header. Missing directories are made. A segment of that name
     *        already there (a copy a crash left before its progress was
     *        recorded: the claim makes the copier the bucket's only writer)
     *        is replaced.
     */
    uint64_t offset;
    /** WRITE: the bytes (whole blocks, or the header and blocks at 0). */
    const uint8_t *bytes;
    size_t len;
    cp_dest_cb cb;
    /** After a failure: what went wrong, for the log and the operator. */
    char error[256];
    /** The backend's own state for this request. */
    void *priv;
};

/* What a backend implements (see the file comment for the contract). */
typedef struct cp_dest_ops_s {
    /** status -ENOENT when the segment does not exist at the destination. */
    int (*length)(cp_dest_t *d, cp_dest_req_t *req);
    int (*truncate)(cp_dest_t *d, cp_dest_req_t *req);
    int (*write)(cp_dest_t *d, cp_dest_req_t *req);
    /** Ends every request still running (their callbacks run, with -ECANCELED
     *  if they did not finish), frees the backend, then calls cb. */
    void (*close)(cp_dest_t *d, cp_dest_close_cb cb);
} cp_dest_ops_t;

struct cp_dest_s {
    const cp_dest_ops_t *ops;
    uv_loop_t *loop;
    /** The URL as configured, e.g. "webhdfs://nn:9870/freeway". */
    char url[1024];
    /**
     * The URL as one ZooKeeper node name (copier/<key>/...): '%' and '/'
     * percent-encoded, e.g. "webhdfs:%2F%2Fnn:9870%2Ffreeway".
     */
    char key[1100];
    /** For the copier. */
    void *data;
    /** The copier's last request here: 0 or its error, when, and the message (for /readyz). */
    int last_error;
    int64_t last_error_ms;
    char last_error_text[256];
};

/* Backend options that come from the copier's flags. */
typedef struct cp_dest_options_s {
    /** webhdfs: user.name for clusters without security ("" = none). */
    const char *hdfs_user;
    /** webhdfs: a request that moves no byte for this long fails. */
    int64_t stall_timeout_ms;
    /** file: fdatasync after each write (always on outside benchmarks). */
    int sync;
} cp_dest_options_t;

/*
 * Opens the destination a URL names (no I/O yet beyond checking the URL).
 * 0 and *out, or -EINVAL with err saying what is wrong with the URL, or
 * -ENOMEM. Close it with cp_dest_close.
 */
int cp_dest_open(uv_loop_t *loop, const char *url, const cp_dest_options_t *opts, cp_dest_t **out,
                 char *err, size_t errlen);

static inline int cp_dest_length(cp_dest_t *d, cp_dest_req_t *req)
{
    return d->ops->length(d, req);
}

static inline int cp_dest_truncate(cp_dest_t *d, cp_dest_req_t *req)
{
    return d->ops->truncate(d, req);
}

static inline int cp_dest_write(cp_dest_t *d, cp_dest_req_t *req)
{
    return d->ops->write(d, req);
}

static inline void cp_dest_close(cp_dest_t *d, cp_dest_close_cb cb)
{
    d->ops->close(d, cb);
}

/* The relative path of a segment, "<category>/<bucket>/<id>.seg". */
int cp_dest_rel_path(char *out, size_t cap, const char *category, uint32_t bucket,
                     uint64_t segment_id);

/* Sets req->error (printf-style, cut to fit), for the backends. */
void cp_dest_error(cp_dest_req_t *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Fills d->url and d->key from url (called by the backends' open). */
int cp_dest_set_url(cp_dest_t *d, const char *url);

/* The backends' constructors, called by cp_dest_open after the scheme. */
int cp_dest_file_open(uv_loop_t *loop, const char *url, const char *path,
                      const cp_dest_options_t *opts, cp_dest_t **out, char *err, size_t errlen);
int cp_dest_webhdfs_open(uv_loop_t *loop, const char *url, const char *host, int port,
                         const char *path, const cp_dest_options_t *opts, cp_dest_t **out,
                         char *err, size_t errlen);

#endif
