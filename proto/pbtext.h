/*
 * pbtext: the text form of the metadata freeway keeps in ZooKeeper. A
 * message from proto/meta.proto renders as `name = value` lines, one per
 * set field, in the schema's order, so an operator reads it with zkCli:
 *
 *   buckets = 8
 *   roll_bytes = 268435456
 *   codec = CODEC_LZ4
 *
 * The schema drives both directions (protobuf-c descriptors), so a field
 * added to meta.proto needs no code here. Scalars, bools, enums (by name)
 * and strings only; parsing is strict.
 *
 * A string is written as it is, unless it would not read back the same: one
 * that holds a control byte, begins or ends with a space, begins with a
 * quote or is not UTF-8 is quoted, with C escapes (\" \\ \t \n \r and \xHH
 * for any other byte outside printable ASCII; never \x00):
 *
 *   scribe_key_delimiter = "\x01"
 *
 * A value that begins with a quote is read that way, so a string that
 * begins with one is always quoted.
 */
#ifndef FW_PBTEXT_H
#define FW_PBTEXT_H

#include <stddef.h>

#include "buf.h"

#include <protobuf-c/protobuf-c.h>

/* Appends msg's text form to out (NUL-terminated; the NUL not counted). */
int fw_pbtext_format(const ProtobufCMessage *msg, fw_buf_t *out);

/*
 * Parses text[0..len) into a new message of type desc (free it with
 * protobuf_c_message_free_unpacked(msg, NULL)). Unknown or repeated names,
 * malformed or out-of-range values and missing required fields are errors:
 * -EINVAL with a message for the operator in err.
 */
int fw_pbtext_parse(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                    ProtobufCMessage **out, char *err, size_t errlen);

#endif
