#!/usr/bin/env python3
"""The peers, measured on this machine: Redis Streams and NATS JetStream
(bench/peers/README.md).

The orchestrator calls run_peers(ctx, lines_path, count, say). For each
setting it starts a fresh server on 127.0.0.1 (a free port, a fresh
directory under ctx.workdir, through ctx.daemons so that it is stopped on any
exit), runs one producer process over one connection (build/release/bench/
redis_xadd or nats_publish, built by bench/peers/peers.mk) on the first
count lines of lines_path, checks that every record landed, and stops the
server. Run alone: `bench/peers.py [--count N] LINES_FILE` (see --help).

Standard library only, like bench/ingest.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import types
import urllib.request

import fabric

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEERS_BIN = os.path.join(REPO, "build", "release", "bench")
REDIS_XADD = os.path.join(PEERS_BIN, "redis_xadd")
NATS_PUBLISH = os.path.join(PEERS_BIN, "nats_publish")

REDIS_WINDOW = 1000  # XADDs in flight on the one connection
NATS_MAX_PENDING = 4096  # async publishes awaiting their ack

REDIS_DURABILITY = {
    "always": "fsync per write: the AOF is fsync'd before the replies go out (one fsync per "
              "event-loop pass, a group commit)",
    "everysec": "fsync every second: acked once written to the AOF (page cache); a machine "
                "crash loses up to about 1 s",
}
ingest = fabric.ingest

NATS_DURABILITY = {
    "always": "fsync per write (jetstream sync_interval: always)",
    "default": "page cache: each message is written to the stream's block file before its "
               "ack; the file store fsyncs it only on its timer, every 2 min",
}


# ---- small helpers -----------------------------------------------------------------------

def tree_bytes(path):
    """Sum of the sizes of the files under path."""
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(d, f))
            except OSError:
                pass
    return total


def redis_cmd(port, *args):
    """One command over RESP on a fresh connection; the reply as a Python
    value. An error reply raises RuntimeError."""
    req = b"*%d\r\n" % len(args)
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        req += b"$%d\r\n%s\r\n" % (len(b), b)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(req)
        with s.makefile("rb") as f:
            return resp_read(f)


def resp_read(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [resp_read(f) for _ in range(n)]
    raise OSError("bad RESP reply %r" % line)


def redis_ready(port):
    try:
        return redis_cmd(port, "PING") == "PONG"
    except (OSError, RuntimeError):
        return False  # not listening yet, or still loading


def http_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def log_match(log, pattern):
    """The first match of pattern in a daemon's log, or None."""
    try:
        with open(log, errors="replace") as f:
            m = re.search(pattern, f.read())
    except OSError:
        return None
    return m


