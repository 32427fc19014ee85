"""The report of `make bench`: one Markdown text (printed and saved), the
design targets each beside its measurement, and the PNG plots (gnuplot)."""

import os
import shutil
import subprocess

from fabric import ingest

TARGET_LINES_PER_S = 2_000_000
TARGET_FIO_SHARE = 0.70
TARGET_PEER_RATIO = 3.0
TARGET_E2E_P99_MS = 10.0
TARGET_E2E_P50_MS = 2.0
TARGET_PTAIL_ONE = 2.0
TARGET_PTAIL_TEN = 0.5
TARGET_COPIER_P99_S = 1.0
TARGET_SCALE = 0.5
TARGET_RSS_MIB = 128


def failed(r):
    """A part that produced no figure (its "failed" says why; fwbench's own
    "failed" is a count)."""
    return r is None or isinstance(r.get("failed"), str)


def num(x):
    return format(round(x), ",")


def ratio(x, of, pct=True):
    if not of:
        return "n/a"
    return "%.0f%%" % (100 * x / of) if pct else "%.2f x" % (x / of)


def find_ingest(report, data, acks, threads, writers=1):
    for r in report.get("ingest", []):
        if (r.get("data"), r.get("acks"), r.get("threads"), r.get("writers")) == \
                (data, acks, threads, writers) and not failed(r):
            return r
    return None


def find_peer(report, peer, setting_word):
    for p in report.get("peers", []):
        if p.get("peer", "").startswith(peer) and setting_word in p.get("setting", "") \
                and not failed(p):
            return p
    return None


# ---- targets ---------------------------------------------------------------------------------

def targets(report):
    out = []
    lim = report.get("limits", {})

    def add(target, measured, ratio_text, ok):
        out.append({"target": target, "measured": measured, "ratio": ratio_text,
                    "verdict": "no figure" if ok is None else ("met" if ok else "NOT met")})

    lines = find_ingest(report, "lines", "durable", 1)
    add("100-byte lines, durable, one producer, one writer: >= 2,000,000 records/s",
        "%s records/s" % num(lines["records_per_s"]) if lines else "-",
        ratio(lines["records_per_s"], TARGET_LINES_PER_S, False) if lines else "-",
        lines["records_per_s"] >= TARGET_LINES_PER_S if lines else None)
    kib = find_ingest(report, "kib", "durable", 1)
    # The disk bursts: against fio run right before the 1 KiB run, else the
    # higher of fio before and after all runs.
    fio = max(lim.get(k, {}).get("mb_per_s", 0) for k in ("fio_1m", "fio_1m_after"))
    if kib and "fio_1m_adjacent" in kib:
        fio = kib["fio_1m_adjacent"]["mb_per_s"]
    add("1 KiB incompressible, durable: >= 70% of fio bs=1M fdatasync (run right before it)",
        "%.1f of %.1f MB/s" % (kib["mb_per_s"], fio) if kib else "-",
        ratio(kib["mb_per_s"], fio) if kib else "-",
        kib["mb_per_s"] >= TARGET_FIO_SHARE * fio if kib and fio else None)
    for peer, word, ours_acks in (("Redis", "always", "durable"), ("Redis", "everysec", "written"),
                                  ("NATS", "", "written")):
        p = find_peer(report, peer, word)
        ours = find_ingest(report, "lines", ours_acks, 1)
        label = "%s %s" % (p["peer"], p["setting"]) if p else "%s %s" % (peer, word)
        add("100-byte lines (%s acks) >= 3x %s" % (ours_acks, label),
            "%s vs %s records/s" % (num(ours["records_per_s"]), num(p["records_per_s"]))
            if p and ours else "-",
            ratio(ours["records_per_s"], p["records_per_s"], False) if p and ours else "-",
            ours["records_per_s"] >= TARGET_PEER_RATIO * p["records_per_s"] if p and ours
            else None)
    lat = [r for r in report.get("latency", []) if r.get("share") == 0.1 and not failed(r)]
    if lat:
        e = lat[0]["end_to_end"]
        add("end to end at 10% of peak, durable: p99 <= 10 ms", "%.2f ms" % e["p99_ms"],
            ratio(e["p99_ms"], TARGET_E2E_P99_MS), e["p99_ms"] <= TARGET_E2E_P99_MS)
        add("end to end at 10% of peak, durable: p50 <= 2 ms", "%.2f ms" % e["p50_ms"],
            ratio(e["p50_ms"], TARGET_E2E_P50_MS), e["p50_ms"] <= TARGET_E2E_P50_MS)
    else:
        add("end to end at 10% of peak: p99 <= 10 ms, p50 <= 2 ms", "-", "-", None)
    pt = {r.get("consumers"): r for r in report.get("ptail", []) if not failed(r)}
    if lines and 1 in pt:
        one = pt[1]["min_records_per_s"]
        add("ptail to one consumer >= 2x ingest (100 B lines, durable)",
            "%s vs %s records/s" % (num(one), num(lines["records_per_s"])),
            ratio(one, lines["records_per_s"], False), one >= TARGET_PTAIL_ONE * lines["records_per_s"])
        if 10 in pt:
            slow = pt[10]["min_records_per_s"]
            want = TARGET_PTAIL_TEN * TARGET_PTAIL_ONE * lines["records_per_s"]
            add("ptail, 10 consumers at once: each >= 50% of 2x ingest",
                "slowest %s records/s" % num(slow), ratio(slow, want), slow >= want)
    else:
        add("ptail >= 2x ingest to one consumer", "-", "-", None)
    cp = report.get("copier")
    if cp and not failed(cp) and "paced" in cp:
        q = cp["paced"]["delay"]["quantiles"]["p99"]["seconds"]
        add("copier lag p99 <= 1 s at 50% of peak", "%.3f s" % q, ratio(q, TARGET_COPIER_P99_S),
            q <= TARGET_COPIER_P99_S)
    else:
        add("copier lag p99 <= 1 s at 50% of peak", "-", "-", None)
    sc = {r.get("buckets"): r for r in report.get("scale", []) if not failed(r)}
    if 1 in sc and 10000 in sc:
        add("10,000 buckets on one writer >= 50% of one bucket's throughput",
            "%s vs %s records/s" % (num(sc[10000]["records_per_s"]), num(sc[1]["records_per_s"])),
            ratio(sc[10000]["records_per_s"], sc[1]["records_per_s"]),
            sc[10000]["records_per_s"] >= TARGET_SCALE * sc[1]["records_per_s"])
    else:
        add("10,000 buckets >= 50% of one bucket's throughput", "-", "-", None)
    rss = max([r.get("writer_rss_peak_mib", 0) for r in report.get("ingest", []) +
               report.get("scale", [])] + [0])
    add("calligraphus RSS at peak < 128 MiB", "%.1f MiB" % rss, ratio(rss, TARGET_RSS_MIB),
        rss < TARGET_RSS_MIB if rss else None)
    return out


