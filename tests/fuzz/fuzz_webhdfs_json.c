/*
 * libFuzzer target: the JSON reader for WebHDFS answers (copier/webhdfs_json.c),
 * which reads whatever a namenode, a datanode or anything in between sends.
 * Besides not crashing: a document is valid or not whatever path is asked
 * for, decoded strings stay inside their buffer and NUL-terminated, and an
 * integer read back as text is the number's own text.
 */
#include "fuzz.h"

#include "copier/webhdfs_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const P_BOOL[] = {"boolean"};
static const char *const P_LOC[] = {"Location"};
static const char *const P_LEN[] = {"FileStatus", "length"};
static const char *const P_TYPE[] = {"FileStatus", "type"};
static const char *const P_MSG[] = {"RemoteException", "message"};

static const struct {
    const char *const *path;
    size_t n;
} paths[] = {{P_BOOL, 1}, {P_LOC, 1}, {P_LEN, 2}, {P_TYPE, 2}, {P_MSG, 2}, {NULL, 0}};

static void check_str(const cp_wh_json_val_t *v)
{
    /* A small buffer too, so cutting is exercised; a canary after each. */
    static const size_t caps[] = {1, 2, 5, 64, 4096};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        size_t cap = caps[i];
        char *out = malloc(cap + 1);
        if (out == NULL)
            abort();
        out[cap] = 'Z';
        int rc = cp_wh_json_str(v, out, cap);
        if (out[cap] != 'Z' || memchr(out, '\0', cap) == NULL)
            abort();
        if (rc != 0 && rc != -ENOSPC && rc != -EINVAL)
            abort();
        if (rc == 0 && strlen(out) >= cap)
            abort();
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact heap copy, so ASan sees any read past the end. */
    char *doc = malloc(size ? size : 1);
    if (doc == NULL)
        return 0;
    memcpy(doc, data, size);

    int invalid = -1;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        cp_wh_json_val_t v;
        int rc = cp_wh_json_find(doc, size, paths[i].path, paths[i].n, &v);
        if (rc != 0 && rc != -ENOENT && rc != -EINVAL)
            abort();
        if (paths[i].n == 0 && rc == -ENOENT)
            abort(); /* a valid document always has a root */
        int is_invalid = rc == -EINVAL;
        if (invalid >= 0 && is_invalid != invalid)
            abort();
        invalid = is_invalid;
        if (rc != 0)
            continue;
        if (v.p < doc || v.len > size || v.p + v.len > doc + size)
            abort();
        /* A value found is itself a valid document. */
        cp_wh_json_val_t again;
        if (cp_wh_json_find(v.p, v.len, NULL, 0, &again) != 0 || again.len != v.len ||
            again.type != v.type)
            abort();
        int b;
        if ((cp_wh_json_bool(&v, &b) == 0) !=
            (v.type == CP_WH_JSON_TRUE || v.type == CP_WH_JSON_FALSE))
            abort();
        uint64_t n;
        if (cp_wh_json_u64(&v, &n) == 0) {
            char text[32];
            int k = snprintf(text, sizeof(text), "%" PRIu64, n);
            if ((size_t)k != v.len || memcmp(text, v.p, v.len) != 0)
                abort();
        }
        check_str(&v);
    }

    cp_wh_remote_exc_t exc;
    int rc = cp_wh_json_remote_exception(doc, size, &exc);
    if ((rc == -EINVAL) != (invalid == 1))
        abort();
    if (strnlen(exc.exception, sizeof(exc.exception)) == sizeof(exc.exception) ||
        strnlen(exc.java_class, sizeof(exc.java_class)) == sizeof(exc.java_class) ||
        strnlen(exc.message, sizeof(exc.message)) == sizeof(exc.message))
        abort();
    free(doc);
    return 0;
}