def run_client(cmd, timeout, log):
    """Runs a producer; its JSON line, or BenchError with its stderr (also
    kept in log)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        with open(log, "w") as f:
            f.write(e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes)
                    else (e.stderr or ""))
        raise ingest.BenchError("%s did not finish within %d s (log: %s)"
                             % (os.path.basename(cmd[0]), timeout, log))
    with open(log, "w") as f:
        f.write(r.stdout + r.stderr)
    if r.returncode != 0:
        raise ingest.BenchError("%s exited %d: %s (log: %s)" % (os.path.basename(cmd[0]),
                             r.returncode, r.stderr.strip()[-500:], log))
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ingest.BenchError("%s printed no JSON line (log: %s)" % (os.path.basename(cmd[0]),
                                                                   log))


def client_timeout(ctx, count):
    """Generous: a run that takes this long has gone wrong (10,000 records/s
    is far below either peer on any disk)."""
    return max(120 if getattr(ctx, "quick", False) else 300, count // 10_000)


def check_binaries():
    for b in (REDIS_XADD, NATS_PUBLISH):
        if not os.access(b, os.X_OK):
            raise ingest.BenchError("%s is missing: make -f bench/peers/peers.mk bench-peers-build"
                                 % b)


def row(peer, setting, durability, client, got, server_cpu, disk, version, note=None):
    r = {"peer": peer, "setting": setting, "durability": durability, "client": client,
         "records": got["records"], "payload_bytes": got["payload_bytes"],
         "seconds": got["seconds"], "records_per_s": got["records_per_s"],
         "mb_per_s": got["mb_per_s"], "server_cpu_s": round(server_cpu, 3),
         "client_cpu_s": got["client_cpu_s"], "disk_bytes": disk, "server_version": version}
    if note:
        r["note"] = note
    return r


# ---- Redis Streams -----------------------------------------------------------------------

def redis_run(ctx, lines_path, count, fsync, say):
    """One fresh redis-server with the AOF on (appendfsync `fsync`, no RDB
    snapshots) and one redis_xadd run into a new stream."""
    d = os.path.join(ctx.workdir, "redis", fsync)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    port = ingest.free_port()
    conf = os.path.join(d, "redis.conf")
    with open(conf, "w") as f:
        f.write("\n".join([
            "bind 127.0.0.1",
            "protected-mode yes",
            "port %d" % port,
            "dir %s" % d,
            "daemonize no",
            'logfile ""',
            'save ""',
            "appendonly yes",
            "appendfsync %s" % fsync,
            "appenddirname appendonlydir",
            # No AOF rewrite mid-run: it is compaction work (a fork and a
            # second copy of the data) that freeway's append path does not do,
            # and the figure would depend on when it struck.
            "auto-aof-rewrite-percentage 0",
        ]) + "\n")
    name = "redis-server (appendfsync %s)" % fsync
    log = os.path.join(ctx.logdir, "redis-%s.log" % fsync)
    p = ctx.daemons.start(name, ["redis-server", conf], log)
    try:
        ingest.wait_for("%s on 127.0.0.1:%d" % (name, port), lambda: redis_ready(port), 30, proc=p,
                     log=log)
        info = redis_cmd(port, "INFO", "server")
        m = re.search(r"redis_version:(\S+)", info)
        version = "redis " + (m.group(1) if m else "?")
        say("bench: Redis Streams, appendfsync %s: %s on 127.0.0.1:%d, %d records"
            % (fsync, version, port, count))
        cpu0 = ingest.proc_cpu_seconds(p.pid)
        got = run_client([REDIS_XADD, "--port", str(port), "--stream", "bench",
                               "--window", str(REDIS_WINDOW), "--count", str(count),
                               lines_path],
                         client_timeout(ctx, count),
                         os.path.join(ctx.logdir, "redis_xadd-%s.log" % fsync))
        server_cpu = ingest.proc_cpu_seconds(p.pid) - cpu0
        xlen = redis_cmd(port, "XLEN", "bench")
        if got["records"] != count or xlen != count:
            raise ingest.BenchError("Redis Streams, appendfsync %s: %d records sent, XLEN says %s, "
                                 "%d wanted" % (fsync, got["records"], xlen, count))
        disk = tree_bytes(os.path.join(d, "appendonlydir"))
    finally:
        status = ctx.daemons.stop(p)
    if status != 0:
        raise ingest.BenchError("%s exited %s after SIGTERM (log: %s)" % (name, status, log))
    say("bench:   %.0f records/s, %.1f MB/s, server CPU %.1f s, client CPU %.1f s, AOF %.0f MB"
        % (got["records_per_s"], got["mb_per_s"], server_cpu, got["client_cpu_s"], disk / 1e6))
    if os.environ.get("BENCH_KEEP") != "1":
        shutil.rmtree(d, ignore_errors=True)
    return row("Redis Streams", "appendfsync %s" % fsync, REDIS_DURABILITY[fsync],
               "%s, pipelined, window %d" % (got["client"], REDIS_WINDOW), got, server_cpu, disk,
               version)


# ---- NATS JetStream ----------------------------------------------------------------------

def nats_conf(path, store, sync):
    with open(path, "w") as f:
        f.write("listen: 127.0.0.1:-1\n"  # -1: a free port, chosen by the server itself
                "http: 127.0.0.1:-1\n"  # the monitoring endpoint, for /jsz and /varz
                "jetstream {\n"
                '  store_dir: "%s"\n' % store +
                ("  sync_interval: always\n" if sync == "always" else "") +
                "}\n")


def nats_sync_always_supported(d):
    """Whether this nats-server takes `sync_interval: always` (2.10 on):
    2.9 rejects the field as unknown."""
    conf = os.path.join(d, "probe.conf")
    nats_conf(conf, os.path.join(d, "probe-store"), "always")
    r = subprocess.run(["nats-server", "-t", "-c", conf], capture_output=True, text=True,
                       timeout=30)
    return r.returncode == 0


def nats_run(ctx, lines_path, count, sync, say, note=None):
    """One fresh nats-server with JetStream (file storage) and one
    nats_publish run into a new stream."""
    d = os.path.join(ctx.workdir, "nats", sync)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    store = os.path.join(d, "store")
    conf = os.path.join(d, "nats.conf")
    nats_conf(conf, store, sync)
    name = "nats-server (%s)" % ("sync_interval: always" if sync == "always" else "default sync")
    log = os.path.join(ctx.logdir, "nats-%s.log" % sync)
    p = ctx.daemons.start(name, ["nats-server", "-c", conf], log)
    try:
        ingest.wait_for(name, lambda: log_match(log, r"Server is ready"), 30, proc=p, log=log)
        port = int(log_match(log, r"client connections on 127\.0\.0\.1:(\d+)").group(1))
        mon = int(log_match(log, r"http monitor on 127\.0\.0\.1:(\d+)").group(1))
        version = "nats-server " + http_json("http://127.0.0.1:%d/varz" % mon).get("version", "?")
        say("bench: NATS JetStream, %s: %s on 127.0.0.1:%d, %d records"
            % (sync if sync == "always" else "default sync", version, port, count))
        cpu0 = ingest.proc_cpu_seconds(p.pid)
        got = run_client([NATS_PUBLISH, "--url", "nats://127.0.0.1:%d" % port, "--create",
                               "--stream", "BENCH", "--subject", "bench.peers",
                               "--max-pending", str(NATS_MAX_PENDING), "--count", str(count),
                               lines_path],
                         client_timeout(ctx, count),
                         os.path.join(ctx.logdir, "nats_publish-%s.log" % sync))
        server_cpu = ingest.proc_cpu_seconds(p.pid) - cpu0
        # The server's own count, from its monitoring endpoint.
        jsz = http_json("http://127.0.0.1:%d/jsz?accounts=true&streams=true" % mon)
        msgs = None
        for acc in jsz.get("account_details") or []:
            for st in acc.get("stream_detail") or []:
                if st.get("name") == "BENCH":
                    msgs = st.get("state", {}).get("messages")
        if got["records"] != count or got["acked"] != count or msgs != count:
            raise ingest.BenchError("NATS JetStream, %s: %d records sent, %d acked, the stream holds "
                                 "%s, %d wanted" % (sync, got["records"], got["acked"], msgs,
                                                    count))
        disk = tree_bytes(store)
    finally:
        status = ctx.daemons.stop(p)
    # nats-server ends with status 1 on SIGTERM once it has shut down cleanly.
    if status != 0 and not (status == 1 and log_match(log, r"Server Exiting")):
        raise ingest.BenchError("%s exited %s after SIGTERM (log: %s)" % (name, status, log))
    say("bench:   %.0f records/s, %.1f MB/s, server CPU %.1f s, client CPU %.1f s, store %.0f MB"
        % (got["records_per_s"], got["mb_per_s"], server_cpu, got["client_cpu_s"], disk / 1e6))
    if os.environ.get("BENCH_KEEP") != "1":
        shutil.rmtree(d, ignore_errors=True)
    setting = "file storage, " + ("sync_interval: always" if sync == "always"
                                  else "default sync interval")
    return row("NATS JetStream", setting, NATS_DURABILITY[sync],
               "%s, async publish, max pending %d" % (got["client"], NATS_MAX_PENDING), got,
               server_cpu, disk, version, note)


# ---- the entry point ---------------------------------------------------------------------

def run_peers(ctx, lines_path, count, say):
    """Every peer run on the first count lines of lines_path; a list of
    dicts, one per run (see bench/peers/README.md for the keys). Raises
    bench/ingest's BenchError (one class for every part: fabric.load_script)
    on a failed run or a count that does not match.
    ctx: .workdir (scratch: redis/ and nats/ go under it), .daemons
    (bench/ingest's Daemons), .logdir, .quick."""
    check_binaries()
    for tool in ("redis-server", "nats-server"):
        if shutil.which(tool) is None:
            raise ingest.BenchError("%s is not installed (scripts/install-deps bench)" % tool)
    os.makedirs(ctx.workdir, exist_ok=True)
    os.makedirs(ctx.logdir, exist_ok=True)
    out = []
    for fsync in ("always", "everysec"):
        out.append(redis_run(ctx, lines_path, count, fsync, say))
    nats_dir = os.path.join(ctx.workdir, "nats")
    os.makedirs(nats_dir, exist_ok=True)
    if nats_sync_always_supported(nats_dir):
        out.append(nats_run(ctx, lines_path, count, "always", say))
        out.append(nats_run(ctx, lines_path, count, "default", say))
    else:
        out.append(nats_run(ctx, lines_path, count, "default", say,
                            note="this nats-server has no way to fsync every write: its "
                                 "jetstream block rejects sync_interval (added in 2.10)"))
    return out


def render(rows):
    """A small Markdown table of the runs."""
    lines = ["| peer | setting | durability | records/s | MB/s | server CPU s | client CPU s "
             "| on disk MB |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append("| %s | %s | %s | %.0f | %.1f | %.1f | %.1f | %.0f |" % (
            r["peer"], r["setting"], r["durability"], r["records_per_s"], r["mb_per_s"],
            r["server_cpu_s"], r["client_cpu_s"], r["disk_bytes"] / 1e6))
    notes = ["- %s: %s; client %s" % (r["server_version"], r["setting"], r["client"])
             for r in rows]
    notes += ["- %s: %s" % (r["peer"], r["note"]) for r in rows if r.get("note")]
    return "\n".join(lines + [""] + notes) + "\n"


