/* The `freeway` command line: one function per command, each its own main. */
#ifndef FW_CLI_H
#define FW_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FW_VERSION "0.1.0"

/* freeway verify PATH...: checks segment files; 0 clean, 1 damage, 2 usage. */
int fw_cli_verify(int argc, char **argv);

/* freeway send -c CATEGORY: stdin's lines as records; 0 all acked, 1 some failed, 2 usage. */
int fw_cli_send(int argc, char **argv);

/* freeway category create|list|describe|alter|delete: categories in ZooKeeper. */
int fw_cli_category(int argc, char **argv);

/*
 * freeway tail -c CATEGORY: prints a category's records; 0 at --count, --timeout or a
 * signal, 1 on a fatal error, 2 usage.
 */
int fw_cli_tail(int argc, char **argv);

/* freeway status: nodes, buckets, copier and subscriber lag; 0, 1 when ZooKeeper fails, 2 usage. */
int fw_cli_status(int argc, char **argv);

/*
 * freeway audit -c CATEGORY: counts by bucket and minute at every hop; 0 all agree, 1 a
 * difference, duplicate or damage, 2 usage or nothing readable.
 */
int fw_cli_audit(int argc, char **argv);

/*
 * Writes text[0..len) as a JSON string, quotes included. The bytes are taken
 * as UTF-8; a byte that is no part of a well-formed character is written as
 * U+FFFD, so the output is valid JSON whatever the input.
 */
void fw_cli_json_string(FILE *out, const void *text, size_t len);

/* How deep fw_cli_json_t nests objects and arrays. */
#define FW_CLI_JSON_DEPTH 8

/*
 * A JSON writer that keeps the commas: open objects and arrays, write
 * members (key given inside an object, NULL inside an array or at the
 * top), close them. Lives on the caller's stack; holds nothing to free.
 */
typedef struct fw_cli_json_s {
    FILE *out;
    int depth;
    char close[FW_CLI_JSON_DEPTH]; /* '}' or ']' for each open level */
    char more[FW_CLI_JSON_DEPTH];  /* the level has a value: the next needs a comma */
} fw_cli_json_t;

void fw_cli_json_init(fw_cli_json_t *j, FILE *out);
void fw_cli_json_object(fw_cli_json_t *j, const char *key);
void fw_cli_json_array(fw_cli_json_t *j, const char *key);
/* Closes the innermost object or array. */
void fw_cli_json_end(fw_cli_json_t *j);
void fw_cli_json_str(fw_cli_json_t *j, const char *key, const char *s);
/* A number; null for NaN and infinities, which JSON cannot say. */
void fw_cli_json_num(fw_cli_json_t *j, const char *key, double v);
void fw_cli_json_uint(fw_cli_json_t *j, const char *key, uint64_t v);
void fw_cli_json_int(fw_cli_json_t *j, const char *key, int64_t v);
void fw_cli_json_bool(fw_cli_json_t *j, const char *key, int v);
void fw_cli_json_null(fw_cli_json_t *j, const char *key);

/*
 * argv with -c CATEGORY / -cCATEGORY spelled --category (the option tables
 * know long names only). Returns a malloc'd array (free it, and *spare,
 * which holds a rewritten argument if any); NULL on -ENOMEM.
 */
char **fw_cli_short_category(int argc, char **argv, char **spare);

/*
 * What command `cmd` does with fw_config_parse's result rc: prints its usage
 * (--help) or the version (--version) and returns 0, prints "freeway CMD:
 * err" and returns 2 for a bad flag, or returns -1: go on.
 */
int fw_cli_parsed(const char *cmd, int rc, const char *err, void (*usage)(FILE *out));

/*
 * One byte as given on the command line (a category's Scribe key
 * delimiter): a single character, or an escape \t \n \r \\ \' \" or \xHH
 * (one or two hex digits); "" is none. Returns the byte (1..255), -1 for
 * "", or -EINVAL for anything else (more than one byte, a NUL, an unknown
 * escape).
 */
int fw_cli_byte_parse(const char *text);

/*
 * The byte (0..255) as fw_cli_byte_parse reads it back, in single quotes
 * (':', '\t', '\x01'), into out (at least 8 bytes).
 */
void fw_cli_byte_format(int byte, char *out, size_t cap);

#endif
