/*
 * The JSON reader for WebHDFS answers: the shapes WebHDFS sends, lookups by
 * path, integer and string decoding, and documents it must refuse.
 */
#include "fwtest.h"

#include "copier/webhdfs_json.h"

#include <errno.h>
#include <stdlib.h>

/* Every lookup runs on an exact heap copy, so ASan sees a read past the end. */
static int find(const char *doc, const char *const *path, size_t n, cp_wh_json_val_t *v)
{
    static char *copy;
    free(copy);
    size_t len = strlen(doc);
    copy = malloc(len ? len : 1);
    FWT_ASSERT(copy != NULL);
    memcpy(copy, doc, len);
    return cp_wh_json_find(copy, len, path, n, v);
}

static const char *const P_BOOL[] = {"boolean"};
static const char *const P_LOC[] = {"Location"};
static const char *const P_LEN[] = {"FileStatus", "length"};

FWT_TEST(webhdfs_answers)
{
    cp_wh_json_val_t v;
    int b = -1;
    FWT_ASSERT_OK(find("{\"boolean\": true}", P_BOOL, 1, &v));
    FWT_ASSERT_OK(cp_wh_json_bool(&v, &b));
    FWT_ASSERT_INT_EQ(b, 1);
    FWT_ASSERT_OK(find(" {\"boolean\":false}\r\n", P_BOOL, 1, &v));
    FWT_ASSERT_OK(cp_wh_json_bool(&v, &b));
    FWT_ASSERT_INT_EQ(b, 0);

    const char *status = "{\"FileStatus\":{\"accessTime\":0,\"blockSize\":134217728,"
                         "\"length\":24930,\"owner\":\"webuser\",\"type\":\"FILE\","
                         "\"nested\":{\"length\":1},\"list\":[{\"length\":2}]}}";
    uint64_t n = 0;
    FWT_ASSERT_OK(find(status, P_LEN, 2, &v));
    FWT_ASSERT_OK(cp_wh_json_u64(&v, &n));
    FWT_ASSERT_UINT_EQ(n, 24930);
    /* A key of the same name deeper down, or at the top, is not the path. */
    FWT_ASSERT_INT_EQ(find("{\"length\":5,\"FileStatus\":{\"x\":{\"length\":6}}}", P_LEN, 2, &v),
                      -ENOENT);
    /* The first of two equal keys counts. */
    FWT_ASSERT_OK(find("{\"FileStatus\":{\"length\":7,\"length\":8}}", P_LEN, 2, &v));
    FWT_ASSERT_OK(cp_wh_json_u64(&v, &n));
    FWT_ASSERT_UINT_EQ(n, 7);

    char loc[128];
    FWT_ASSERT_OK(cp_wh_json_get_str("{\"Location\":\"http://dn:9864/webhdfs/v1/a?op=APPEND\"}", 52,
                                     P_LOC, 1, loc, sizeof(loc)));
    FWT_ASSERT_STR_EQ(loc, "http://dn:9864/webhdfs/v1/a?op=APPEND");

    cp_wh_remote_exc_t exc;
    const char *err = "{\"RemoteException\":{\"exception\":\"FileNotFoundException\","
                      "\"javaClassName\":\"java.io.FileNotFoundException\","
                      "\"message\":\"File does not exist: /a\\/b\"}}";
    FWT_ASSERT_OK(cp_wh_json_remote_exception(err, strlen(err), &exc));
    FWT_ASSERT_STR_EQ(exc.exception, "FileNotFoundException");
    FWT_ASSERT_STR_EQ(exc.java_class, "java.io.FileNotFoundException");
    FWT_ASSERT_STR_EQ(exc.message, "File does not exist: /a/b");
    FWT_ASSERT_INT_EQ(cp_wh_json_remote_exception("{\"boolean\":true}", 16, &exc), -ENOENT);
    FWT_ASSERT_INT_EQ(cp_wh_json_remote_exception("<html>", 6, &exc), -EINVAL);
}

