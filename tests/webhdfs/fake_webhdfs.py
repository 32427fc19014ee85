#!/usr/bin/env python3
"""A WebHDFS server stand-in for freeway's tests: a "namenode" and a "datanode"
in one process, storing HDFS files as plain files under --root.

Why a stand-in: Debian has no Hadoop server package (engineering notes §5.1),
so the copier's WebHDFS client is tested against this. What it copies from
Hadoop was read in Hadoop's own text, not guessed: WebHDFS.md (the REST API
document: operations, the HTTP query parameter dictionary, the RemoteException
schema and the exception-to-status table), the namenode's
NamenodeWebHdfsMethods (CREATE/APPEND/OPEN only redirect; APPEND and OPEN of a
missing file fail at the namenode with "File ... not found."; noredirect
answers {"Location": ...}), the datanode's WebHdfsHandler (the data step:
201 + Location hdfs://... for CREATE, 200 for APPEND, FileAlreadyExists and
lease errors raised there, not at the namenode) and ExceptionHandler.

Implemented, as Hadoop documents it:
  - URL /webhdfs/v1/<path>?op=...; op values and parameter names are
    case-insensitive (Hadoop upper-cases op and lower-cases parameter names).
  - Namenode: PUT MKDIRS, CREATE; POST APPEND, TRUNCATE; PUT RENAME (the old
    rename: {"boolean": false} with HTTP 200 when the source is missing or the
    destination exists; onto an existing directory it moves into it);
    DELETE DELETE [recursive]; GET GETFILESTATUS, LISTSTATUS, OPEN.
    CREATE, APPEND and OPEN answer 307 + Location to the datanode, or 200
    {"Location": ...} with noredirect=true. The namenode never takes file data:
    a body sent to it is drained (or, if the client waits for 100-continue,
    never asked for and the connection closed).
  - Datanode: PUT CREATE [overwrite] -> 201 Created, Location hdfs://NN/path;
    POST APPEND -> 200; GET OPEN [offset, length] -> the bytes.
  - Errors: {"RemoteException": {"exception", "javaClassName", "message"}} with
    Hadoop's status for the exception's class: 400 IllegalArgument and
    UnsupportedOperation, 403 IOException and its subclasses (FileAlreadyExists,
    AlreadyBeingCreated, RecoveryInProgress, ...), 404 FileNotFound,
    500 RuntimeException. 401 never happens: there is no security.
  - TRUNCATE: newlength > length is HadoopIllegalArgumentException (400). A
    truncate to a block boundary (or to the current length) is done at once,
    {"boolean": true}. Otherwise, with --truncate-delay-ms N > 0, it answers
    {"boolean": false} and finishes N ms later, as HDFS does while it recovers
    the last block: until then GETFILESTATUS shows the old length and APPEND,
    CREATE(overwrite) and TRUNCATE of the file get RecoveryInProgressException.
  - HTTP/1.1 keep-alive, Expect: 100-continue (100 is sent only when the
    server wants the body), bodies by Content-Length or chunked encoding.

Not implemented: security (user.name is accepted and ignored; no SPNEGO or
delegation tokens), owners, groups and permissions (a fixed owner; the
permission parameter is ignored), replication and blocks (one local file per
HDFS file; blockSize is reported only to decide which truncates need
recovery), real leases (only a single-writer check while a datanode request is
writing: a second writer gets AlreadyBeingCreatedException; an abandoned
upload holds nothing, there are no soft/hard limits), quotas, snapshots,
xattrs, ACLs, symlinks, HA. Other documented ops answer 400
UnsupportedOperationException, unknown ones 400 IllegalArgumentException.

Test extensions on the namenode port (not WebHDFS):
  PUT /fault?op=CREATE|APPEND&mode=MODE[&count=N]   (count defaults to 1)
      the next N datanode requests of that op misbehave:
      fail              answer 500 RuntimeException, write nothing
      drop-after-write  write all the data, then close without answering
      partial           write the first half of the body, close without answering
      stall             read no body, answer nothing for 60 s, then close
  DELETE /fault[?op=OP]   clear all faults (or one op's)
  GET /stats   {"namenode": {OP: n}, "datanode": {OP: n}, "faults": {...}}

  python3 fake_webhdfs.py --root DIR [--host 127.0.0.1] [--port 0]
                          [--ready-file FILE] [--truncate-delay-ms N]

When both listeners listen it writes "NAMENODE_PORT DATANODE_PORT\\n" to the
ready file (temp file + rename) and to stdout. SIGTERM or SIGINT stop it, exit 0.
"""

