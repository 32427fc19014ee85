"""The measurements of `make bench`, one function per part; bench/bench runs
them in order on one fabric (bench/fabric.py) and bench/report.py prints them.
Each returns plain dicts (saved as JSON as they are)."""

import glob
import json
import os
import subprocess

import fabric
from fabric import BenchError, say, ingest, fwbench

MB = ingest.MB

# The two inputs of bench/ingest: 100-byte log-like lines (lz4 compresses them
# to ~0.44) and 1 KiB incompressible records (base64 of random bytes).
DATA = {
    "lines": {"label": "100 B lines", "width": ingest.LINE_BYTES, "codec": "lz4"},
    "kib": {"label": "1 KiB random", "width": ingest.KIB_RECORD, "codec": "none"},
}


# ---- limits -------------------------------------------------------------------------------

def limits(ctx):
    out = {}
    fio_dir = os.path.join(ctx.base, "fio")
    for key, bs, size in (("fio_1m", "1M", ctx.cfg["fio_size"]),
                          ("fio_64k", "64k", ctx.cfg["fio_size_64k"])):
        say("bench: fio, bs=%s, %s, fdatasync after each write" % (bs, size))
        out[key] = ingest.fio_fdatasync(fio_dir, bs, size)
        say("bench:   %.1f MB/s, %.2f ms per fdatasync" % (out[key]["mb_per_s"],
                                                           out[key]["fdatasync_mean_ms"]))
    say("bench: iperf3 on 127.0.0.1 for %d s" % ctx.cfg["iperf_seconds"])
    out["iperf3"] = ingest.iperf3_loopback(ctx.daemons, ctx.cfg["iperf_seconds"], ctx.logdir)
    say("bench:   %.1f MB/s" % out["iperf3"]["mb_per_s"])
    for kind in ("lines", "kib"):
        say("bench: lz4 on %s, in 256 KiB blocks as a producer builds them" % DATA[kind]["label"])
        got = fwbench(["lz4", "--input", ctx.inputs[kind], "--seconds", str(ctx.cfg["lz4_seconds"])],
                      os.path.join(ctx.logdir, "fwbench.log"), 120)
        out["lz4_" + kind] = got
        say("bench:   compress %.0f MB/s, decompress %.0f MB/s, ratio %.2f"
            % (got["compress_mb_per_s"], got["decompress_mb_per_s"], got["ratio"]))
    return out


# ---- ingest ---------------------------------------------------------------------------------

def ingest_specs(quick):
    """(nodes, data, acks, threads) of each ingest run."""
    if quick:
        return [(1, "lines", "durable", 1), (1, "lines", "durable", 4),
                (1, "lines", "durable", 16), (1, "lines", "written", 1),
                (1, "kib", "durable", 1), (1, "kib", "written", 1),
                (2, "lines", "durable", 4), (2, "kib", "durable", 4)]
    return [(n, d, a, t) for n in (1, 2) for d in ("lines", "kib")
            for a in ("durable", "written") for t in (1, 4, 16)]


def run_name(nodes, data, acks, threads):
    return "%s, %s, %d thread%s, %d writer%s" % (DATA[data]["label"], acks, threads,
                                                 "s" if threads > 1 else "", nodes,
                                                 "s" if nodes > 1 else "")


