#!/usr/bin/python3
"""Sends log lines through Scribe's Log() with a client that Debian's
thrift-compiler generated from tests/scribe/scribe.thrift (`thrift -r --gen py`)
and Debian's python3-thrift: framed transport, binary protocol, as Scribe's
own clients speak it. Loopback only. Exits 0 only if every line was answered
OK; a TRY_LATER batch is sent again (the same batch, as Scribe clients do).

  scribe_log.py GEN_PY_DIR PORT [--count N] [--batch B] [--category C]
                [--first F] [--keys K] [--old-header] [--ctrl]

Line n (n from F to F+N-1) is "line <n>", or "k<n % K>:line <n>" with
--keys K (a category with --scribe-key-delimiter ':' keys it by "k<n % K>");
--old-header writes old (non-strict) message headers, as scribe_cat does;
--ctrl also calls scribe_ctrl's fb303 methods and prints their answers.
"""
import argparse
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gen_py")
    ap.add_argument("port", type=int)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--category", default="scribe_test")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--keys", type=int, default=0)
    ap.add_argument("--old-header", action="store_true")
    ap.add_argument("--ctrl", action="store_true")
    args = ap.parse_args()

    sys.path.insert(0, args.gen_py)
    from scribe import scribe
    from scribe.ttypes import LogEntry, ResultCode
    from thrift.protocol import TBinaryProtocol
    from thrift.transport import TSocket, TTransport

    sock = TSocket.TSocket("127.0.0.1", args.port)
    sock.setTimeout(10000)
    trans = TTransport.TFramedTransport(sock)
    strict = not args.old_header
    proto = TBinaryProtocol.TBinaryProtocol(trans, strictRead=False, strictWrite=strict)
    client = scribe.Client(proto)
    trans.open()

    def line(n):
        if args.keys > 0:
            return "k%d:line %d" % (n % args.keys, n)
        return "line %d" % n

    sent = ok = try_later = 0
    while sent < args.count:
        n = min(args.batch, args.count - sent)
        batch = [LogEntry(category=args.category, message=line(args.first + sent + i))
                 for i in range(n)]
        while True:
            rc = client.Log(messages=batch)
            if rc == ResultCode.OK:
                ok += n
                break
            if rc != ResultCode.TRY_LATER:
                print("unexpected result %r" % rc, file=sys.stderr)
                return 1
            try_later += 1
            time.sleep(0.01)
        sent += n

    if args.ctrl:
        print("status", client.getStatus())
        print("status details", repr(client.getStatusDetails()))
        print("name", client.getName())
        print("version", client.getVersion())
        print("alive since", client.aliveSince())
        print("counters", client.getCounters())
        print("counter", client.getCounter("received good"))
        try:
            client.getOptions()
        except Exception as e:  # noqa: BLE001 - printing what the server said
            print("getOptions raised", type(e).__name__, e)
        client.reinitialize()
    trans.close()
    print("sent %d, answered OK %d, TRY_LATER answers %d" % (sent, ok, try_later))
    return 0 if ok == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
