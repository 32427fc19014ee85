# Scribe's logging interface, written for freeway's tests from its published
# facts: service `scribe` extends fb303's FacebookService with one method,
# Log (field 1: the list of entries), answering a ResultCode. The names of
# the service and method, the field ids and the enum values are what the
# wire carries; calligraphus/scribe_thrift.h decodes them by hand.

include "fb303.thrift"

namespace py scribe

enum ResultCode {
  OK = 0,
  TRY_LATER = 1,
}

struct LogEntry {
  1: string category,
  2: string message,
}

service scribe extends fb303.FacebookService {
  ResultCode Log(1: list<LogEntry> messages),
}