import argparse
import json
import os
import signal
import stat
import sys
import threading
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/webhdfs/v1"
BLOCK_SIZE = 134217728  # HDFS's default dfs.blocksize
OWNER = "freeway"
GROUP = "supergroup"
STALL_SECONDS = 60
CHUNK = 65536

# Exception short name -> (Java class, HTTP status), per WebHDFS.md's table
# and ExceptionHandler (FileNotFound 404, other IOExceptions 403,
# IllegalArgument and UnsupportedOperation 400, anything else 500).
EXCEPTIONS = {
    "IllegalArgumentException": ("java.lang.IllegalArgumentException", 400),
    "HadoopIllegalArgumentException": ("org.apache.hadoop.HadoopIllegalArgumentException", 400),
    "InvalidPathException": ("org.apache.hadoop.fs.InvalidPathException", 400),
    "UnsupportedOperationException": ("java.lang.UnsupportedOperationException", 400),
    "SecurityException": ("java.lang.SecurityException", 401),
    "IOException": ("java.io.IOException", 403),
    "FileAlreadyExistsException": ("org.apache.hadoop.fs.FileAlreadyExistsException", 403),
    "ParentNotDirectoryException": ("org.apache.hadoop.fs.ParentNotDirectoryException", 403),
    "PathIsNotEmptyDirectoryException": (
        "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException", 403),
    "AlreadyBeingCreatedException": (
        "org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException", 403),
    "RecoveryInProgressException": (
        "org.apache.hadoop.hdfs.protocol.RecoveryInProgressException", 403),
    "FileNotFoundException": ("java.io.FileNotFoundException", 404),
    "RuntimeException": ("java.lang.RuntimeException", 500),
}

# Every op WebHDFS.md lists, by HTTP method, with the Java enum Hadoop parses
# it into: an op outside the list fails to parse (IllegalArgumentException,
# "No enum constant ..."); a listed one this stand-in lacks is
# UnsupportedOperationException, as in the namenode's default case.
HADOOP_OPS = {
    "GET": ("GetOpParam", {
        "OPEN", "GETFILESTATUS", "LISTSTATUS", "LISTSTATUS_BATCH", "GETCONTENTSUMMARY",
        "GETQUOTAUSAGE", "GETFILECHECKSUM", "GETHOMEDIRECTORY", "GETDELEGATIONTOKEN",
        "GETTRASHROOT", "GETXATTRS", "LISTXATTRS", "CHECKACCESS", "GETALLSTORAGEPOLICY",
        "GETSTORAGEPOLICY", "GETSNAPSHOTDIFF", "GETSNAPSHOTDIFFLISTING",
        "GETSNAPSHOTTABLEDIRECTORYLIST", "GETSNAPSHOTLIST", "GETFILEBLOCKLOCATIONS",
        "GETECPOLICY", "GETSERVERDEFAULTS", "GETLINKTARGET", "GETFILELINKSTATUS",
        "GETSTATUS", "GETECPOLICIES", "GETACLSTATUS"}),
    "PUT": ("PutOpParam", {
        "CREATE", "MKDIRS", "CREATESYMLINK", "RENAME", "SETREPLICATION", "SETOWNER",
        "SETPERMISSION", "SETTIMES", "RENEWDELEGATIONTOKEN", "CANCELDELEGATIONTOKEN",
        "ALLOWSNAPSHOT", "DISALLOWSNAPSHOT", "CREATESNAPSHOT", "RENAMESNAPSHOT", "SETXATTR",
        "REMOVEXATTR", "SETSTORAGEPOLICY", "SATISFYSTORAGEPOLICY", "ENABLEECPOLICY",
        "DISABLEECPOLICY", "SETECPOLICY", "MODIFYACLENTRIES", "REMOVEACLENTRIES",
        "REMOVEDEFAULTACL", "REMOVEACL", "SETACL", "SETQUOTA", "SETQUOTABYSTORAGETYPE"}),
    "POST": ("PostOpParam", {
        "APPEND", "CONCAT", "TRUNCATE", "UNSETSTORAGEPOLICY", "UNSETECPOLICY"}),
    "DELETE": ("DeleteOpParam", {"DELETE", "DELETESNAPSHOT"}),
}

FAULT_OPS = ("CREATE", "APPEND")
FAULT_MODES = ("fail", "drop-after-write", "partial", "stall")

# The lease holder named in lease errors; every WebHDFS request is its own
# client in Hadoop too ("We treat each rest request as a separate client").
CLIENT = "DFSClient_NONMAPREDUCE_webhdfs"


