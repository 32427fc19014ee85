/* pbtext: the ZooKeeper metadata text form, both directions, and strict parsing. */
#include "fwtest.h"

#include "pbtext.h"
#include "proto/meta.pb-c.h"

#include <errno.h>
#include <stdlib.h>

static char err[256];

static ProtobufCMessage *parse_ok(const ProtobufCMessageDescriptor *d, const char *text)
{
    ProtobufCMessage *m = NULL;
    int rc = fw_pbtext_parse(d, text, strlen(text), &m, err, sizeof(err));
    if (rc < 0)
        FWT_FAIL("parse of \"%s\" failed: %s", text, err);
    return m;
}

FWT_TEST(category_config_round_trip)
{
    Fwpb__CategoryConfig c = FWPB__CATEGORY_CONFIG__INIT;
    c.buckets = 8;
    c.has_roll_bytes = 1;
    c.roll_bytes = 1 << 20;
    c.has_codec = 1;
    c.codec = FWPB__CODEC__CODEC_NONE;
    fw_buf_t out = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_pbtext_format(&c.base, &out));
    FWT_ASSERT_STR_EQ((char *)out.data, "buckets = 8\nroll_bytes = 1048576\ncodec = CODEC_NONE\n");
    Fwpb__CategoryConfig *back =
        (Fwpb__CategoryConfig *)parse_ok(&fwpb__category_config__descriptor, (char *)out.data);
    FWT_ASSERT_UINT_EQ(back->buckets, 8);
    FWT_ASSERT(back->has_roll_bytes);
    FWT_ASSERT_UINT_EQ(back->roll_bytes, 1 << 20);
    FWT_ASSERT_INT_EQ(back->codec, FWPB__CODEC__CODEC_NONE);
    /* Unset optional fields keep their schema defaults. */
    FWT_ASSERT(!back->has_sync_interval_ms);
    FWT_ASSERT_UINT_EQ(back->sync_interval_ms, 5);
    FWT_ASSERT_UINT_EQ(back->max_record_bytes, 1048576);
    protobuf_c_message_free_unpacked(&back->base, NULL);
    fw_buf_free(&out);
}

FWT_TEST(strings_and_signed_round_trip)
{
    Fwpb__NodeInfo n = FWPB__NODE_INFO__INIT;
    n.kind = "calligraphus";
    n.id = "host-1.example";
    n.address = "[::1]:7000";
    n.version = "0.1.0 (test build)";
    n.has_started_ms = 1;
    n.started_ms = -5;
    fw_buf_t out = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_pbtext_format(&n.base, &out));
    Fwpb__NodeInfo *back =
        (Fwpb__NodeInfo *)parse_ok(&fwpb__node_info__descriptor, (char *)out.data);
    FWT_ASSERT_STR_EQ(back->kind, "calligraphus");
    FWT_ASSERT_STR_EQ(back->address, "[::1]:7000");
    FWT_ASSERT_STR_EQ(back->version, "0.1.0 (test build)");
    FWT_ASSERT(back->metrics_address == NULL);
    FWT_ASSERT_INT_EQ(back->started_ms, -5);
    protobuf_c_message_free_unpacked(&back->base, NULL);
    fw_buf_free(&out);
}

/* Formats a CategoryConfig with scribe_key_delimiter = value; returns its line. */
static const char *delimiter_line(const char *value, fw_buf_t *out)
{
    Fwpb__CategoryConfig c = FWPB__CATEGORY_CONFIG__INIT;
    c.buckets = 1;
    c.scribe_key_delimiter = (char *)value;
    fw_buf_reset(out);
    FWT_ASSERT_OK(fw_pbtext_format(&c.base, out));
    const char *line = strchr((char *)out->data, '\n');
    FWT_ASSERT(line != NULL);
    return line + 1;
}

/*
 * A string that would not read back the same as it is (a control byte, a
 * space at an end, a leading quote, not UTF-8) is quoted with C escapes, and
 * reads back to the same bytes; other strings are written as they are.
 */