FWT_TEST(integers)
{
    static const struct {
        const char *doc;
        int rc;
        uint64_t want;
    } cases[] = {
        {"0", 0, 0},
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551616", -ERANGE, 0},
        {"99999999999999999999999", -ERANGE, 0},
        {"-1", -EINVAL, 0},
        {"1.0", -EINVAL, 0},
        {"1e3", -EINVAL, 0},
        {"\"12\"", -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cp_wh_json_val_t v;
        uint64_t n = 0;
        FWT_ASSERT_OK(find(cases[i].doc, NULL, 0, &v));
        int rc = cp_wh_json_u64(&v, &n);
        if (rc != cases[i].rc || (rc == 0 && n != cases[i].want))
            FWT_FAIL("%s: rc %d n %llu", cases[i].doc, rc, (unsigned long long)n);
    }
}

FWT_TEST(strings)
{
    cp_wh_json_val_t v;
    char out[64];
    FWT_ASSERT_OK(find("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", NULL, 0, &v));
    FWT_ASSERT_OK(cp_wh_json_str(&v, out, sizeof(out)));
    FWT_ASSERT_STR_EQ(out, "a\"b\\c/d\b\f\n\r\t");
    /* \u escapes: BMP, a surrogate pair, lone surrogates. */
    FWT_ASSERT_OK(find("\"\\u00e9\\u20AC\\ud83d\\ude00|\\ud800|\\udc00\"", NULL, 0, &v));
    FWT_ASSERT_OK(cp_wh_json_str(&v, out, sizeof(out)));
    FWT_ASSERT_STR_EQ(out, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\xef\xbf\xbd|\xef\xbf\xbd");
    /* A NUL cannot be carried. */
    FWT_ASSERT_OK(find("\"a\\u0000b\"", NULL, 0, &v));
    FWT_ASSERT_INT_EQ(cp_wh_json_str(&v, out, sizeof(out)), -EINVAL);
    /* Cut to fit, never inside a UTF-8 sequence. */
    FWT_ASSERT_OK(find("\"ab\\u00e9\"", NULL, 0, &v));
    FWT_ASSERT_INT_EQ(cp_wh_json_str(&v, out, 4), -ENOSPC);
    FWT_ASSERT_STR_EQ(out, "ab");
    FWT_ASSERT_OK(cp_wh_json_str(&v, out, 5));
    FWT_ASSERT_INT_EQ(cp_wh_json_str(&v, out, 1), -ENOSPC);
    FWT_ASSERT_STR_EQ(out, "");
    /* A key with escapes matches its decoded form. */
    FWT_ASSERT_OK(find("{\"bool\\u0065an\":true}", P_BOOL, 1, &v));
}

FWT_TEST(refuses_invalid_documents)
{
    static const char *const bad[] = {
        "",
        "   ",
        "{",
        "{\"boolean\":true",
        "{\"boolean\":true}}",
        "{\"boolean\":true} x",
        "{\"boolean\" true}",
        "{\"boolean\":tru}",
        "{\"boolean\":True}",
        "{boolean:true}",
        "{\"a\":1,}",
        "[1,]",
        "[1 2]",
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "+1",
        "\"abc",
        "\"a\\x\"",
        "\"\\u12G4\"",
        "\"\\u12\"",
        "\"tab\there\"",
        "{\"a\":1}{\"b\":2}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cp_wh_json_val_t v;
        int rc = find(bad[i], P_BOOL, 1, &v);
        if (rc != -EINVAL)
            FWT_FAIL("\"%s\": %d, want -EINVAL", bad[i], rc);
    }
    /* Nesting: CP_WH_JSON_DEPTH levels inside the top one are fine, one more is not. */
    char deep[256];
    size_t k = 0;
    for (int i = 0; i <= CP_WH_JSON_DEPTH; i++)
        deep[k++] = '[';
    for (int i = 0; i <= CP_WH_JSON_DEPTH; i++)
        deep[k++] = ']';
    deep[k] = '\0';
    cp_wh_json_val_t v;
    FWT_ASSERT_OK(find(deep, NULL, 0, &v));
    memmove(deep + 1, deep, k + 1);
    deep[0] = '[';
    strcat(deep, "]");
    FWT_ASSERT_INT_EQ(find(deep, NULL, 0, &v), -EINVAL);
    FWT_ASSERT_INT_EQ(cp_wh_json_find(NULL, 0, NULL, 0, &v), -EINVAL);
}