class RemoteError(Exception):
    """An error answered as Hadoop's RemoteException JSON."""

    def __init__(self, exception, message):
        super().__init__(message)
        self.exception = exception
        self.java_class, self.status = EXCEPTIONS[exception]
        self.message = message

    def body(self):
        return {"RemoteException": {"exception": self.exception,
                                    "javaClassName": self.java_class,
                                    "message": self.message}}


def bad_param(name, why):
    """Hadoop's wording when a query parameter does not parse."""
    return RemoteError("IllegalArgumentException",
                       'Invalid value for webhdfs parameter "%s": %s' % (name, why))


def param_bool(params, name, default=False):
    value = params.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise bad_param(name, 'Failed to parse "%s" to Boolean.' % value)


def param_long(params, name, default=None, minimum=None):
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        n = int(value, 10)
    except ValueError:
        raise bad_param(name, 'Failed to parse "%s" as a radix-10 long integer.' % value)
    if minimum is not None and n < minimum:
        raise bad_param(name, "Invalid parameter range: %s = %d < %d" % (name, n, minimum))
    return n


def parse_query(query):
    """Query parameters, names lower-cased as Hadoop's ParamFilter does; the
    first value of a repeated name wins."""
    params = {}
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        params.setdefault(name.lower(), value)
    return params


def parse_query_pairs(request_target):
    """The query of a request target as (name, value) pairs, in order."""
    query = urllib.parse.urlsplit(request_target).query
    return urllib.parse.parse_qsl(query, keep_blank_values=True)


def hdfs_path_of(raw):
    """The HDFS path named by the (percent-encoded) part of the URL path
    after /webhdfs/v1."""
    return normalize(urllib.parse.unquote(raw))


def normalize(decoded):
    """An absolute HDFS path without empty components. Names Hadoop refuses
    ("." "..", ":" in a name) are refused here too, which also keeps every
    path inside --root."""
    parts = [p for p in decoded.split("/") if p]
    for p in parts:
        if p in (".", "..") or ":" in p or "\0" in p:
            raise RemoteError("InvalidPathException",
                              "Invalid path name Invalid file name: " + decoded)
    return "/" + "/".join(parts)


def op_error(method, op):
    """What Hadoop answers for an op it cannot parse for this method, or one
    it knows that this stand-in does not implement."""
    enum, known = HADOOP_OPS.get(method, ("HttpOpParam", set()))
    if not op:
        return RemoteError("UnsupportedOperationException", "op=NULL is not supported")
    if op in known:
        return RemoteError("UnsupportedOperationException", "op=%s is not supported" % op)
    return bad_param("op", "No enum constant org.apache.hadoop.hdfs.web.resources.%s.Op.%s"
                     % (enum, op))