FWT_TEST(strings_that_need_it_are_quoted)
{
    struct {
        const char *value;
        const char *line;
    } cases[] = {
        {":", "scribe_key_delimiter = :\n"},
        {"\\", "scribe_key_delimiter = \\\n"},
        {"a \"b\"", "scribe_key_delimiter = a \"b\"\n"},
        {"caf\xc3\xa9", "scribe_key_delimiter = caf\xc3\xa9\n"},
        {"", "scribe_key_delimiter = \n"},
        {"\x01", "scribe_key_delimiter = \"\\x01\"\n"},
        {"\t", "scribe_key_delimiter = \"\\t\"\n"},
        {" ", "scribe_key_delimiter = \" \"\n"},
        {"two\nlines\r", "scribe_key_delimiter = \"two\\nlines\\r\"\n"},
        {" padded", "scribe_key_delimiter = \" padded\"\n"},
        {"\"quoted\"", "scribe_key_delimiter = \"\\\"quoted\\\"\"\n"},
        {"\xff", "scribe_key_delimiter = \"\\xff\"\n"},
        {"\x7f\\", "scribe_key_delimiter = \"\\x7f\\\\\"\n"},
    };
    fw_buf_t out = FW_BUF_INIT;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        FWT_ASSERT_STR_EQ(delimiter_line(cases[i].value, &out), cases[i].line);
        Fwpb__CategoryConfig *back =
            (Fwpb__CategoryConfig *)parse_ok(&fwpb__category_config__descriptor, (char *)out.data);
        FWT_ASSERT_STR_EQ(back->scribe_key_delimiter, cases[i].value);
        protobuf_c_message_free_unpacked(&back->base, NULL);
    }
    /* What an operator may type: upper-case hex, spaces around the quotes. */
    Fwpb__CategoryConfig *c = (Fwpb__CategoryConfig *)parse_ok(
        &fwpb__category_config__descriptor, "buckets = 1\nscribe_key_delimiter =  \"\\x1F\"  \n");
    FWT_ASSERT_STR_EQ(c->scribe_key_delimiter, "\x1f");
    protobuf_c_message_free_unpacked(&c->base, NULL);
    /* A quoted value that does not read back the same whole line is refused. */
    char long_value[3000];
    memset(long_value, 1, sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    Fwpb__CategoryConfig cfg = FWPB__CATEGORY_CONFIG__INIT;
    cfg.buckets = 1;
    cfg.scribe_key_delimiter = long_value;
    fw_buf_reset(&out);
    FWT_ASSERT_INT_EQ(fw_pbtext_format(&cfg.base, &out), -EINVAL);
    fw_buf_free(&out);
}

FWT_TEST(bad_quoted_strings_are_refused)
{
    const char *values[] = {
        "\"",       "\"open",    "\"a\"b\"",  "\"\\\"",        "\"\\q\"",
        "\"\\x0\"", "\"\\xg1\"", "\"\\x00\"", "\"tab\there\"", "\"\\x1\"",
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "buckets = 1\nscribe_key_delimiter = %s\n", values[i]);
        ProtobufCMessage *m = NULL;
        int rc = fw_pbtext_parse(&fwpb__category_config__descriptor, text, strlen(text), &m, err,
                                 sizeof(err));
        if (rc != -EINVAL || m != NULL || strstr(err, "bad value") == NULL)
            FWT_FAIL("%s: rc %d, error \"%s\"", values[i], rc, err);
    }
}

FWT_TEST(comments_blank_lines_and_spacing)
{
    Fwpb__BucketMeta *m = (Fwpb__BucketMeta *)parse_ok(
        &fwpb__bucket_meta__descriptor,
        "# bucket 3\n\n   epoch=7  \nnext_segment_id =   18446744073709551615");
    FWT_ASSERT_UINT_EQ(m->epoch, 7);
    FWT_ASSERT_UINT_EQ(m->next_segment_id, UINT64_MAX);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

FWT_TEST(strict_errors)
{
    struct {
        const char *text;
        const char *needle;
    } cases[] = {
        {"buckets = 8\nbogus = 1\n", "line 2: unknown field \"bogus\""},
        {"buckets = 8\nbuckets = 9\n", "given twice"},
        {"roll_bytes = 5\n", "required field \"buckets\" is missing"},
        {"buckets = -1\n", "bad value \"-1\""},
        {"buckets = 4294967296\n", "bad value"},
        {"buckets = 8x\n", "bad value"},
        {"buckets = \n", "bad value"},
        {"buckets 8\n", "expected `name = value`"},
        {"buckets = 8\ncodec = CODEC_ZSTD\n", "bad value \"CODEC_ZSTD\""},
        {"buckets = 8\r\n", "control character"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ProtobufCMessage *m = NULL;
        int rc = fw_pbtext_parse(&fwpb__category_config__descriptor, cases[i].text,
                                 strlen(cases[i].text), &m, err, sizeof(err));
        if (rc != -EINVAL || m != NULL || strstr(err, cases[i].needle) == NULL)
            FWT_FAIL("\"%s\": rc %d, error \"%s\", want \"%s\"", cases[i].text, rc, err,
                     cases[i].needle);
    }
    /* A NUL inside the text is not a line terminator. */
    const char nul[] = "buckets = 8\0\n";
    ProtobufCMessage *m = NULL;
    FWT_ASSERT_INT_EQ(fw_pbtext_parse(&fwpb__category_config__descriptor, nul, sizeof(nul) - 1, &m,
                                      err, sizeof(err)),
                      -EINVAL);
}
