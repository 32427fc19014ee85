/*
 * freeway category create|list|describe|alter|delete: the categories and
 * their buckets in ZooKeeper. A category is categories/<name> (its config,
 * in pbtext form) plus buckets/<name>/<b> for each bucket (epoch and next
 * segment id). Bucket nodes are created before the category node, so a
 * writer that sees a category finds all its buckets; buckets only grow.
 */
#include "cli.h"
#include "zkutil.h"

#include "block.h"
#include "config.h"
#include "names.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define UNSET_U64 UINT64_MAX
#define UNSET_I64 INT64_MIN

typedef struct category_cfg_s {
    char *zk;
    char *zk_auth;
    int64_t timeout;
    int64_t buckets;
    uint64_t roll_bytes;
    int64_t roll_age;
    int64_t sync_interval;
    int64_t retention;
    uint64_t max_record_bytes;
    char *codec;
    char *scribe_key_delimiter;
} category_cfg_t;

static const fw_option_t category_opts[] = {
    {"zk", FW_OPT_STRING, offsetof(category_cfg_t, zk), "${FREEWAY_ZK:-127.0.0.1:2181/freeway}",
     "HOSTS[/chroot]", "ZooKeeper ensemble and chroot"},
    {"zk-auth", FW_OPT_STRING, offsetof(category_cfg_t, zk_auth), "${FREEWAY_ZK_AUTH:-}",
     "USER:PASSWORD",
     "ZooKeeper digest identity (the daemons'): needed to change a tree created with one"},
    {"timeout", FW_OPT_DURATION, offsetof(category_cfg_t, timeout), "10s", "DURATION",
     "how long to wait for ZooKeeper"},
    {"buckets", FW_OPT_INT, offsetof(category_cfg_t, buckets), NULL, "N",
     "number of buckets (1..65536; alter may only grow it)"},
    {"roll-bytes", FW_OPT_SIZE, offsetof(category_cfg_t, roll_bytes), NULL, "SIZE",
     "roll a segment at this size (schema default 256M)"},
    {"roll-age", FW_OPT_DURATION, offsetof(category_cfg_t, roll_age), NULL, "DURATION",
     "roll a segment at this age (schema default 1h)"},
    {"sync-interval", FW_OPT_DURATION, offsetof(category_cfg_t, sync_interval), NULL, "DURATION",
     "group-commit window for durable acks (schema default 5ms)"},
    {"retention", FW_OPT_DURATION, offsetof(category_cfg_t, retention), NULL, "DURATION",
     "keep copied segments this long (schema default 168h)"},
    {"max-record-bytes", FW_OPT_SIZE, offsetof(category_cfg_t, max_record_bytes), NULL, "SIZE",
     "largest record accepted (schema default 1M, at most 16M)"},
    {"codec", FW_OPT_STRING, offsetof(category_cfg_t, codec), NULL, "lz4|none",
     "producers' default compression (schema default lz4)"},
    {"scribe-key-delimiter", FW_OPT_STRING, offsetof(category_cfg_t, scribe_key_delimiter), NULL,
     "CHAR",
     "a Scribe message's key is its text before this byte: one character or \\t \\n \\r "
     "\\\\ \\xHH; '' for no key (the default)"},
    FW_OPTIONS_END,
};

static void usage(FILE *out)
{
    fprintf(out, "usage: freeway category create NAME --buckets N [OPTIONS]\n"
                 "       freeway category list\n"
                 "       freeway category describe NAME\n"
                 "       freeway category alter NAME [OPTIONS]\n"
                 "       freeway category delete NAME\n\n"
                 "NAME is [A-Za-z0-9_.-]{1,128}. Buckets can grow, never shrink.\n\noptions:\n");
    fw_config_usage(category_opts, out);
}

