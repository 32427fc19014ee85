/*
 * file:// destinations: a local, NFS or mounted filesystem. Each request is
 * one piece of blocking work on libuv's threadpool: positional writes at the
 * tracked length (never O_APPEND), fdatasync, and for a new segment a
 * temporary name, rename and directory fsync (engineering-notes §6.3).
 */
#include "dest.h"

#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum { OP_LENGTH, OP_TRUNCATE, OP_WRITE } file_op_t;

typedef struct file_dest_s {
    cp_dest_t base;
    char root[4096];
    int sync;
    int running; /* requests on the threadpool */
    cp_dest_close_cb close_cb;
} file_dest_t;

typedef struct file_work_s {
    uv_work_t work;
    file_dest_t *fd;
    cp_dest_req_t *req;
    file_op_t op;
    int status;
} file_work_t;

static int seg_paths(const file_dest_t *d, const cp_dest_req_t *req, char *dir, char *path,
                     char *tmp, size_t cap)
{
    char rel[512];
    int rc = cp_dest_rel_path(rel, sizeof(rel), req->category, req->bucket, req->segment_id);
    if (rc < 0)
        return rc;
    if ((size_t)snprintf(path, cap, "%s/%s", d->root, rel) >= cap)
        return -ENAMETOOLONG;
    rc = fw_dirname(path, dir, cap);
    if (rc < 0)
        return rc;
    const char *name = path + strlen(dir) + 1;
    if ((size_t)snprintf(tmp, cap, "%s/.%s.tmp", dir, name) >= cap)
        return -ENAMETOOLONG;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* The directories of a new segment, each made durable in its parent. */
static int make_dirs(const file_dest_t *d, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return 0;
    int rc = fw_mkdir_p(dir);
    if (rc < 0)
        return rc;
    char bucket_parent[4096], cat_parent[4096];
    if (fw_dirname(dir, bucket_parent, sizeof(bucket_parent)) < 0 ||
        fw_dirname(bucket_parent, cat_parent, sizeof(cat_parent)) < 0)
        return -ENAMETOOLONG;
    (void)d;
    if ((rc = fw_fsync_dir(bucket_parent)) < 0 || (rc = fw_fsync_dir(cat_parent)) < 0)
        return rc;
    return 0;
}

static int do_create(file_dest_t *d, cp_dest_req_t *req, const char *dir, const char *path,
                     const char *tmp)
{
    int rc = make_dirs(d, dir);
    if (rc < 0) {
        cp_dest_error(req, "cannot make %s: %s", dir, strerror(-rc));
        return rc;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        cp_dest_error(req, "cannot create %s: %s", tmp, strerror(errno));
        return rc;
    }
    rc = write_all(fd, req->bytes, req->len, 0);
    if (rc == 0 && d->sync && fdatasync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc == 0 && d->sync)
        rc = fw_fsync_dir(dir);
    if (rc < 0) {
        cp_dest_error(req, "writing %s: %s", path, strerror(-rc));
        unlink(tmp);
    }
    return rc;
}

static int do_append(file_dest_t *d, cp_dest_req_t *req, const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        cp_dest_error(req, "cannot open %s: %s", path, strerror(errno));
        return rc;
    }
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && (uint64_t)st.st_size != req->offset) {
        /* Someone else changed the file: never write where we did not expect. */
        cp_dest_error(req, "%s is %lld bytes long, the copier expected %llu", path,
                      (long long)st.st_size, (unsigned long long)req->offset);
        close(fd);
        return -ESPIPE;
    }
    if (rc == 0)
        rc = write_all(fd, req->bytes, req->len, req->offset);
    if (rc == 0 && d->sync && fdatasync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc < 0 && req->error[0] == '\0')
        cp_dest_error(req, "writing %s: %s", path, strerror(-rc));
    return rc;
}

