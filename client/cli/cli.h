/* The `freeway` command line: one function per command, each its own main. */
#ifndef FW_CLI_H
#define FW_CLI_H

#include <stddef.h>
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

/* Writes text[0..len) as a JSON string, quotes included (the bytes are taken as UTF-8). */
void fw_cli_json_string(FILE *out, const void *text, size_t len);

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

#endif
