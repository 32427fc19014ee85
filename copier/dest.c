/* Destination URLs and the names shared by every backend (see dest.h). */
#include "dest.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cp_dest_rel_path(char *out, size_t cap, const char *category, uint32_t bucket,
                     uint64_t segment_id)
{
    if (!fw_category_valid(category))
        return -EINVAL;
    char name[FW_SEG_NAME_LEN + 1];
    fw_seg_name(name, segment_id);
    int n = snprintf(out, cap, "%s/%" PRIu32 "/%s", category, bucket, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

void cp_dest_error(cp_dest_req_t *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req->error, sizeof(req->error), fmt, ap);
    va_end(ap);
}

int cp_dest_set_url(cp_dest_t *d, const char *url)
{
    size_t len = strlen(url);
    if (len >= sizeof(d->url))
        return -ENAMETOOLONG;
    memcpy(d->url, url, len + 1);
    return fw_dest_key(url, d->key, sizeof(d->key));
}

/* "host:port/path" of a webhdfs URL; the path must be absolute. */
static int parse_webhdfs(const char *rest, char *host, size_t host_cap, int *port,
                         const char **path, char *err, size_t errlen)
{
    const char *slash = strchr(rest, '/');
    const char *colon = strchr(rest, ':');
    if (slash == NULL || colon == NULL || colon > slash) {
        snprintf(err, errlen, "a webhdfs URL is webhdfs://HOST:PORT/PATH");
        return -EINVAL;
    }
    size_t hlen = (size_t)(colon - rest);
    if (hlen == 0 || hlen >= host_cap) {
        snprintf(err, errlen, "webhdfs URL: bad host");
        return -EINVAL;
    }
    memcpy(host, rest, hlen);
    host[hlen] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end != slash || p < 1 || p > 65535) {
        snprintf(err, errlen, "webhdfs URL: bad port");
        return -EINVAL;
    }
    *port = (int)p;
    *path = slash;
    return 0;
}

int cp_dest_open(uv_loop_t *loop, const char *url, const cp_dest_options_t *opts, cp_dest_t **out,
                 char *err, size_t errlen)
{
    *out = NULL;
    if (strncmp(url, "file://", 7) == 0) {
        const char *path = url + 7;
        if (path[0] != '/') {
            snprintf(err, errlen, "a file URL is file:///ABSOLUTE/PATH (three slashes)");
            return -EINVAL;
        }
        return cp_dest_file_open(loop, url, path, opts, out, err, errlen);
    }
    if (strncmp(url, "webhdfs://", 10) == 0) {
        char host[256];
        int port;
        const char *path;
        int rc = parse_webhdfs(url + 10, host, sizeof(host), &port, &path, err, errlen);
        if (rc < 0)
            return rc;
        return cp_dest_webhdfs_open(loop, url, host, port, path, opts, out, err, errlen);
    }
    snprintf(err, errlen, "unknown destination %s: use file:///PATH or webhdfs://HOST:PORT/PATH",
             url);
    return -EINVAL;
}