static void run_work(uv_work_t *w)
{
    file_work_t *fw = w->data;
    file_dest_t *d = fw->fd;
    cp_dest_req_t *req = fw->req;
    char dir[4096], path[4096], tmp[4096];
    int rc = seg_paths(d, req, dir, path, tmp, sizeof(path));
    if (rc < 0) {
        cp_dest_error(req, "bad segment path: %s", strerror(-rc));
        fw->status = rc;
        return;
    }
    struct stat st;
    switch (fw->op) {
    case OP_LENGTH:
        if (stat(path, &st) < 0) {
            rc = -errno;
            if (rc != -ENOENT)
                cp_dest_error(req, "stat %s: %s", path, strerror(errno));
        } else {
            req->offset = (uint64_t)st.st_size;
        }
        break;
    case OP_TRUNCATE: {
        /* Only ever shorter: a truncate that grew the file would fill it with zeros. */
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size < req->offset) {
            close(fd);
            cp_dest_error(req, "%s is %lld bytes long, shorter than the %llu to truncate to", path,
                          (long long)st.st_size, (unsigned long long)req->offset);
            rc = -ESPIPE;
            break;
        }
        if (fd < 0 || ftruncate(fd, (off_t)req->offset) < 0 || (d->sync && fdatasync(fd) < 0))
            rc = -errno;
        if (fd >= 0)
            close(fd);
        if (rc < 0)
            cp_dest_error(req, "truncating %s to %llu: %s", path, (unsigned long long)req->offset,
                          strerror(-rc));
        break;
    }
    case OP_WRITE:
        rc = req->offset == 0 ? do_create(d, req, dir, path, tmp) : do_append(d, req, path);
        break;
    }
    fw->status = rc;
}

static void after_work(uv_work_t *w, int status)
{
    file_work_t *fw = w->data;
    file_dest_t *d = fw->fd;
    cp_dest_req_t *req = fw->req;
    int rc = status == UV_ECANCELED ? -ECANCELED : fw->status;
    free(fw);
    d->running--;
    req->cb(req, rc);
    if (d->running == 0 && d->close_cb != NULL) {
        cp_dest_close_cb cb = d->close_cb;
        d->close_cb = NULL;
        cb(&d->base);
        free(d);
    }
}

static int submit(cp_dest_t *base, cp_dest_req_t *req, file_op_t op)
{
    file_dest_t *d = (file_dest_t *)base;
    if (d->close_cb != NULL)
        return -ESHUTDOWN;
    file_work_t *fw = calloc(1, sizeof(*fw));
    if (fw == NULL)
        return -ENOMEM;
    fw->fd = d;
    fw->req = req;
    fw->op = op;
    fw->work.data = fw;
    req->error[0] = '\0';
    int rc = uv_queue_work(base->loop, &fw->work, run_work, after_work);
    if (rc < 0) {
        free(fw);
        return rc;
    }
    d->running++;
    return 0;
}

static int file_length(cp_dest_t *d, cp_dest_req_t *req)
{
    return submit(d, req, OP_LENGTH);
}

static int file_truncate(cp_dest_t *d, cp_dest_req_t *req)
{
    return submit(d, req, OP_TRUNCATE);
}

static int file_write(cp_dest_t *d, cp_dest_req_t *req)
{
    return submit(d, req, OP_WRITE);
}

static void file_close(cp_dest_t *base, cp_dest_close_cb cb)
{
    file_dest_t *d = (file_dest_t *)base;
    if (d->running > 0) {
        d->close_cb = cb; /* work already on a thread cannot be stopped: let it finish */
        return;
    }
    cb(base);
    free(d);
}

static const cp_dest_ops_t FILE_OPS = {
    .length = file_length,
    .truncate = file_truncate,
    .write = file_write,
    .close = file_close,
};

int cp_dest_file_open(uv_loop_t *loop, const char *url, const char *path,
                      const cp_dest_options_t *opts, cp_dest_t **out, char *err, size_t errlen)
{
    file_dest_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    if (n >= sizeof(d->root) || cp_dest_set_url(&d->base, url) < 0) {
        snprintf(err, errlen, "destination path too long");
        free(d);
        return -EINVAL;
    }
    memcpy(d->root, path, n);
    d->root[n] = '\0';
    d->base.ops = &FILE_OPS;
    d->base.loop = loop;
    d->sync = opts == NULL || opts->sync;
    *out = &d->base;
    return 0;
}