/* Copies the options the user gave into c; checks ranges. 0, or -1 after a message. */
static int apply_options(const category_cfg_t *o, Fwpb__CategoryConfig *c)
{
    if (o->buckets != UNSET_I64) {
        if (o->buckets < 1 || o->buckets > FW_BUCKETS_MAX) {
            fprintf(stderr, "freeway category: --buckets must be 1..%d\n", FW_BUCKETS_MAX);
            return -1;
        }
        c->buckets = (uint32_t)o->buckets;
    }
    if (o->roll_bytes != UNSET_U64) {
        if (o->roll_bytes < (1u << 20)) {
            fprintf(stderr, "freeway category: --roll-bytes must be at least 1M\n");
            return -1;
        }
        c->has_roll_bytes = 1;
        c->roll_bytes = o->roll_bytes;
    }
    if (o->roll_age != UNSET_I64) {
        if (o->roll_age < 1000) {
            fprintf(stderr, "freeway category: --roll-age must be at least 1s\n");
            return -1;
        }
        c->has_roll_age_ms = 1;
        c->roll_age_ms = (uint64_t)o->roll_age;
    }
    if (o->sync_interval != UNSET_I64) {
        if (o->sync_interval > 10000) {
            fprintf(stderr, "freeway category: --sync-interval must be at most 10s\n");
            return -1;
        }
        c->has_sync_interval_ms = 1;
        c->sync_interval_ms = (uint32_t)o->sync_interval;
    }
    if (o->retention != UNSET_I64) {
        c->has_retention_ms = 1;
        c->retention_ms = (uint64_t)o->retention;
    }
    if (o->max_record_bytes != UNSET_U64) {
        if (o->max_record_bytes == 0 || o->max_record_bytes > FW_RECORD_MAX_HARD) {
            fprintf(stderr, "freeway category: --max-record-bytes must be 1..16M\n");
            return -1;
        }
        c->has_max_record_bytes = 1;
        c->max_record_bytes = (uint32_t)o->max_record_bytes;
    }
    if (o->codec != NULL) {
        c->has_codec = 1;
        if (strcmp(o->codec, "lz4") == 0)
            c->codec = FWPB__CODEC__CODEC_LZ4;
        else if (strcmp(o->codec, "none") == 0)
            c->codec = FWPB__CODEC__CODEC_NONE;
        else {
            fprintf(stderr, "freeway category: --codec must be lz4 or none\n");
            return -1;
        }
    }
    if (o->scribe_key_delimiter != NULL) {
        int byte = fw_cli_byte_parse(o->scribe_key_delimiter);
        if (byte == -EINVAL) {
            fprintf(stderr,
                    "freeway category: --scribe-key-delimiter wants one byte: a character or "
                    "an escape \\t \\n \\r \\\\ \\xHH (not \\x00), or '' for no key; "
                    "\"%s\" is not one\n",
                    o->scribe_key_delimiter);
            return -1;
        }
        /* c's strings are malloc'd: its owner frees them (free_unpacked for a read config). */
        char *value = NULL;
        if (byte >= 0 && (value = malloc(2)) == NULL) {
            fprintf(stderr, "freeway category: out of memory\n");
            return -1;
        }
        if (value != NULL) {
            value[0] = (char)byte;
            value[1] = '\0';
        }
        free(c->scribe_key_delimiter);
        c->scribe_key_delimiter = value; /* NULL: the field is removed */
    }
    return 0;
}

/* Bucket nodes created per multi: 10,000 one at a time took ~10 s of round trips. */
#define CREATE_BATCH 256

/*
 * Creates buckets/<name>/<b> for b in [from, b + n) in one multi; a batch that
 * meets an existing node (an interrupted earlier run) is done one by one,
 * keeping what exists. A ZooKeeper error code.
 */
static int create_batch(fw_cli_zk_t *z, const char *name, uint32_t from, uint32_t n,
                        const fw_buf_t *text)
{
    static char paths[CREATE_BATCH][512];
    zoo_op_t ops[CREATE_BATCH];
    zoo_op_result_t results[CREATE_BATCH];
    char rel[300];
    for (uint32_t i = 0; i < n; i++) {
        snprintf(rel, sizeof(rel), "buckets/%s/%" PRIu32, name, from + i);
        fw_cli_zk_path(z, paths[i], sizeof(paths[i]), rel);
        zoo_create_op_init(&ops[i], paths[i], (const char *)text->data, (int)text->len, &z->acl, 0,
                           NULL, 0);
    }
    int rc = zoo_multi(z->zh, (int)n, ops, results);
    if (rc != ZNODEEXISTS)
        return rc;
    rc = ZOK;
    for (uint32_t i = 0; rc == ZOK && i < n; i++) {
        rc = zoo_create(z->zh, paths[i], (const char *)text->data, (int)text->len, &z->acl, 0, NULL,
                        0);
        if (rc == ZNODEEXISTS)
            rc = ZOK;
    }
    return rc;
}

