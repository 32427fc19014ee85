/*
 * Scribe's Thrift interface as bytes: framed transport, binary protocol. It
 * decodes the calls a Scribe client or Scribe's control tool sends (service
 * `scribe`: Log; fb303's FacebookService: getStatus, getCounters, ...) and
 * encodes the replies; for tests and tools it also encodes calls and decodes
 * replies. It owns no socket, no category and no storage: what a call means
 * is the server's business. docs/scribe.md says the same in prose.
 *
 * Framed transport: each message travels in one frame.
 *
 *   0            4
 *   +------------+--------------------------------------------+
 *   | length     | message (length bytes)                     |
 *   | i32 BE     |                                            |
 *   +------------+--------------------------------------------+
 *   length > 0 and <= the configured maximum (default 16 MiB); the message
 *   fills the frame exactly.
 *
 * Message header, strict (what current Thrift clients send):
 *
 *   +------+------+------+------+-----------+-----------+-----------+
 *   | 0x80 | 0x01 | any  | type | name_len  | name      | seqid     |
 *   |      |      |      | u8   | i32 BE    | bytes     | i32 BE    |
 *   +------+------+------+------+-----------+-----------+-----------+
 *   (the first 4 bytes are an i32: 0x80010000 | type; Thrift ignores byte 2,
 *   so do we, and we write it as 0)
 *
 * Message header, old non-strict (scribe_cat; Scribe's own server):
 *
 *   +-----------+-----------+------+-----------+
 *   | name_len  | name      | type | seqid     |
 *   | i32 BE>=0 | bytes     | u8   | i32 BE    |
 *   +-----------+-----------+------+-----------+
 *
 *   type: 1 CALL, 2 REPLY, 3 EXCEPTION, 4 ONEWAY. Then one struct: the
 *   arguments of a call, the result of a reply (the return value is field
 *   0), or a TApplicationException {1: string message, 2: i32 type}.
 *
 * A struct is its fields, each a type byte, an i16 BE field id and the
 * value, ended by a STOP byte (0). Values, all integers big-endian:
 *
 *   type  2 BOOL, 3 BYTE     1 byte        11 STRING   i32 length, bytes
 *   type  6 I16              2 bytes       12 STRUCT   fields .. STOP
 *   type  8 I32              4 bytes       13 MAP      u8 key type, u8 value type,
 *   type 10 I64, 4 DOUBLE    8 bytes                   i32 count, count x (key, value)
 *   type 16 UUID            16 bytes       14 SET,     u8 element type, i32 count,
 *                                          15 LIST     count x element
 *
 * Log([{category: "a", message: "hi"}]) with seqid 1, strict, is 46 bytes:
 *
 *   00 00 00 2a                      frame length 42
 *   80 01 00 01                      version 1, CALL
 *   00 00 00 03 4c 6f 67             name "Log"
 *   00 00 00 01                      seqid 1
 *   0f 00 01                         field 1: LIST      (Log_args.messages)
 *   0c 00 00 00 01                   of STRUCT, 1 element
 *   0b 00 01 00 00 00 01 61          field 1: STRING "a"  (LogEntry.category)
 *   0b 00 02 00 00 00 02 68 69       field 2: STRING "hi" (LogEntry.message)
 *   00                               STOP (LogEntry)
 *   00                               STOP (Log_args)
 *
 * and its answer OK is 27 bytes: 00 00 00 17, 80 01 00 02 (REPLY), the name
 * and seqid again, 08 00 00 00 00 00 00 (field 0: I32 ResultCode 0), 00.
 *
 * Decoding is zero-copy: a decoded call points into the frame it came from,
 * and its Log entries are read with an iterator over the frame's bytes. The
 * decoder checks the whole message before it says yes (so the iterator
 * cannot fail), allocates nothing and copies nothing: a hostile frame costs
 * no memory beyond the frame the connection already buffers (bounded by
 * max_frame), and the one copy a message needs is the server's, into the
 * block it builds. The caller keeps the frame's bytes unchanged while it uses
 * the call. Strings are bytes, not checked as UTF-8 (Thrift does not either;
 * old JavaScript clients send Latin-1), and not NUL-terminated.
 */
#ifndef CAL_SCRIBE_THRIFT_H
#define CAL_SCRIBE_THRIFT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