def produce_run(ctx, name, category, data, acks, threads, records, buckets=None,
                extra=None, create=True):
    """Creates category (unless told not to), sends `records` of the input through
    `fwbench produce`, and checks the writers' counters against what was sent."""
    buckets = buckets or ctx.buckets
    own_s = None
    if create:
        own_s = ctx.fabric.create_category(category, buckets, DATA[data]["codec"],
                                           ctx.sync_interval, timeout=ctx.cfg["own_timeout"])
    f = ctx.fabric
    before = {w.name: w.scrape() for w in f.writers}
    cpu0 = {w.name: w.cpu_seconds() for w in f.writers}
    say("bench: (%s) %d records into %s (%d buckets)" % (name, records, category, buckets))
    got = fwbench(["produce", "--zk", f.zk, "--category", category, "--input", ctx.inputs[data],
                   "--records", str(records), "--threads", str(threads), "--acks", acks]
                  + (extra or []), os.path.join(ctx.logdir, "fwbench.log"), ctx.cfg["timeout"])
    sent = records + got.get("warmup_records", 0)

    def settled():
        return f.writer_totals("freeway_calligraphus_records_appended_total",
                               category=category) >= sent
    try:
        ingest.wait_for("the writers' counters to count every record", settled, 15)
    except BenchError:
        pass  # reported as a count mismatch below
    after = {w.name: w.scrape() for w in f.writers}

    def delta(metric, **labels):
        return sum(ingest.metric(after[w], metric, **labels) -
                   ingest.metric(before[w], metric, **labels) for w in after)
    appended = delta("freeway_calligraphus_records_appended_total", category=category)
    acked = delta("freeway_calligraphus_records_acked_total", category=category)
    block_bytes = delta("freeway_calligraphus_bytes_appended_total", category=category)
    fsyncs = delta("freeway_calligraphus_fsync_seconds_count")
    fsync_sum = delta("freeway_calligraphus_fsync_seconds_sum")
    problems = []
    if got["exit_status"] != 0:
        problems.append("fwbench produce exited %d (acked %d, failed %d, refused %d)"
                        % (got["exit_status"], got.get("acked", 0), got.get("failed", 0),
                           got.get("refused", 0)))
    if appended != sent:
        problems.append("the writers appended %d records, not %d" % (appended, sent))
    if acked != sent:
        problems.append("the writers acked %d records, not %d" % (acked, sent))
    for w in f.writers:
        if not w.alive():
            problems.append("%s died (status %d; log %s)" % (w.name, w.proc.returncode, w.log))
    secs = got["seconds"]
    r = {
        "name": name, "category": category, "data": data, "acks": acks, "threads": threads,
        "writers": len(f.writers), "buckets": buckets, "records": records,
        "record_bytes": DATA[data]["width"], "codec": DATA[data]["codec"],
        "seconds": secs, "records_per_s": got["records_per_s"], "mb_per_s": got["mb_per_s"],
        "disk_mb_per_s": block_bytes / secs / MB if secs else 0,
        "stored_ratio": block_bytes / got["payload_bytes"] if got["payload_bytes"] else 0,
        "fsyncs_per_s": fsyncs / secs if secs else 0,
        "fsync_mean_ms": fsync_sum / fsyncs * 1000 if fsyncs else 0,
        "producer_cpu_s": got["cpu_s"],
        "writer_cpu_s": sum(w.cpu_seconds() - cpu0[w.name] for w in f.writers if w.alive()),
        "writer_rss_peak_mib": max(w.rss_peak_mib() for w in f.writers),
        "blocks": got["blocks"], "requests": got["requests"],
        "own_seconds": own_s, "command": got["command"], "problems": problems,
    }
    say("bench:   %s records/s, %.1f MB/s (disk %.1f MB/s), %.2f s%s" % (
        format(round(r["records_per_s"]), ","), r["mb_per_s"], r["disk_mb_per_s"], secs,
        "".join("; PROBLEM: " + p for p in problems)))
    return r


def ingest_runs(ctx, nodes, skip=()):
    out = []
    for n, data, acks, threads in ingest_specs(ctx.quick):
        if n != nodes or run_name(n, data, acks, threads) in skip:
            continue
        category = "in_%s_%s_t%d_w%d" % (data, acks[0], threads, n)
        records = ctx.cfg["lines"] if data == "lines" else ctx.cfg["kib_records"]
        fio = None
        os.sync()  # each run starts with nothing of the last one left to write back
        if (n, data, acks, threads) == (1, "kib", "durable", 1):
            # The yardstick of the 70% target, taken right before the run: the
            # disk bursts, so a figure from minutes earlier may be 3x off.
            say("bench: fio bs=1M again, right before the 1 KiB durable run")
            fio = ingest.fio_fdatasync(os.path.join(ctx.base, "fio"), "1M", ctx.cfg["fio_size"])
            say("bench:   %.1f MB/s" % fio["mb_per_s"])
        try:
            out.append(produce_run(ctx, run_name(n, data, acks, threads), category, data, acks,
                                   threads, records))
            if fio:
                out[-1]["fio_1m_adjacent"] = fio
        except BenchError as e:
            say("bench:   FAILED: %s" % e)
            out.append({"name": run_name(n, data, acks, threads), "category": category,
                        "data": data, "acks": acks, "threads": threads, "writers": n,
                        "failed": str(e), "problems": [str(e)]})
    return out