/* Creates buckets/<name>/<b> for b in [from, to) (existing ones are kept). */
static int create_buckets(fw_cli_zk_t *z, const char *name, uint32_t from, uint32_t to)
{
    char path[512], rel[300];
    snprintf(rel, sizeof(rel), "buckets/%s", name);
    fw_cli_zk_path(z, path, sizeof(path), rel);
    int rc = fw_cli_zk_ensure(z, path);
    Fwpb__BucketMeta meta = FWPB__BUCKET_META__INIT;
    meta.epoch = 0;
    meta.next_segment_id = 1;
    fw_buf_t text = FW_BUF_INIT;
    if (rc == ZOK && fw_pbtext_format(&meta.base, &text) < 0)
        rc = ZSYSTEMERROR;
    for (uint32_t b = from; rc == ZOK && b < to; b += CREATE_BATCH) {
        uint32_t n = to - b < CREATE_BATCH ? to - b : CREATE_BATCH;
        rc = create_batch(z, name, b, n, &text);
    }
    fw_buf_free(&text);
    if (rc != ZOK)
        fprintf(stderr, "freeway category: creating buckets of %s: %s\n", name, zerror(rc));
    return rc == ZOK ? 0 : -1;
}

/* Reads categories/<name>; 0, 1 if it does not exist, -1 after a message. */
static int read_category(fw_cli_zk_t *z, const char *name, Fwpb__CategoryConfig **out,
                         struct Stat *st)
{
    char path[512], rel[300];
    static char buf[1 << 16];
    int len = sizeof(buf);
    snprintf(rel, sizeof(rel), "categories/%s", name);
    fw_cli_zk_path(z, path, sizeof(path), rel);
    int rc = zoo_get(z->zh, path, 0, buf, &len, st);
    if (rc == ZNONODE)
        return 1;
    if (rc != ZOK) {
        fprintf(stderr, "freeway category: reading %s: %s\n", path, zerror(rc));
        return -1;
    }
    char err[256];
    ProtobufCMessage *m;
    if (fw_pbtext_parse(&fwpb__category_config__descriptor, buf, len > 0 ? (size_t)len : 0, &m, err,
                        sizeof(err)) < 0) {
        fprintf(stderr, "freeway category: %s holds a malformed config: %s\n", path, err);
        return -1;
    }
    *out = (Fwpb__CategoryConfig *)m;
    return 0;
}

static int write_category(fw_cli_zk_t *z, const char *name, const Fwpb__CategoryConfig *c,
                          int create, int version)
{
    char path[512], rel[300];
    fw_buf_t text = FW_BUF_INIT;
    snprintf(rel, sizeof(rel), "categories/%s", name);
    fw_cli_zk_path(z, path, sizeof(path), rel);
    if (fw_pbtext_format(&c->base, &text) < 0) {
        fw_buf_free(&text);
        return -1;
    }
    int rc;
    if (create) {
        char parent[512];
        fw_cli_zk_path(z, parent, sizeof(parent), "categories");
        rc = fw_cli_zk_ensure(z, parent);
        if (rc == ZOK)
            rc = zoo_create(z->zh, path, (char *)text.data, (int)text.len, &z->acl, 0, NULL, 0);
    } else {
        /* Conditional on the version read: a concurrent alter is not overwritten. */
        rc = zoo_set(z->zh, path, (char *)text.data, (int)text.len, version);
    }
    fw_buf_free(&text);
    if (rc == ZNODEEXISTS)
        fprintf(stderr, "freeway category: %s already exists\n", name);
    else if (rc == ZBADVERSION)
        fprintf(stderr, "freeway category: %s changed meanwhile; run the command again\n", name);
    else if (rc != ZOK)
        fprintf(stderr, "freeway category: writing %s: %s\n", path, zerror(rc));
    return rc == ZOK ? 0 : -1;
}

