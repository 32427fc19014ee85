/*
 * The WebHDFS stand-in (tests/webhdfs/fake_webhdfs.py) in tests: Debian
 * packages no Hadoop server, so a Python namenode + datanode that follows
 * Hadoop's WebHDFS document plays HDFS, keeping "HDFS" files as plain files
 * under its root (HDFS /a/b is root/a/b) where tests read them back. It
 * injects faults into datanode requests and counts requests per op.
 * test_webhdfs_server checks it against an independent client.
 */
#ifndef FWT_WEBHDFS_H
#define FWT_WEBHDFS_H

#include <stddef.h>
#include <stdint.h>

#include "fwt_proc.h"

typedef struct fwt_webhdfs_s {
    fwt_proc_t proc;
    char root[FWT_PATH_MAX];  /* --root: HDFS /a/b is root/a/b */
    char ready[FWT_PATH_MAX]; /* --ready-file */
    char log[FWT_PATH_MAX];
    int nn_port, dn_port;
} fwt_webhdfs_t;

/*
 * Starts the stand-in on 127.0.0.1 (files under TMP/<name>-hdfs) and waits
 * for its ready file. truncate_delay_ms > 0 makes TRUNCATE answer false and
 * finish that much later, as HDFS does when the last block needs recovery.
 */
void fwt_webhdfs_start(fwt_webhdfs_t *s, const char *name, int truncate_delay_ms);
/* SIGTERM; fails the test unless it exits 0 with no Python exception logged. */
void fwt_webhdfs_stop(fwt_webhdfs_t *s);
/* One blocking request to the namenode port; the HTTP status, the body in body (4096). */
long fwt_webhdfs_http(fwt_webhdfs_t *s, const char *method, const char *target, char *body);
/* The next count datanode requests of op misbehave (fail, drop-after-write, partial, stall). */
void fwt_webhdfs_fault(fwt_webhdfs_t *s, const char *op, const char *mode, int count);
/* How many requests of op (GETFILESTATUS, APPEND, ...) the namenode has had. */
uint64_t fwt_webhdfs_count(fwt_webhdfs_t *s, const char *op);

#endif