def ownership_split(ctx):
    """How many buckets each writer owns (the 2-writer runs)."""
    return {w.name: ingest.metric(w.scrape(), "freeway_calligraphus_open_buckets")
            for w in ctx.fabric.writers}


# ---- end-to-end latency ----------------------------------------------------------------------

FSYNC = "freeway_calligraphus_fsync_seconds"


def fsync_buckets(fab):
    """The writers' fdatasync histogram, summed: {upper bound: count at or below}."""
    out = {}
    for w in fab.writers:
        for (name, labels), v in w.scrape().items():
            if name == FSYNC + "_bucket":
                le = float(dict(labels)["le"])
                out[le] = out.get(le, 0.0) + v
    return out


def fsync_between(before, after):
    """fdatasyncs between two fsync_buckets readouts: count, and the bucket
    bounds holding the 50th and 99th percentiles (in ms; inf past the last)."""
    bounds = sorted(after)
    cum = [after[b] - before.get(b, 0.0) for b in bounds]
    total = cum[-1] if cum else 0

    def quantile(q):
        for b, c in zip(bounds, cum):
            if total and c >= q * total:
                return b * 1000
        return None
    return {"count": int(total), "p50_le_ms": quantile(0.5), "p99_le_ms": quantile(0.99)}


def latency_runs(ctx, peak_records_per_s):
    out = []
    for share in (0.1, 0.5, 0.9):
        rate = share * peak_records_per_s
        category = "lat_%02d" % round(share * 100)
        ctx.fabric.create_category(category, ctx.buckets, "lz4", ctx.latency_sync_interval)
        cdf = os.path.join(ctx.base, "cdf-%s.txt" % category)
        say("bench: latency at %.0f%% of peak: %s records/s of 100 B for %d s (+%d s warm-up)"
            % (100 * share, format(round(rate), ","), ctx.cfg["latency_seconds"],
               ctx.cfg["latency_warmup"]))
        fsync0 = fsync_buckets(ctx.fabric)
        try:
            got = fwbench(["latency", "--zk", ctx.fabric.zk, "--category", category, "--input",
                           ctx.inputs["lines"], "--rate", "%.0f" % rate, "--seconds",
                           str(ctx.cfg["latency_seconds"]), "--warmup",
                           str(ctx.cfg["latency_warmup"]), "--cdf", cdf] + ctx.latency_args,
                          os.path.join(ctx.logdir, "fwbench.log"), ctx.cfg["timeout"])
        except BenchError as e:
            out.append({"share": share, "rate": rate, "failed": str(e), "problems": [str(e)]})
            continue
        problems = []
        if got["exit_status"] != 0:
            problems.append("fwbench latency exited %d: sent %d, acked %d, received %d, "
                            "duplicates %d" % (got["exit_status"], got["sent"], got["acked"],
                                               got["received"], got["duplicates"]))
        got.update({"share": share, "category": category, "problems": problems,
                    "cdf": open(cdf).read() if os.path.exists(cdf) else "",
                    "fsync": fsync_between(fsync0, fsync_buckets(ctx.fabric))})
        e, f = got["end_to_end"], got["fsync"]
        say("bench:   end to end p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms; ack p50 %.2f ms, "
            "p99 %.2f ms; %d fdatasyncs, p50 <= %s ms, p99 <= %s ms"
            % (e["p50_ms"], e["p99_ms"], e["p999_ms"], got["ack"]["p50_ms"],
               got["ack"]["p99_ms"], f["count"], f["p50_le_ms"], f["p99_le_ms"]))
        out.append(got)
    return out