/* Default bound on a frame's length (the 4-byte prefix not counted). */
#define CAL_SCRIBE_FRAME_MAX_DEFAULT (16u << 20)
/* No configuration may raise it past this (the length is a signed i32). */
#define CAL_SCRIBE_FRAME_MAX_LIMIT 0x7fffffffu
/* Default bound on nesting (the message's struct is depth 1); Thrift's own default. */
#define CAL_SCRIBE_DEPTH_DEFAULT 64
/* Bounds on what a configuration may set: Log itself needs 4 (args, list, entry, field). */
#define CAL_SCRIBE_DEPTH_MIN   4
#define CAL_SCRIBE_DEPTH_LIMIT 256
/* A method name longer than this is refused (the longest real one is 16 bytes). */
#define CAL_SCRIBE_NAME_MAX 255

/* Thrift's message types. */
typedef enum {
    CAL_THRIFT_CALL = 1,
    CAL_THRIFT_REPLY = 2,
    CAL_THRIFT_EXCEPTION = 3,
    CAL_THRIFT_ONEWAY = 4,
} cal_thrift_msg_type_t;

/* Thrift's value types (binary protocol type bytes). */
typedef enum {
    CAL_THRIFT_STOP = 0,
    CAL_THRIFT_BOOL = 2,
    CAL_THRIFT_BYTE = 3,
    CAL_THRIFT_DOUBLE = 4,
    CAL_THRIFT_I16 = 6,
    CAL_THRIFT_I32 = 8,
    CAL_THRIFT_I64 = 10,
    CAL_THRIFT_STRING = 11,
    CAL_THRIFT_STRUCT = 12,
    CAL_THRIFT_MAP = 13,
    CAL_THRIFT_SET = 14,
    CAL_THRIFT_LIST = 15,
    CAL_THRIFT_UUID = 16,
} cal_thrift_type_t;

/* TApplicationException's type field. */
typedef enum {
    CAL_THRIFT_EXC_UNKNOWN = 0,
    CAL_THRIFT_EXC_UNKNOWN_METHOD = 1,
    CAL_THRIFT_EXC_INVALID_MESSAGE_TYPE = 2,
    CAL_THRIFT_EXC_WRONG_METHOD_NAME = 3,
    CAL_THRIFT_EXC_BAD_SEQUENCE_ID = 4,
    CAL_THRIFT_EXC_MISSING_RESULT = 5,
    CAL_THRIFT_EXC_INTERNAL_ERROR = 6,
    CAL_THRIFT_EXC_PROTOCOL_ERROR = 7,
} cal_thrift_exc_type_t;

/* scribe.thrift's ResultCode. */
typedef enum {
    CAL_SCRIBE_OK = 0,
    CAL_SCRIBE_TRY_LATER = 1,
} cal_scribe_result_t;

/* fb303.thrift's fb_status. */
typedef enum {
    CAL_FB_DEAD = 0,
    CAL_FB_STARTING = 1,
    CAL_FB_ALIVE = 2,
    CAL_FB_STOPPING = 3,
    CAL_FB_STOPPED = 4,
    CAL_FB_WARNING = 5,
} cal_fb_status_t;

/* The methods of service scribe (which extends fb303's FacebookService). */
typedef enum {
    CAL_SCRIBE_UNKNOWN = 0,        /* any other name: answer UNKNOWN_METHOD */
    CAL_SCRIBE_LOG,                /* ResultCode Log(1: list<LogEntry> messages) */
    CAL_SCRIBE_GET_NAME,           /* string getName() */
    CAL_SCRIBE_GET_VERSION,        /* string getVersion() */
    CAL_SCRIBE_GET_STATUS,         /* fb_status getStatus() */
    CAL_SCRIBE_GET_STATUS_DETAILS, /* string getStatusDetails() */
    CAL_SCRIBE_GET_COUNTERS,       /* map<string, i64> getCounters() */
    CAL_SCRIBE_GET_COUNTER,        /* i64 getCounter(1: string key) */
    CAL_SCRIBE_SET_OPTION,         /* void setOption(1: string key, 2: string value) */
    CAL_SCRIBE_GET_OPTION,         /* string getOption(1: string key) */
    CAL_SCRIBE_GET_OPTIONS,        /* map<string, string> getOptions() */
    CAL_SCRIBE_GET_CPU_PROFILE,    /* string getCpuProfile(1: i32 profileDurationInSec) */
    CAL_SCRIBE_ALIVE_SINCE,        /* i64 aliveSince() */
    CAL_SCRIBE_REINITIALIZE,       /* oneway void reinitialize() */
    CAL_SCRIBE_SHUTDOWN,           /* oneway void shutdown() */
    CAL_SCRIBE_METHOD_COUNT
} cal_scribe_method_t;