class Namespace:
    """The HDFS namespace as a directory tree under root. One lock orders the
    metadata operations (as the namenode's namesystem lock does); file data
    is streamed outside it, guarded by the single-writer set."""

    def __init__(self, root, truncate_delay_ms):
        self.root = root
        self.truncate_delay_ms = truncate_delay_ms
        self.lock = threading.Lock()
        self.writers = set()  # HDFS paths a datanode request is writing
        self.recovering = {}  # (st_dev, st_ino) -> newlength of a pending truncate

    def local(self, path):
        return os.path.join(self.root, *[p for p in path.split("/") if p])

    def _stat(self, path):
        try:
            return os.stat(self.local(path))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def status(self, path, suffix=""):
        """The FileStatus JSON of path, or None if it does not exist."""
        st = self._stat(path)
        if st is None:
            return None
        is_dir = stat.S_ISDIR(st.st_mode)
        return {
            "accessTime": 0 if is_dir else int(st.st_atime * 1000),
            "blockSize": 0 if is_dir else BLOCK_SIZE,
            "childrenNum": len(os.listdir(self.local(path))) if is_dir else 0,
            "fileId": st.st_ino,
            "group": GROUP,
            "length": 0 if is_dir else st.st_size,
            "modificationTime": int(st.st_mtime * 1000),
            "owner": OWNER,
            "pathSuffix": suffix,
            "permission": format(st.st_mode & 0o777, "o"),
            "replication": 0 if is_dir else 1,
            "storagePolicy": 0,
            "type": "DIRECTORY" if is_dir else "FILE",
        }

    def get_status(self, path):
        with self.lock:
            status = self.status(path)
        if status is None:
            raise RemoteError("FileNotFoundException", "File does not exist: " + path)
        return status

    def list_status(self, path):
        with self.lock:
            top = self.status(path)
            if top is None:
                raise RemoteError("FileNotFoundException", "File %s does not exist." % path)
            if top["type"] == "FILE":
                return [top]
            names = sorted(os.listdir(self.local(path)), key=os.fsencode)
            entries = [self.status(path.rstrip("/") + "/" + n, n) for n in names]
        return [e for e in entries if e is not None]

    def _check_parents(self, path):
        """Fails like HDFS if a proper ancestor of path is a file."""
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts)):
            ancestor = "/" + "/".join(parts[:i])
            st = self._stat(ancestor)
            if st is None:
                return
            if not stat.S_ISDIR(st.st_mode):
                raise RemoteError("ParentNotDirectoryException",
                                  "Parent path is not a directory: " + ancestor)

    def mkdirs(self, path):
        with self.lock:
            self._check_parents(path)
            st = self._stat(path)
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise RemoteError("FileAlreadyExistsException",
                                  "Path is not a directory: " + path)
            os.makedirs(self.local(path), exist_ok=True)
        return True

    def rename(self, src, dst):
        """HDFS's rename(src, dst) -> boolean (not rename2): false, not an
        error, for a missing source, an existing destination, a missing
        destination parent or a move into the source's own subtree."""
        with self.lock:
            if src == "/" or self._stat(src) is None:
                return False
            if src == dst:
                return True
            dst_st = self._stat(dst)
            if dst_st is not None and stat.S_ISDIR(dst_st.st_mode):
                dst = dst.rstrip("/") + "/" + src.rsplit("/", 1)[1]
                if self._stat(dst) is not None:
                    return False
            elif dst_st is not None:
                return False
            if dst.startswith(src.rstrip("/") + "/"):
                return False
            parent = dst.rsplit("/", 1)[0] or "/"
            parent_st = self._stat(parent)
            if parent_st is None or not stat.S_ISDIR(parent_st.st_mode):
                return False
            os.rename(self.local(src), self.local(dst))
            if src in self.writers:
                self.writers.discard(src)
                self.writers.add(dst)
        return True

    def delete(self, path, recursive):
        with self.lock:
            st = self._stat(path)
            if st is None or path == "/":
                return False
            local = self.local(path)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(local)
                return True
            if os.listdir(local) and not recursive:
                raise RemoteError("PathIsNotEmptyDirectoryException",
                                  "`%s is non empty': Directory is not empty" % path)
            for top, dirs, files in os.walk(local, topdown=False):
                for name in files:
                    os.unlink(os.path.join(top, name))
                for name in dirs:
                    os.rmdir(os.path.join(top, name))
            os.rmdir(local)
        return True

    def _check_writable(self, path, st, verb):
        """The lease checks HDFS makes before a new writer: recovery of a
        truncated last block in progress, or another writer holding it."""
        if st is not None and (st.st_dev, st.st_ino) in self.recovering:
            raise RemoteError("RecoveryInProgressException",
                              "Failed to %s %s for %s on 127.0.0.1 because lease recovery "
                              "is in progress. Try again later." % (verb, path, CLIENT))
        if path in self.writers:
            raise RemoteError("AlreadyBeingCreatedException",
                              "Failed to %s %s for %s on 127.0.0.1 because this file lease "
                              "is currently owned by %s on 127.0.0.1" % (verb, path, CLIENT,
                                                                          CLIENT))

    def open_create(self, path, overwrite):
        """Starts a CREATE: the open file to write, registered as the single
        writer. The caller writes and then calls end_write."""
        with self.lock:
            if path == "/":
                raise RemoteError("FileAlreadyExistsException", "/ already exists as a directory")
            self._check_parents(path)
            st = self._stat(path)
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise RemoteError("FileAlreadyExistsException",
                                  path + " already exists as a directory")
            if st is not None and not overwrite:
                raise RemoteError("FileAlreadyExistsException",
                                  path + " for client 127.0.0.1 already exists")
            self._check_writable(path, st, "CREATE_FILE")
            local = self.local(path)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            f = open(local, "wb")
            self.writers.add(path)
        return f

    def open_append(self, path):
        with self.lock:
            st = self._stat(path)
            if st is None:
                raise RemoteError("FileNotFoundException",
                                  "failed to append to non-existent file %s for client "
                                  "127.0.0.1" % path)
            if stat.S_ISDIR(st.st_mode):
                raise RemoteError("FileNotFoundException", "Path is not a file: " + path)
            self._check_writable(path, st, "APPEND_FILE")
            f = open(self.local(path), "ab")
            self.writers.add(path)
        return f

    def end_write(self, path, f):
        try:
            f.close()
        finally:
            with self.lock:
                self.writers.discard(path)

    def truncate(self, path, newlength):
        """True if done now; False if the rest happens after the recovery
        delay (HDFS: the last block must be recovered first)."""
        with self.lock:
            st = self._stat(path)
            if st is None:
                raise RemoteError("FileNotFoundException", "File does not exist: " + path)
            if stat.S_ISDIR(st.st_mode):
                raise RemoteError("FileNotFoundException", "Path is not a file: " + path)
            self._check_writable(path, st, "TRUNCATE_FILE")
            if newlength > st.st_size:
                raise RemoteError("HadoopIllegalArgumentException",
                                  "Cannot truncate to a larger file size. Current size: %d, "
                                  "truncate size: %d." % (st.st_size, newlength))
            if newlength == st.st_size:
                return True
            if self.truncate_delay_ms <= 0 or newlength % BLOCK_SIZE == 0:
                os.truncate(self.local(path), newlength)
                return True
            # The fd, not the path, is truncated later: a rename or delete in
            # the meantime must not redirect or break the recovery.
            fd = os.open(self.local(path), os.O_WRONLY)
            key = (st.st_dev, st.st_ino)
            self.recovering[key] = newlength
        timer = threading.Timer(self.truncate_delay_ms / 1000.0, self._finish_truncate,
                                (fd, key, newlength))
        timer.daemon = True
        timer.start()
        return False

    def _finish_truncate(self, fd, key, newlength):
        with self.lock:
            try:
                os.ftruncate(fd, newlength)
            finally:
                os.close(fd)
                self.recovering.pop(key, None)

    def check_open(self, path, offset):
        """The namenode's checks before redirecting an OPEN."""
        with self.lock:
            st = self._stat(path)
        if st is None:
            raise RemoteError("FileNotFoundException", "File %s not found." % path)
        length = 0 if stat.S_ISDIR(st.st_mode) else st.st_size
        if offset < 0 or (offset >= length > 0):
            raise RemoteError("IOException", "Offset=%d out of the range [0, %d); OPEN, path=%s"
                              % (offset, length, path))

    def exists(self, path):
        with self.lock:
            return self._stat(path) is not None


