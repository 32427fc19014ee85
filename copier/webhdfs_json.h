/*
 * A small JSON reader for the few answers WebHDFS gives the copier:
 * {"boolean":true}, {"Location":"http://..."}, {"FileStatus":{"length":N,...}}
 * and {"RemoteException":{"exception":...,"javaClassName":...,"message":...}}.
 * The bytes come from the network, so the whole document is checked against
 * JSON's grammar (RFC 8259, nesting at most CP_WH_JSON_DEPTH deep) before any
 * value in it is trusted. It allocates nothing and knows nothing of HTTP.
 */
#ifndef CP_WEBHDFS_JSON_H
#define CP_WEBHDFS_JSON_H

#include <stddef.h>
#include <stdint.h>

/* Deeper documents are refused (recursion bound; WebHDFS answers are 2 deep). */
#define CP_WH_JSON_DEPTH 32

typedef enum {
    CP_WH_JSON_NULL,
    CP_WH_JSON_FALSE,
    CP_WH_JSON_TRUE,
    CP_WH_JSON_NUMBER,
    CP_WH_JSON_STRING,
    CP_WH_JSON_OBJECT,
    CP_WH_JSON_ARRAY,
} cp_wh_json_type_t;

/* One value inside a document: its type and its bytes (a string with its quotes). */
typedef struct cp_wh_json_val_s {
    cp_wh_json_type_t type;
    const char *p;
    size_t len;
} cp_wh_json_val_t;

/*
 * Finds the value at path (object keys from the top, e.g. {"FileStatus",
 * "length"}; npath 0 = the whole document) in doc[0..len). If a key appears
 * twice in one object, the first one counts. 0 and *out; -ENOENT if doc is
 * valid JSON without that value; -EINVAL if doc is not valid JSON (whatever
 * the path).
 */
int cp_wh_json_find(const char *doc, size_t len, const char *const *path, size_t npath,
                    cp_wh_json_val_t *out);

/* A true or false value: 0 and *out (1 or 0), or -EINVAL for another type. */
int cp_wh_json_bool(const cp_wh_json_val_t *v, int *out);

/*
 * A number that is a plain non-negative integer ("123", not "1e3" or "-1"):
 * 0 and *out; -EINVAL for another type or form, -ERANGE above UINT64_MAX.
 */
int cp_wh_json_u64(const cp_wh_json_val_t *v, uint64_t *out);

/*
 * A string value decoded (escapes resolved, \u escapes as UTF-8, a lone
 * surrogate as U+FFFD) into out[0..cap), always NUL-terminated when cap > 0.
 * 0; -EINVAL for another type or a string holding \u0000; -ENOSPC if it did
 * not fit (out then holds as much as fits, cut before a UTF-8 sequence).
 */
int cp_wh_json_str(const cp_wh_json_val_t *v, char *out, size_t cap);

/* Shorthands: find, then read as above (-ENOENT if missing). */
int cp_wh_json_get_bool(const char *doc, size_t len, const char *const *path, size_t npath,
                        int *out);
int cp_wh_json_get_u64(const char *doc, size_t len, const char *const *path, size_t npath,
                       uint64_t *out);
int cp_wh_json_get_str(const char *doc, size_t len, const char *const *path, size_t npath,
                       char *out, size_t cap);

/* The fields of a WebHDFS error answer, each "" when absent, cut to fit. */
typedef struct cp_wh_remote_exc_s {
    char exception[128];
    char java_class[256];
    char message[512];
} cp_wh_remote_exc_t;

/*
 * Reads {"RemoteException":{...}}: 0 if doc is one (with at least the
 * exception or the message), -ENOENT if it is valid JSON but not one,
 * -EINVAL if it is not JSON.
 */
int cp_wh_json_remote_exception(const char *doc, size_t len, cp_wh_remote_exc_t *out);

#endif