/* Bytes inside a frame: not NUL-terminated. p is NULL when the field was absent. */
typedef struct cal_thrift_str_s {
    const char *p;
    uint32_t len;
} cal_thrift_str_t;

/* Decoding bounds; a zero member takes its default. */
typedef struct cal_scribe_limits_s {
    uint32_t max_frame; /* bound on a frame's length; clamped to CAL_SCRIBE_FRAME_MAX_LIMIT */
    uint32_t max_depth; /* bound on nesting; clamped to [DEPTH_MIN, DEPTH_LIMIT] */
} cal_scribe_limits_t;

/* A decoded call. Points into the frame it was decoded from (see above). */
typedef struct cal_scribe_call_s {
    cal_scribe_method_t method;
    uint8_t type;   /* CAL_THRIFT_CALL or CAL_THRIFT_ONEWAY */
    uint8_t strict; /* header style: 1 strict, 0 old; a reply uses the same */
    int32_t seqid;  /* echoed in the reply */
    cal_thrift_str_t name;
    /*
     * The arguments struct's bytes, whatever the method: what a digest of the
     * call's content would cover (a client that resends the same batch sends
     * the same bytes, whatever its header style or seqid).
     */
    const uint8_t *args;
    size_t args_len;
    /* Log: the entries, read with cal_scribe_entries_next. */
    uint32_t n_entries;
    const uint8_t *entries;     /* the list's first element */
    const uint8_t *entries_end; /* one past its last */
    /* getCounter, getOption, setOption (key); setOption (value). */
    cal_thrift_str_t key, value;
    /* getCpuProfile. */
    int32_t profile_seconds;
} cal_scribe_call_t;

/* One LogEntry. A field the sender left out has p == NULL and len 0. */
typedef struct cal_scribe_entry_s {
    cal_thrift_str_t category;
    cal_thrift_str_t message;
} cal_scribe_entry_t;

typedef struct cal_scribe_entry_iter_s {
    const uint8_t *p, *end;
    uint32_t left;
} cal_scribe_entry_iter_t;

/*
 * Decodes one framed call from buf[0..len). Returns the bytes of the frame
 * (4 + length) and fills *out; 0 if more input is needed, with *need set to
 * the frame's total size once its length is in (else 4); or a negative code:
 * FW_EFRAME_TOO_LARGE (length past lim->max_frame; *need says how large),
 * FW_ETHRIFT_UNFRAMED (the first bytes are a strict message header: the
 * client uses buffered transport), FW_ETHRIFT_VERSION, FW_ETHRIFT_DEPTH, or
 * FW_ETHRIFT_BAD (anything else: zero length, truncated or negative lengths,
 * a type that is not CALL or ONEWAY, a name past CAL_SCRIBE_NAME_MAX, an
 * unknown value type, Log's list not of structs, bytes after the message).
 * Errors from the length alone come as soon as 4 bytes are in. lim may be
 * NULL for the defaults.
 *
 * Fields a method does not know, and fields of a known id with another type,
 * are skipped (as Thrift's generated code does); a field given twice keeps
 * its last value. Unknown methods decode too (method CAL_SCRIBE_UNKNOWN,
 * their arguments checked and skipped) so the server can answer them.
 */
ssize_t cal_scribe_call_decode(const uint8_t *buf, size_t len, const cal_scribe_limits_t *lim,
                               cal_scribe_call_t *out, size_t *need);

/* Starts reading a decoded Log call's entries. */
void cal_scribe_entries_begin(const cal_scribe_call_t *call, cal_scribe_entry_iter_t *it);
/*
 * The next entry: 1 and *e filled, or 0 after the last. Never fails on a
 * call cal_scribe_call_decode accepted (it returns FW_ETHRIFT_BAD on bytes
 * that did not come from it).
 */
int cal_scribe_entries_next(cal_scribe_entry_iter_t *it, cal_scribe_entry_t *e);

/* Whether the call wants an answer: a CALL (not ONEWAY) of a method not oneway in the IDL. */
int cal_scribe_call_wants_reply(const cal_scribe_call_t *call);

/* The method's name in the IDL ("Log", "getStatus", ...); "?" for UNKNOWN. */
const char *cal_scribe_method_name(cal_scribe_method_t m);

