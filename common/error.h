/*
 * freeway's error codes: 0 is success, a negative value is an error. Codes
 * from -1 to -4095 are negated errno values; freeway's own codes live in the
 * reserved range below FW_ERR_BASE. One table generates the enum, the names
 * and the messages.
 */
#ifndef FW_ERROR_H
#define FW_ERROR_H

#define FW_ERR_BASE (-10000)

/* XX(NAME, offset, message) */
#define FW_ERROR_MAP(XX)                                                                           \
    XX(FRAME_TOO_LARGE, 1, "frame length exceeds the configured maximum")                          \
    XX(FRAME_BAD, 2, "malformed frame header")                                                     \
    XX(BLOCK_HEADER, 3, "block header is invalid (magic, version, lengths or header CRC)")         \
    XX(BLOCK_CRC, 4, "block payload CRC32C mismatch")                                              \
    XX(BLOCK_CORRUPT, 5, "block payload does not decode to its declared records")                  \
    XX(BLOCK_TOO_LARGE, 6, "block exceeds the maximum block size")                                 \
    XX(RECORD_TOO_LARGE, 7, "record exceeds the maximum record size")                              \
    XX(SEG_HEADER, 8, "segment file header is invalid")                                            \
    XX(SEG_DAMAGED, 9, "segment is damaged")                                                       \
    XX(SEG_FAILED, 10, "segment writer failed after an I/O error; it accepts nothing more")        \
    XX(SEG_SEALED, 11, "segment is sealed")                                                        \
    XX(TOKEN_BAD, 12, "checkpoint token is malformed")                                             \
    XX(TOKEN_VERSION, 13, "checkpoint token version is not supported")                             \
    XX(TOKEN_CRC, 14, "checkpoint token checksum mismatch")                                        \
    XX(BAD_CATEGORY, 15, "category name is invalid (want [A-Za-z0-9_.-]{1,128})")                  \
    XX(UNKNOWN_CATEGORY, 16, "unknown category")                                                   \
    XX(BUCKET_RANGE, 17, "bucket out of range")                                                    \
    XX(NOT_OWNER, 18, "this node does not own the bucket")                                         \
    XX(RETRY_LATER, 19, "temporarily unable to accept; retry later")                               \
    XX(SEQUENCE_GAP, 20, "block sequence number skips ahead of the last stored one")               \
    XX(PROTOCOL, 21, "protocol violation")                                                         \
    XX(SHUTTING_DOWN, 22, "the node is shutting down; send elsewhere")                             \
    XX(SPOOL_LOCKED, 23, "the spool directory is in use by another producer")                      \
    XX(THRIFT_BAD, 24, "malformed Thrift message (framed transport, binary protocol)")             \
    XX(THRIFT_VERSION, 25, "Thrift message header has a bad protocol version")                     \
    XX(THRIFT_DEPTH, 26, "Thrift value nests deeper than the configured limit")                    \
    XX(THRIFT_UNFRAMED, 27, "Thrift message without a frame length (want framed transport)")

typedef enum {
#define FW_ERROR_ENUM(name, off, msg) FW_E##name = FW_ERR_BASE - (off),
    FW_ERROR_MAP(FW_ERROR_ENUM)
#undef FW_ERROR_ENUM
} fw_error_t;

/* A human-readable message for code (freeway's own or a negated errno). */
const char *fw_strerror(int code);

/* The code's symbolic name, e.g. "FW_EBLOCK_CRC" or "ENOENT". */
const char *fw_err_name(int code);

#endif