# ---- the text --------------------------------------------------------------------------------

def render(report):
    s = report["settings"]
    lim = report.get("limits", {})
    fio1m = lim.get("fio_1m", {}).get("mb_per_s", 0)
    net = lim.get("iperf3", {}).get("mb_per_s", 0)
    L = ["# freeway benchmark: %s (%s)" % (report["date"], report["mode"]), ""]
    L += ["## Settings", ""]
    dev = s["device_info"]
    L.append("- machine: %s, %d cores (%s), %.1f GiB RAM, kernel %s"
             % (s["host"], s["nproc"], s["cpu"], s["ram_gib"], s["kernel"]))
    L.append("- disk under the roots: %s on %s (%s; disk %s, rotational=%s, write cache %s)"
             % (s["root"], s["device"], s["filesystem"], dev.get("disk", "?"),
                dev.get("rotational", "?"), dev.get("write_cache", "?")))
    L.append("- freeway %s, release build; %d buckets per category unless said; sync interval: "
             "%s; latency runs: sync interval %s, producer flags %s"
             % (s["git"], report["buckets"], report["sync_interval"] or "category default",
                report["latency_sync_interval"] or "category default",
                " ".join(report["latency_args"]) or "defaults"))
    L.append("- %s" % "; ".join("%s: %s" % kv for kv in s["versions"].items()
                                if kv[0] not in ("calligraphus", "freeway")))
    L += ["", "## Targets (../shared/design.md)", "", "| target | measured | ratio | verdict |",
          "|---|---:|---:|---|"]
    for t in report.get("targets", []):
        L.append("| %s | %s | %s | %s |" % (t["target"], t["measured"], t["ratio"], t["verdict"]))

    if lim:
        L += ["", "## Limits of this machine, measured in this run", "",
              "| limit | MB/s | syncs/s | mean sync | p99 sync |", "|---|---:|---:|---:|---:|"]
        kib = find_ingest(report, "kib", "durable", 1)
        adjacent = kib.get("fio_1m_adjacent") if kib else None
        for f, when in ((lim.get("fio_1m"), ", first"), (lim.get("fio_64k"), ""),
                        (adjacent, ", right before the 1 KiB durable run"),
                        (lim.get("fio_1m_after"), ", after the runs")):
            if f:
                L.append("| fio write bs=%s + fdatasync, %s%s | %.1f | %.0f | %.2f ms | %.2f ms |"
                         % (f["bs"], f["size"], when, f["mb_per_s"], f["fdatasyncs_per_s"],
                            f["fdatasync_mean_ms"], f["fdatasync_p99_ms"]))
        if "iperf3" in lim:
            L.append("| iperf3, one TCP stream on 127.0.0.1 | %.1f | | | |" % net)
        for kind, label in (("lines", "100 B lines"), ("kib", "1 KiB random")):
            z = lim.get("lz4_" + kind)
            if z:
                L.append("| lz4 compress, one core, %s (ratio %.2f) | %.1f | | | |"
                         % (label, z["ratio"], z["compress_mb_per_s"]))
                L.append("| lz4 decompress, one core, %s | %.1f | | | |"
                         % (label, z["decompress_mb_per_s"]))

    if report.get("ingest"):
        lz4 = lim.get("lz4_lines", {}).get("compress_mb_per_s", 0)
        L += ["", "## Ingest (`fwbench produce`: threads share one producer; clock from the first "
              "send to the last ack)", "",
              "| run | records/s | MB/s | disk MB/s | vs fio 1M | vs iperf3 | vs lz4 | "
              "fsyncs/s | mean fsync | producer CPU s | writer CPU s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in report["ingest"]:
            if failed(r):
                L.append("| %s | failed (see Problems) | | | | | | | | | |" % r["name"])
                continue
            L.append("| %s | %s | %.1f | %.1f | %s | %s | %s | %.0f | %.2f ms | %.1f | %.1f |" % (
                r["name"], num(r["records_per_s"]), r["mb_per_s"], r["disk_mb_per_s"],
                ratio(r["disk_mb_per_s"], r.get("fio_1m_adjacent", {}).get("mb_per_s", fio1m)),
                ratio(r["mb_per_s"], net),
                ratio(r["mb_per_s"], lz4) if r["codec"] == "lz4" else "-",
                r["fsyncs_per_s"], r["fsync_mean_ms"], r["producer_cpu_s"], r["writer_cpu_s"]))
        L.append("")
        L.append("disk MB/s: block bytes appended (after lz4) per second, the figure fio's is "
                 "beside; vs lz4: payload MB/s against one core's lz4 compression speed (the "
                 "producer compresses on one I/O thread).")
        if report.get("two_writer_split"):
            L.append("Buckets owned by each writer in the 2-writer runs: %s." % ", ".join(
                "%s %d" % kv for kv in sorted(report["two_writer_split"].items())))

    peers = report.get("peers")
    if peers:
        L += ["", "## Peers on this machine, same 100 B lines, one producer process", "",
              "| peer | setting | durability | client | records/s | MB/s | freeway (same "
              "durability) | freeway / peer |", "|---|---|---|---|---:|---:|---:|---:|"]
        for p in peers:
            if failed(p):
                L.append("| %s | %s | | | failed | | | |" % (p.get("peer"), p.get("setting")))
                continue
            acks = "durable" if "always" in p["setting"] else "written"
            ours = find_ingest(report, "lines", acks, 1)
            L.append("| %s | %s | %s | %s | %s | %.1f | %s (%s) | %s |" % (
                p["peer"], p["setting"], p["durability"], p["client"], num(p["records_per_s"]),
                p["mb_per_s"], num(ours["records_per_s"]) if ours else "-", acks,
                ratio(ours["records_per_s"], p["records_per_s"], False) if ours else "-"))

    lat = report.get("latency")
    if lat:
        L += ["", "## End to end: send -> consumer callback (100 B lines, durable acks)", "",
              "| load | records/s | e2e p50 | e2e p99 | e2e p99.9 | e2e max | ack p50 | ack p99 "
              "| fdatasyncs | fdatasync p50 | fdatasync p99 | p99 vs 10 ms | p50 vs 2 ms |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in lat:
            if failed(r):
                L.append("| %.0f%% | failed | | | | | | | | | | | |" % (100 * r["share"]))
                continue
            e, a = r["end_to_end"], r["ack"]
            f = r.get("fsync", {})
            le = lambda v: "<= %g ms" % v if v is not None else "-"
            L.append("| %.0f%% of peak | %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | "
                     "%.2f ms | %s | %s | %s | %s | %s |" % (
                         100 * r["share"], num(r["rate"]), e["p50_ms"], e["p99_ms"],
                         e["p999_ms"], e["max_ms"], a["p50_ms"], a["p99_ms"],
                         num(f.get("count", 0)), le(f.get("p50_le_ms")), le(f.get("p99_le_ms")),
                         ratio(e["p99_ms"], TARGET_E2E_P99_MS), ratio(e["p50_ms"], TARGET_E2E_P50_MS)))
        L += ["", "fdatasync percentiles are the writers' histogram bucket bounds "
              "(freeway_calligraphus_fsync_seconds) over the same run."]

    pt = report.get("ptail")
    if pt:
        lines = find_ingest(report, "lines", "durable", 1)
        base = lines["records_per_s"] if lines else 0
        L += ["", "## ptail: consumers reading a category from the start (page cache)", "",
              "| consumers | records each | slowest records/s | all together records/s | "
              "together MB/s | slowest vs ingest | ptail CPU s | consumers' CPU s | wall s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in pt:
            if failed(r):
                L.append("| %d | failed | | | | | | | |" % r["consumers"])
                continue
            L.append("| %d | %s | %s | %s | %.1f | %s | %.2f | %.2f | %.2f |" % (
                r["consumers"], num(r["records_each"]), num(r["min_records_per_s"]),
                num(r["sum_records_per_s"]), r["sum_mb_per_s"],
                ratio(r["min_records_per_s"], base, False), r["ptail_cpu_s"], r["cpu_s"],
                r["wall_s"]))

    sc = report.get("scale")
    if sc:
        one = next((r for r in sc if r.get("buckets") == 1 and not failed(r)), None)
        L += ["", "## Scale: buckets of one category on one writer (100 B lines, durable, "
              "keyless records: each block goes to the next bucket)", "",
              "| buckets | records/s | MB/s | vs 1 bucket | time to own | "
              "writer RSS peak | writer fds |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sc:
            if failed(r):
                L.append("| %d | failed | | | | | |" % r["buckets"])
                continue
            L.append("| %s | %s | %.1f | %s | %.1f s | %.1f MiB | %d |" % (
                num(r["buckets"]), num(r["records_per_s"]), r["mb_per_s"],
                ratio(r["records_per_s"], one["records_per_s"]) if one else "-",
                r["own_seconds"] or 0, r["writer_rss_peak_mib"], r.get("open_fds", 0)))
        L.append("")
        L.append("Before the clock, one record went to every bucket, so each has its open "
                 "segment; time to own: from `freeway category create` until the writer owns "
                 "every bucket.")

    cp = report.get("copier")
    if cp and not failed(cp) and "paced" in cp:
        p = cp["paced"]
        q = p["delay"]["quantiles"]
        L += ["", "## Copier lag at %.0f%% of peak (bench/copier-lag; full report %s)"
              % (100 * cp["load_share"], cp["result_file"]), "",
              "| figure | value | vs target or limit |", "|---|---:|---:|"]
        L.append("| delay p50 / p99 / p99.9 | %.3f / %.3f / %.3f s | p99 %s of 1 s |" % (
            q["p50"]["seconds"], q["p99"]["seconds"], q["p99.9"]["seconds"],
            ratio(q["p99"]["seconds"], 1.0)))
        L.append("| copy behind the writer, from sizes, p99 | %.3f s | %s of 1 s |" % (
            p["behind_writer_seconds"]["p99"], ratio(p["behind_writer_seconds"]["p99"], 1.0)))
        L.append("| copied MB/s (writer appended) | %.1f (%.1f) | %s of the writer |" % (
            p["copied_mb_per_s"], p["writer_appended_mb_per_s"],
            ratio(p["copied_mb_per_s"], p["writer_appended_mb_per_s"])))
        f1 = cp["limits"].get("fio_1m", {}).get("mb_per_s", 0)
        L.append("| paced ingest MB/s (peak %.1f) | %.1f | %s of fio 1M (%.1f) |" % (
            cp["peak"]["mb_per_s"], p["sent_mb_per_s"], ratio(p["sent_mb_per_s"], f1), f1))
    elif cp:
        L += ["", "## Copier lag", "", "failed: %s" % cp.get("failed", cp.get("problems"))]

    problems = report.get("problems", [])[:]
    for part in ("ingest", "latency", "ptail", "scale", "peers"):
        for r in report.get(part, []):
            problems += ["%s %s: %s" % (part, r.get("name", r.get("share", r.get("consumers",
                         r.get("peer", "")))), p) for p in r.get("problems", [])]
    if cp:
        problems += ["copier: %s" % p for p in cp.get("problems", [])]
    if problems:
        L += ["", "## Problems", ""] + ["- %s" % p for p in problems]
    if report.get("notes"):
        L += ["", "## Notes", ""] + ["- %s" % n for n in report["notes"]]
    if report.get("plots"):
        L += ["", "## Plots", ""] + ["![%s](%s)" % (k, os.path.basename(v))
                                     for k, v in report["plots"].items()]
    return "\n".join(L) + "\n", problems


# ---- plots (gnuplot) ---------------------------------------------------------------------------

def plots(report, stem):
    """throughput per configuration and the latency CDFs, as PNG beside the report."""
    if shutil.which("gnuplot") is None:
        return {}
    out = {}
    rows = [(r["name"], r["records_per_s"], r["mb_per_s"]) for r in report.get("ingest", [])
            if not failed(r)]
    rows += [("%s, %s" % (p["peer"], p["setting"]), p["records_per_s"], p["mb_per_s"])
             for p in report.get("peers", []) if not failed(p)]
    rows += [("scale: %s" % r["name"], r["records_per_s"], r["mb_per_s"])
             for r in report.get("scale", []) if not failed(r)]
    if rows:
        dat = stem + "-throughput.dat"
        with open(dat, "w") as f:
            for name, rps, mbps in rows:
                f.write("\"%s\" %.0f %.1f\n" % (name.replace('"', "'"), rps, mbps))
        png = stem + "-throughput.png"
        script = """
set terminal pngcairo size 1400,%d font ',10'
set output '%s'
set title 'freeway: records/s per configuration (and peers), %s'
set style fill solid 0.8
set boxwidth 0.7
set yrange [-1:%d]
set ytics nomirror
set xlabel 'records/s (log)'
set logscale x
set xrange [10000:100000000]
set grid x
unset key
plot '%s' using ($2):($0):(10000):($2):($0-0.35):($0+0.35):yticlabels(1) with boxxyerror, \\
     '' using ($2):($0):(sprintf(" %%.2fM/s, %%.0f MB/s", $2/1e6, $3)) with labels left
""" % (200 + 22 * len(rows), png, report["date"], len(rows), dat, )
        if run_gnuplot(script, stem):
            out["throughput"] = png
        os.unlink(dat)
    lat = [r for r in report.get("latency", []) if not failed(r) and r.get("cdf")]
    if lat:
        plotcmds = []
        for r in lat:
            dat = "%s-latency-%02d.dat" % (stem, round(100 * r["share"]))
            with open(dat, "w") as f:
                f.write(r["cdf"])
            plotcmds.append("'%s' using 1:2 with lines lw 2 title '%.0f%% of peak (%s records/s)'"
                            % (dat, 100 * r["share"], num(r["rate"])))
        png = stem + "-latency.png"
        script = """
set terminal pngcairo size 1000,600 font ',10'
set output '%s'
set title 'freeway: end to end latency CDF, send -> consumer callback, %s'
set xlabel 'milliseconds (log)'
set ylabel 'share of records at or below'
set logscale x
set grid
set key bottom right
set yrange [0:1]
plot %s
""" % (png, report["date"], ", ".join(plotcmds))
        if run_gnuplot(script, stem):
            out["latency CDF"] = png
        for r in lat:
            os.unlink("%s-latency-%02d.dat" % (stem, round(100 * r["share"])))
    return out


def run_gnuplot(script, stem):
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        with open(stem + "-gnuplot.log", "a") as f:
            f.write(script + "\n" + r.stderr)
        return False
    return True