static int cmd_create(fw_cli_zk_t *z, const char *name, const category_cfg_t *o)
{
    Fwpb__CategoryConfig c = FWPB__CATEGORY_CONFIG__INIT;
    if (o->buckets == UNSET_I64) {
        fprintf(stderr, "freeway category create: --buckets N is required\n");
        return 2;
    }
    int status = 1;
    Fwpb__CategoryConfig *old;
    struct Stat st;
    int rc;
    if (apply_options(o, &c) < 0) {
        status = 2;
    } else if ((rc = read_category(z, name, &old, &st)) == 0) {
        protobuf_c_message_free_unpacked(&old->base, NULL);
        fprintf(stderr, "freeway category: %s already exists\n", name);
    } else if (rc > 0 && create_buckets(z, name, 0, c.buckets) == 0 &&
               write_category(z, name, &c, 1, -1) == 0) {
        printf("created category %s with %" PRIu32 " buckets\n", name, c.buckets);
        status = 0;
    }
    free(c.scribe_key_delimiter);
    return status;
}

static int cmd_alter(fw_cli_zk_t *z, const char *name, const category_cfg_t *o)
{
    Fwpb__CategoryConfig *c;
    struct Stat st;
    int rc = read_category(z, name, &c, &st);
    if (rc != 0) {
        if (rc == 1)
            fprintf(stderr, "freeway category: no category %s\n", name);
        return 1;
    }
    uint32_t before = c->buckets;
    int status = 1;
    if (apply_options(o, c) < 0) {
        status = 2;
    } else if (c->buckets < before) {
        fprintf(stderr,
                "freeway category: %s has %" PRIu32 " buckets; buckets can grow, never shrink\n",
                name, before);
        status = 2;
    } else if (create_buckets(z, name, before, c->buckets) == 0 &&
               write_category(z, name, c, 0, st.version) == 0) {
        printf("altered category %s (%" PRIu32 " buckets)\n", name, c->buckets);
        status = 0;
    }
    protobuf_c_message_free_unpacked(&c->base, NULL);
    return status;
}