# ---- ptail ---------------------------------------------------------------------------------------

def ptail_runs(ctx, category, records):
    """One consumer, then 10 at once, each reading `records` from the earliest."""
    out = []
    for consumers in (1, 10):
        each = records if consumers == 1 else min(records, ctx.cfg["ptail_records_10"])
        say("bench: ptail: %d consumer%s, %s records each from %s" % (
            consumers, "s" if consumers > 1 else "", format(each, ","), category))
        cpu0 = ctx.fabric.ptail.cpu_seconds()
        try:
            got = fwbench(["consume", "--zk", ctx.fabric.zk, "--category", category,
                           "--records", str(each), "--consumers", str(consumers)],
                          os.path.join(ctx.logdir, "fwbench.log"), ctx.cfg["timeout"])
        except BenchError as e:
            out.append({"consumers": consumers, "failed": str(e), "problems": [str(e)]})
            continue
        got["ptail_cpu_s"] = ctx.fabric.ptail.cpu_seconds() - cpu0
        got["problems"] = ([] if got["exit_status"] == 0 else
                           ["fwbench consume exited %d" % got["exit_status"]])
        say("bench:   slowest %s records/s, together %s records/s (%.0f MB/s)" % (
            format(round(got["min_records_per_s"]), ","),
            format(round(got["sum_records_per_s"]), ","), got["sum_mb_per_s"]))
        out.append(got)
    return out


# ---- scale: buckets on one writer -------------------------------------------------------------

def scale_runs(ctx):
    out = []
    for buckets in (1, 100, 10000):
        category = "scale_%d" % buckets
        name = "%d bucket%s" % (buckets, "s" if buckets > 1 else "")
        try:
            r = produce_run(ctx, name, category, "lines", "durable", 1, ctx.cfg["scale_records"],
                            buckets=buckets, extra=["--touch-buckets", str(buckets)])
        except BenchError as e:
            say("bench:   FAILED: %s" % e)
            r = {"name": name, "buckets": buckets, "failed": str(e), "problems": [str(e)]}
        w = ctx.fabric.writers[0]
        r["open_fds"] = len(os.listdir("/proc/%d/fd" % w.proc.pid)) if w.alive() else 0
        out.append(r)
    return out


# ---- copier lag (bench/copier-lag, in its own directory) ----------------------------------------

def copier_run(ctx):
    env = dict(os.environ)
    env["BENCH_ROOT"] = os.path.join(ctx.base, "copier-lag")
    args = [os.path.join(fabric.HERE, "copier-lag"), "--no-build"]
    if ctx.quick:
        args.append("--quick")
        env.setdefault("BENCH_SECONDS", "10")
        env.setdefault("BENCH_PEAK_RECORDS", "200000")
        env.setdefault("BENCH_FIO_SIZE", "256M")
        env.setdefault("BENCH_FIO_SIZE_64K", "128M")
        env.setdefault("BENCH_FIO_SIZE_2JOBS", "128M")
    log = os.path.join(ctx.logdir, "copier-lag.log")
    say("bench: copier lag: %s (output in %s)" % (" ".join(args), log))
    before = set(glob.glob(os.path.join(ingest.RESULTS, "copier-lag-*.json")))
    with open(log, "w") as out:
        status = subprocess.run(args, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    new = sorted(set(glob.glob(os.path.join(ingest.RESULTS, "copier-lag-*.json"))) - before)
    if not new:
        return {"failed": "bench/copier-lag exited %d without a result (log %s)" % (status, log),
                "problems": ["bench/copier-lag exited %d (log %s)" % (status, log)]}
    got = json.load(open(new[-1]))
    got["result_file"] = os.path.relpath(new[-1], ingest.REPO)
    got["exit_status"] = status
    got["problems"] = list(got.get("problems", []))
    if status != 0 and not got["problems"]:
        got["problems"].append("bench/copier-lag exited %d (log %s)" % (status, log))
    return got