def main():
    ap = argparse.ArgumentParser(description="Redis Streams and NATS JetStream on this machine, "
                                 "fed the lines of a file (bench/peers/README.md).")
    ap.add_argument("lines", nargs="?", help="input, one record per line (default: bench/ingest's "
                    "100-byte lines, generated under bench/run/data/ if missing)")
    ap.add_argument("--count", type=int, default=1_000_000, help="records per run (default 1M)")
    ap.add_argument("--workdir", default=os.path.join(REPO, "bench", "run", "peers"),
                    help="scratch directory (default bench/run/peers)")
    ap.add_argument("--no-build", action="store_true", help="do not run make for the producers")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()

    if not args.no_build:
        subprocess.run(["make", "--no-print-directory", "-C", REPO, "-f", "bench/peers/peers.mk",
                        "bench-peers-build"], check=True)
    lines = args.lines or ingest.dataset(os.path.join(REPO, "bench", "run", "data"), "lines",
                                         args.count)
    ctx = types.SimpleNamespace(workdir=os.path.abspath(args.workdir),
                                logdir=os.path.join(os.path.abspath(args.workdir), "logs"),
                                daemons=ingest.Daemons(), quick=False)
    signal.signal(signal.SIGTERM, ingest.on_signal)
    signal.signal(signal.SIGHUP, ingest.on_signal)
    try:
        rows = run_peers(ctx, os.path.abspath(lines), args.count, ingest.say)
    except KeyboardInterrupt:
        ingest.say("bench: interrupted; stopping everything")
        return 130
    except ingest.BenchError as e:
        ingest.say("bench: FAILED: %s" % e)
        return 1
    finally:
        ctx.daemons.stop_all()
    ingest.say("")
    ingest.say(render(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