class StandIn:
    """What both listeners share: the namespace, the ports, the faults and
    the request counts."""

    def __init__(self, namespace, host):
        self.ns = namespace
        self.host = host
        self.nn_port = 0
        self.dn_port = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.faults = {}  # op -> {"mode": mode, "remaining": n}
        self.stats = {"namenode": {}, "datanode": {}}

    def count(self, role, op):
        with self.lock:
            self.stats[role][op] = self.stats[role].get(op, 0) + 1

    def take_fault(self, op):
        """The fault mode for this datanode request of op, if any is armed."""
        with self.lock:
            fault = self.faults.get(op)
            if fault is None:
                return None
            fault["remaining"] -= 1
            if fault["remaining"] <= 0:
                del self.faults[op]
            return fault["mode"]

    def snapshot(self):
        with self.lock:
            return json.loads(json.dumps({**self.stats, "faults": self.faults}))


class Handler(BaseHTTPRequestHandler):
    """HTTP plumbing both roles share: bodies (Content-Length, chunked,
    100-continue), JSON and error answers, logging."""

    protocol_version = "HTTP/1.1"
    role = "?"
    timeout = 300  # an idle keep-alive connection holds a thread at most this long

    # ---- request bodies -------------------------------------------------

    def handle_expect_100(self):
        # Do not answer 100 yet: only a handler that wants the body sends it
        # (in _iter_body), so a rejected request gets its final status first.
        self.expect_100 = True
        return True

    def _begin(self):
        # Per-request state. expect_100 was set (or not) by parse_request
        # just before; _dispatch clears it for the connection's next request.
        self.expect_100 = getattr(self, "expect_100", False)
        self.sent_100 = False
        self.body_done = False

    def _framing(self):
        """("chunked", None) or ("length", n)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return "chunked", None
        try:
            return "length", int(self.headers.get("Content-Length", "0"))
        except ValueError:
            # No way to find the end of this request: answer and hang up.
            self.close_connection = True
            self.body_done = True
            return "length", 0

    def _iter_body(self):
        """Yields the request body in chunks, asking for it with 100 Continue
        if the client waits for that. Raises ConnectionError if the client
        goes away before the end."""
        if self.expect_100 and not self.sent_100:
            self.send_response_only(100)
            self.end_headers()
            self.sent_100 = True
        kind, length = self._framing()
        if kind == "length":
            yield from self._read_exact(length)
        else:
            yield from self._read_chunked()
        self.body_done = True

    def _read_exact(self, n):
        while n > 0:
            data = self.rfile.read(min(n, CHUNK))
            if not data:
                raise ConnectionError("client closed the connection inside the body")
            n -= len(data)
            yield data

    def _read_chunked(self):
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise ConnectionError("bad or truncated chunk size line")
            try:
                size = int(line.split(b";")[0].strip(), 16)
                if size < 0:
                    raise ValueError
            except ValueError:
                raise ConnectionError("bad chunk size line %r" % line[:40])
            if size == 0:
                break
            yield from self._read_exact(size)
            if self.rfile.readline(3).strip():
                raise ConnectionError("chunk not followed by CRLF")
        while True:  # trailers, up to the blank line
            line = self.rfile.readline(8192)
            if line in (b"\r\n", b"\n", b""):
                return

    def _discard_body(self):
        """Gets rid of a body this request will not use. A client still
        waiting for 100-continue has not sent it and may never do so, so the
        connection is closed after the answer instead of reading."""
        if self.body_done:
            return
        kind, length = self._framing()
        if kind == "length" and length == 0:
            self.body_done = True
        elif self.expect_100 and not self.sent_100:
            self.close_connection = True
        else:
            for _ in self._iter_body():
                pass

    # ---- answers --------------------------------------------------------

    def _send(self, status, body=b"", content_type=None, headers=()):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, obj, status=200, headers=()):
        self._send(status, json.dumps(obj).encode(), "application/json", headers)

    def _send_error(self, err):
        self._send_json(err.body(), err.status)

    def _hang_up(self, why):
        """Closes the connection without any answer (fault injection)."""
        self.log_message('"%s" closed without an answer (%s)', self.requestline, why)
        self.close_connection = True

    def log_message(self, fmt, *args):
        sys.stderr.write("fake_webhdfs %s: %s\n" % (self.role, fmt % args))

    # ---- dispatch -------------------------------------------------------

    def do_GET(self):
        self._dispatch("GET")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method):
        self._begin()
        try:
            self._answer(method)
        except (ConnectionError, TimeoutError) as err:
            self._hang_up("%s: %s" % (type(err).__name__, err))
        finally:
            self.expect_100 = False

    def _answer(self, method):
        try:
            self.route(method)
        except RemoteError as err:
            self._discard_body()
            self._send_error(err)
        except (ConnectionError, TimeoutError):
            raise  # the client went away: nobody to answer
        except OSError as err:
            # A local file system error is an IOException to Hadoop: 403.
            self._discard_body()
            self._send_error(RemoteError("IOException", str(err)))
        except Exception as err:  # a bug in the stand-in: loudly, as a 500
            traceback.print_exc()
            self.close_connection = True
            self._send_error(RemoteError("RuntimeException", "%s: %s"
                                         % (type(err).__name__, err)))

    def webhdfs_request(self):
        """(hdfs path, raw URL path, params, OP) of a /webhdfs/v1 URL, or None."""
        url = urllib.parse.urlsplit(self.path)
        if url.path != PREFIX and not url.path.startswith(PREFIX + "/"):
            return None
        params = parse_query(url.query)
        op = params.get("op", "").upper()
        self.server.standin.count(self.role, op or "NULL")
        return hdfs_path_of(url.path[len(PREFIX):]), url.path, params, op


class NamenodeHandler(Handler):
    """The namenode: metadata ops, the redirects of the data ops, and the
    test controls /fault and /stats. It never takes file data."""

    role = "namenode"

    def route(self, method):
        standin = self.server.standin
        # Before anything else: the namenode never uses a request body.
        self._discard_body()
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/stats" and method == "GET":
            return self._send_json(standin.snapshot())
        if url.path == "/fault" and method in ("PUT", "DELETE"):
            return self._fault(method, parse_query(url.query))
        request = self.webhdfs_request()
        if request is None:
            return self._send(404, b"not a WebHDFS URL\n", "text/plain")
        path, raw_path, params, op = request
        handler = self.OPS.get((method, op))
        if handler is None:
            raise op_error(method, op)
        handler(self, path, raw_path, params, op)

    def _redirect(self, raw_path, params, op):
        """307 to the datanode with the request's parameters (less
        noredirect) and the namenode's address, as redirectURI builds it; or
        the same URL as {"Location": ...} with noredirect=true."""
        standin = self.server.standin
        noredirect = param_bool(params, "noredirect")
        query = [("op", op)] + [(k, v) for k, v in parse_query_pairs(self.path)
                                if k.lower() not in ("op", "noredirect", "namenoderpcaddress")]
        query.append(("namenoderpcaddress", "%s:%d" % (standin.host, standin.nn_port)))
        location = "http://%s:%d%s?%s" % (standin.host, standin.dn_port, raw_path,
                                          urllib.parse.urlencode(query, safe=":/"))
        if noredirect:
            return self._send_json({"Location": location})
        self._send(307, b"", "application/octet-stream", [("Location", location)])

    def op_create(self, path, raw_path, params, op):
        # Parsed (a bad value is a 400 here, as in Hadoop) but only the
        # datanode acts on them; permission, replication, blocksize are ignored.
        param_bool(params, "overwrite")
        for name in ("replication", "blocksize", "buffersize"):
            param_long(params, name, minimum=1)
        self._redirect(raw_path, params, op)

    def op_append(self, path, raw_path, params, op):
        if not self.server.standin.ns.exists(path):
            raise RemoteError("FileNotFoundException", "File %s not found." % path)
        self._redirect(raw_path, params, op)

    def op_open(self, path, raw_path, params, op):
        offset = param_long(params, "offset", 0, minimum=0)
        param_long(params, "length", minimum=0)
        self.server.standin.ns.check_open(path, offset)
        self._redirect(raw_path, params, op)

    def op_mkdirs(self, path, raw_path, params, op):
        self._send_json({"boolean": self.server.standin.ns.mkdirs(path)})

    def op_rename(self, path, raw_path, params, op):
        dest = params.get("destination")
        if not dest or not dest.startswith("/"):
            raise bad_param("destination", 'Invalid parameter value: destination = "%s" is not '
                            "an absolute path." % (dest or ""))
        dest = normalize(dest)
        self._send_json({"boolean": self.server.standin.ns.rename(path, dest)})

    def op_delete(self, path, raw_path, params, op):
        recursive = param_bool(params, "recursive")
        self._send_json({"boolean": self.server.standin.ns.delete(path, recursive)})

    def op_truncate(self, path, raw_path, params, op):
        newlength = param_long(params, "newlength", minimum=0)
        if newlength is None:
            raise RemoteError("IllegalArgumentException",
                              "Required param newlength for op: TRUNCATE is null or empty")
        self._send_json({"boolean": self.server.standin.ns.truncate(path, newlength)})

    def op_getfilestatus(self, path, raw_path, params, op):
        self._send_json({"FileStatus": self.server.standin.ns.get_status(path)})

    def op_liststatus(self, path, raw_path, params, op):
        entries = self.server.standin.ns.list_status(path)
        self._send_json({"FileStatuses": {"FileStatus": entries}})

    def _fault(self, method, params):
        standin = self.server.standin
        op = params.get("op", "").upper()
        if method == "DELETE":
            with standin.lock:
                if op:
                    standin.faults.pop(op, None)
                else:
                    standin.faults.clear()
            return self._send_json({"boolean": True})
        mode = params.get("mode", "")
        if op not in FAULT_OPS:
            raise bad_param("op", "a fault needs op=%s" % "|".join(FAULT_OPS))
        if mode not in FAULT_MODES:
            raise bad_param("mode", "a fault needs mode=%s" % "|".join(FAULT_MODES))
        count = param_long(params, "count", 1, minimum=1)
        with standin.lock:
            standin.faults[op] = {"mode": mode, "remaining": count}
        self._send_json({"boolean": True})

    OPS = {
        ("PUT", "CREATE"): op_create,
        ("PUT", "MKDIRS"): op_mkdirs,
        ("PUT", "RENAME"): op_rename,
        ("POST", "APPEND"): op_append,
        ("POST", "TRUNCATE"): op_truncate,
        ("DELETE", "DELETE"): op_delete,
        ("GET", "GETFILESTATUS"): op_getfilestatus,
        ("GET", "LISTSTATUS"): op_liststatus,
        ("GET", "OPEN"): op_open,
    }


class DatanodeHandler(Handler):
    """The datanode: takes the data of CREATE and APPEND, serves OPEN.
    Errors close the connection, as Hadoop's datanode does."""

    role = "datanode"

    def route(self, method):
        request = self.webhdfs_request()
        if request is None:
            self._discard_body()
            return self._send(404, b"not a WebHDFS URL\n", "text/plain")
        path, _, params, op = request
        if (method, op) == ("PUT", "CREATE"):
            return self._write(path, params, op)
        if (method, op) == ("POST", "APPEND"):
            return self._write(path, params, op)
        if (method, op) == ("GET", "OPEN"):
            return self._open(path, params)
        raise RemoteError("IllegalArgumentException", "Invalid operation " + op)

    def _send_error(self, err):
        self.close_connection = True
        super()._send_error(err)

    def _write(self, path, params, op):
        standin = self.server.standin
        fault = standin.take_fault(op)
        if fault == "stall":
            standin.stopping.wait(STALL_SECONDS)
            return self._hang_up("fault: stall")
        if fault == "fail":
            self._discard_body()
            raise RemoteError("RuntimeException", "injected fault: %s failed, nothing written"
                              % op)
        if op == "CREATE":
            f = standin.ns.open_create(path, param_bool(params, "overwrite"))
        else:
            f = standin.ns.open_append(path)
        try:
            if fault == "partial":
                body = b"".join(self._iter_body())
                f.write(body[:len(body) // 2])
            else:
                for data in self._iter_body():
                    f.write(data)
        finally:
            standin.ns.end_write(path, f)
        if fault in ("drop-after-write", "partial"):
            return self._hang_up("fault: " + fault)
        if op == "APPEND":
            return self._send(200)
        location = "hdfs://%s:%d%s" % (standin.host, standin.nn_port, urllib.parse.quote(path))
        self._send(201, b"", None, [("Location", location)])

    def _open(self, path, params):
        offset = param_long(params, "offset", 0, minimum=0)
        length = param_long(params, "length", minimum=0)
        local = self.server.standin.ns.local(path)
        try:
            f = open(local, "rb")
        except FileNotFoundError:
            raise RemoteError("FileNotFoundException", "File does not exist: " + path)
        except IsADirectoryError:
            raise RemoteError("FileNotFoundException", "Path is not a file: " + path)
        with f:
            f.seek(offset)
            data = f.read() if length is None else f.read(length)
        # Hadoop's datanode closes the connection after an OPEN.
        self.close_connection = True
        self._send(200, data, "application/octet-stream")


def parse_args(argv):
    p = argparse.ArgumentParser(description="WebHDFS stand-in for freeway's tests")
    p.add_argument("--root", required=True, help="directory that holds the HDFS tree")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="namenode port (0: any free one)")
    p.add_argument("--ready-file", help='gets "NAMENODE_PORT DATANODE_PORT" once listening')
    p.add_argument("--truncate-delay-ms", type=int, default=0,
                   help="a truncate off a block boundary completes this much later")
    return p.parse_args(argv)


def write_ready_file(path, line):
    """Atomically: a reader sees no file or the whole line."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a stalled handler must not hold up the exit

    def handle_error(self, request, client_address):
        # A client that hung up between requests is not the stand-in's
        # error: one line, not a traceback (tests fail on "Traceback").
        err = sys.exc_info()[1]
        if isinstance(err, (ConnectionError, TimeoutError)):
            sys.stderr.write("fake_webhdfs: %s:%d: %s\n" % (client_address + (err,)))
            return
        super().handle_error(request, client_address)


def make_server(host, port, handler, standin):
    server = Server((host, port), handler)
    server.standin = standin
    return server


def main(argv):
    args = parse_args(argv)
    root = os.path.abspath(args.root)
    os.makedirs(root, exist_ok=True)
    standin = StandIn(Namespace(root, args.truncate_delay_ms), args.host)

    # SIGTERM and SIGINT are blocked before any thread starts (threads inherit
    # the mask) and taken synchronously below with sigwait: no handler runs
    # in the middle of a lock another thread holds.
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)

    namenode = make_server(args.host, args.port, NamenodeHandler, standin)
    datanode = make_server(args.host, 0, DatanodeHandler, standin)
    standin.nn_port = namenode.server_address[1]
    standin.dn_port = datanode.server_address[1]
    for server in (namenode, datanode):
        # A short poll interval: shutdown() waits for the loop to notice.
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    line = "%d %d\n" % (standin.nn_port, standin.dn_port)
    if args.ready_file:
        write_ready_file(args.ready_file, line)
    sys.stdout.write(line)
    sys.stdout.flush()

    sig = signal.sigwait(signals)
    sys.stderr.write("fake_webhdfs: signal %d, stopping\n" % sig)
    standin.stopping.set()
    for server in (namenode, datanode):
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
