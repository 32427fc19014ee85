/*
 * libFuzzer target: the HTTP request-head parser on arbitrary bytes, with the
 * server's limit and a small one, and on prefixes of the input as a client
 * could deliver it. Checks what the server relies on: results stay within the
 * input, an accepted head ends with its blank line, the error set is closed,
 * and a longer input never contradicts a shorter one.
 */
#include "fuzz.h"
#include "http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SMALL_MAX 64

static int within(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static void check(const char *buf, size_t len, size_t max, ssize_t n, const fw_http_req_t *req)
{
    size_t lim = len < max ? len : max;
    if (n == 0) {
        if (len >= max)
            abort(); /* "need more" past the limit would let a client grow it */
        return;
    }
    if (n < 0) {
        if (n != -EINVAL && n != -EMSGSIZE && n != -EPROTONOSUPPORT)
            abort();
        return;
    }
    size_t end = (size_t)n;
    if (end > lim)
        abort();
    /* The head ends with an empty line: "\n\n" or "\n\r\n". */
    if (end < 2 || buf[end - 1] != '\n' ||
        !(buf[end - 2] == '\n' || (end >= 3 && buf[end - 2] == '\r' && buf[end - 3] == '\n')))
        abort();
    if (req->method_len == 0 || !within(req->method_name, req->method_len, buf, end))
        abort();
    if (req->path_len == 0)
        abort();
    if (!within(req->path, req->path_len, buf, end) && !(req->path_len == 1 && req->path[0] == '/'))
        abort();
    if (req->version_minor < 0 || req->version_minor > 9)
        abort();
}

/* Parses an exact heap copy of buf[0..len), so ASan sees reads past len. */
static ssize_t parse_copy(const char *buf, size_t len, size_t max)
{
    char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        abort();
    if (len > 0)
        memcpy(copy, buf, len);
    fw_http_req_t req;
    ssize_t n = fw_http_parse_head(copy, len, max, &req);
    check(copy, len, max, n, &req);
    free(copy);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    fw_http_req_t req;

    ssize_t n = fw_http_parse_head(buf, size, FW_HTTP_HEAD_MAX, &req);
    check(buf, size, FW_HTTP_HEAD_MAX, n, &req);
    /* A small limit reaches the size paths often. A head complete within it
     * is the same head under the large limit. */
    ssize_t m = fw_http_parse_head(buf, size, SMALL_MAX, &req);
    check(buf, size, SMALL_MAX, m, &req);
    if (m > 0 && n != m)
        abort();
    if (n > 0 && n <= SMALL_MAX && m != n)
        abort();

    /* The server parses again as bytes arrive: every shorter input must say
     * "need more" or already give the same error. All prefixes of short
     * inputs, a sample of long ones. */
    size_t step = size <= 256 ? 1 : size / 32;
    for (size_t k = 0; k < size; k += step) {
        ssize_t r = parse_copy(buf, k, FW_HTTP_HEAD_MAX);
        if (r != 0 && r != n)
            abort();
        if (n > 0 && (k < (size_t)n ? r != 0 : r != n))
            abort();
    }
    return 0;
}