static int cmd_describe(fw_cli_zk_t *z, const char *name)
{
    Fwpb__CategoryConfig *c;
    struct Stat st;
    int rc = read_category(z, name, &c, &st);
    if (rc != 0) {
        if (rc == 1)
            fprintf(stderr, "freeway category: no category %s\n", name);
        return 1;
    }
    /* Print every field, defaults included, so the reader sees what is in force. */
    c->has_roll_bytes = c->has_roll_age_ms = c->has_sync_interval_ms = 1;
    c->has_retention_ms = c->has_max_record_bytes = c->has_codec = 1;
    fw_buf_t text = FW_BUF_INIT;
    int ok = fw_pbtext_format(&c->base, &text) == 0;
    if (ok)
        printf("category = %s\n%s", name, (char *)text.data);
    const char *d = c->scribe_key_delimiter;
    if (ok && d != NULL && d[0] != '\0' && d[1] != '\0')
        fprintf(stderr,
                "freeway category: %s: scribe_key_delimiter is not one byte; the writers take it "
                "as none (fix it with alter --scribe-key-delimiter)\n",
                name);
    fw_buf_free(&text);
    protobuf_c_message_free_unpacked(&c->base, NULL);
    return ok ? 0 : 1;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_list(fw_cli_zk_t *z)
{
    char path[512];
    struct String_vector names = {0, NULL};
    fw_cli_zk_path(z, path, sizeof(path), "categories");
    int rc = zoo_get_children(z->zh, path, 0, &names);
    if (rc == ZNONODE)
        return 0;
    if (rc != ZOK) {
        fprintf(stderr, "freeway category: listing %s: %s\n", path, zerror(rc));
        return 1;
    }
    qsort(names.data, (size_t)names.count, sizeof(char *), compare_names);
    for (int i = 0; i < names.count; i++) {
        Fwpb__CategoryConfig *c;
        struct Stat st;
        if (read_category(z, names.data[i], &c, &st) == 0) {
            printf("%-40s buckets=%" PRIu32, names.data[i], c->buckets);
            const char *d = c->scribe_key_delimiter;
            if (d != NULL && d[0] != '\0') {
                char shown[16];
                if (d[1] == '\0')
                    fw_cli_byte_format((unsigned char)d[0], shown, sizeof(shown));
                else
                    snprintf(shown, sizeof(shown), "invalid");
                printf(" scribe_key_delimiter=%s", shown);
            }
            printf("\n");
            protobuf_c_message_free_unpacked(&c->base, NULL);
        }
    }
    deallocate_String_vector(&names);
    return 0;
}

/* Deletes path and everything under it; a ZooKeeper rc. */
static int delete_tree(zhandle_t *zh, const char *path)
{
    struct String_vector kids = {0, NULL};
    int rc = zoo_get_children(zh, path, 0, &kids);
    if (rc == ZNONODE)
        return ZOK;
    for (int i = 0; rc == ZOK && i < kids.count; i++) {
        char child[1024];
        snprintf(child, sizeof(child), "%s/%s", path, kids.data[i]);
        rc = delete_tree(zh, child);
    }
    deallocate_String_vector(&kids);
    if (rc == ZOK)
        rc = zoo_delete(zh, path, -1);
    return rc == ZNONODE ? ZOK : rc;
}

static int cmd_delete(fw_cli_zk_t *z, const char *name)
{
    char path[512], rel[300];
    snprintf(rel, sizeof(rel), "categories/%s", name);
    fw_cli_zk_path(z, path, sizeof(path), rel);
    int rc = zoo_delete(z->zh, path, -1);
    if (rc == ZNONODE) {
        fprintf(stderr, "freeway category: no category %s\n", name);
        return 1;
    }
    if (rc != ZOK) {
        fprintf(stderr, "freeway category: deleting %s: %s\n", path, zerror(rc));
        return 1;
    }
    /* The category is gone for everyone now; its bucket metadata follows. */
    snprintf(rel, sizeof(rel), "buckets/%s", name);
    fw_cli_zk_path(z, path, sizeof(path), rel);
    rc = delete_tree(z->zh, path);
    if (rc != ZOK)
        fprintf(stderr, "freeway category: %s deleted, but %s remains (%s); writers release it\n",
                name, path, zerror(rc));
    printf("deleted category %s (segment files on disk are kept)\n", name);
    return 0;
}

int fw_cli_category(int argc, char **argv)
{
    category_cfg_t o;
    memset(&o, 0, sizeof(o));
    o.buckets = o.roll_age = o.sync_interval = o.retention = UNSET_I64;
    o.roll_bytes = o.max_record_bytes = UNSET_U64;
    char err[512];
    char **rest;
    int nrest;
    int rc = fw_config_parse(category_opts, &o, argc, argv, &rest, &nrest, err, sizeof(err));
    if ((rc = fw_cli_parsed("category", rc, err, usage)) >= 0) {
        fw_config_free(category_opts, &o);
        return rc;
    }
    const char *verb = nrest > 0 ? rest[0] : "";
    int wants_name = strcmp(verb, "list") != 0;
    int known = !strcmp(verb, "create") || !strcmp(verb, "list") || !strcmp(verb, "describe") ||
                !strcmp(verb, "alter") || !strcmp(verb, "delete");
    int status = 2;
    if (!known || nrest != (wants_name ? 2 : 1)) {
        usage(stderr);
    } else if (wants_name && !fw_category_valid(rest[1])) {
        fprintf(stderr, "freeway category: \"%s\" is not a valid name ([A-Za-z0-9_.-]{1,128})\n",
                rest[1]);
    } else {
        fw_cli_zk_t z = {0};
        /* Only create makes the tree; the other verbs act on an existing one. */
        if (!strcmp(verb, "create"))
            rc = fw_cli_zk_connect_create(&z, o.zk, o.zk_auth, (int)o.timeout);
        else
            rc = fw_cli_zk_connect(&z, o.zk, o.zk_auth, (int)o.timeout);
        if (rc < 0) {
            status = 1;
        } else {
            if (!strcmp(verb, "create"))
                status = cmd_create(&z, rest[1], &o);
            else if (!strcmp(verb, "list"))
                status = cmd_list(&z);
            else if (!strcmp(verb, "describe"))
                status = cmd_describe(&z, rest[1]);
            else if (!strcmp(verb, "alter"))
                status = cmd_alter(&z, rest[1], &o);
            else
                status = cmd_delete(&z, rest[1]);
            fw_cli_zk_close(&z);
        }
    }
    fw_config_free(category_opts, &o);
    return status;
}