/*
 * Replies. Each appends one whole frame to out, with the call's header
 * style, name (its method's when call->name is unset) and seqid, and returns 0; or -EINVAL if the
 * reply does not fit the call's method (a Log result for getName, say), -ENOMEM, or
 * FW_EFRAME_TOO_LARGE past 2 GiB. On error nothing is appended.
 */
int cal_scribe_reply_log(fw_buf_t *out, const cal_scribe_call_t *call, cal_scribe_result_t rc);
/* getStatus. */
int cal_scribe_reply_status(fw_buf_t *out, const cal_scribe_call_t *call, cal_fb_status_t st);
/* getName, getVersion, getStatusDetails, getOption, getCpuProfile. */
int cal_scribe_reply_string(fw_buf_t *out, const cal_scribe_call_t *call, const char *s,
                            size_t len);
/* aliveSince (unix seconds), getCounter. */
int cal_scribe_reply_i64(fw_buf_t *out, const cal_scribe_call_t *call, int64_t v);

typedef struct cal_scribe_counter_s {
    const char *name; /* NUL-terminated */
    int64_t value;
} cal_scribe_counter_t;

typedef struct cal_scribe_option_s {
    const char *key, *value; /* NUL-terminated */
} cal_scribe_option_t;

/* getCounters: map<string, i64>. */
int cal_scribe_reply_counters(fw_buf_t *out, const cal_scribe_call_t *call,
                              const cal_scribe_counter_t *c, size_t n);
/* getOptions: map<string, string>. */
int cal_scribe_reply_options(fw_buf_t *out, const cal_scribe_call_t *call,
                             const cal_scribe_option_t *o, size_t n);
/* setOption: an empty result. */
int cal_scribe_reply_void(fw_buf_t *out, const cal_scribe_call_t *call);
/* A TApplicationException (message type EXCEPTION), for any method. */
int cal_scribe_reply_exception(fw_buf_t *out, const cal_scribe_call_t *call,
                               cal_thrift_exc_type_t type, const char *message);
/* UNKNOWN_METHOD, worded as Thrift's servers word it: "Invalid method name: 'NAME'". */
int cal_scribe_reply_unknown_method(fw_buf_t *out, const cal_scribe_call_t *call);

/*
 * The client's side, for tests, seed corpora and tools.
 *
 * cal_scribe_call_encode appends one framed call: call's method, type,
 * strict, seqid and the arguments its method has (Log: entries[0..n), an
 * absent string of an entry is left out). call->name overrides the method's
 * name when set (so tests can send unknown methods). 0, -EINVAL (no name),
 * -ENOMEM or FW_EFRAME_TOO_LARGE; on error nothing is appended.
 */
int cal_scribe_call_encode(fw_buf_t *out, const cal_scribe_call_t *call,
                           const cal_scribe_entry_t *entries, size_t n);

/* A decoded reply; it points into its frame. */
typedef struct cal_scribe_reply_s {
    uint8_t type; /* CAL_THRIFT_REPLY or CAL_THRIFT_EXCEPTION */
    uint8_t strict;
    int32_t seqid;
    cal_thrift_str_t name;
    /* REPLY: the type of field 0 (the return value), 0 if absent (void). */
    uint8_t value_type;
    int64_t i;          /* BOOL, BYTE, I16, I32, I64 */
    cal_thrift_str_t s; /* STRING; or EXCEPTION's message */
    /* MAP: key and value types, count and the elements' bytes. */
    uint8_t map_ktype, map_vtype;
    uint32_t map_n;
    const uint8_t *map, *map_end;
    /* EXCEPTION: its type (-1 if absent). */
    int32_t exc_type;
} cal_scribe_reply_t;

/* Decodes one framed reply; the conventions of cal_scribe_call_decode. */
ssize_t cal_scribe_reply_decode(const uint8_t *buf, size_t len, const cal_scribe_limits_t *lim,
                                cal_scribe_reply_t *out, size_t *need);

typedef struct cal_scribe_map_iter_s {
    const uint8_t *p, *end;
    uint32_t left;
    uint8_t ktype, vtype;
} cal_scribe_map_iter_t;

void cal_scribe_map_begin(const cal_scribe_reply_t *r, cal_scribe_map_iter_t *it);
/*
 * The next pair of a map<string, i64> (*sval untouched) or map<string,
 * string> (*ival untouched): 1, 0 after the last, or -EINVAL for other types.
 */
int cal_scribe_map_next(cal_scribe_map_iter_t *it, cal_thrift_str_t *key, int64_t *ival,
                        cal_thrift_str_t *sval);

#endif
