"""The freeway fabric the benchmarks run against, on 127.0.0.1 with free
ports: ZooKeeper, calligraphus writers, a ptail, and `fwbench` (bench/fwbench/)
as the producer and consumer. bench/bench drives it; bench/ingest's helpers
(processes, metrics, fio, inputs) are reused as they are."""

import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def load_script(name):
    """A bench script without .py (bench/ingest) as a module, loaded once per
    process: every part then shares its classes (a BenchError raised in one
    is the one the others catch)."""
    modname = "bench_" + name.replace("-", "_")
    if modname in sys.modules:
        return sys.modules[modname]
    path = os.path.join(HERE, name)
    loader = importlib.machinery.SourceFileLoader(modname, path)
    spec = importlib.util.spec_from_loader(modname, loader)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        loader.exec_module(mod)
    finally:
        sys.dont_write_bytecode = dont_write
    return mod


ingest = load_script("ingest")
BenchError, say, wait_for = ingest.BenchError, ingest.say, ingest.wait_for
BIN = ingest.BIN
FREEWAY, CALLIGRAPHUS = ingest.FREEWAY, ingest.CALLIGRAPHUS
PTAIL = os.path.join(BIN, "ptail")
FWBENCH = os.path.join(ingest.REPO, "build", "release", "bench", "fwbench")


def log_addresses(log, proc):
    """The listen and metrics addresses a daemon logs at start-up."""
    def addresses():
        text = open(log).read()
        listen = re.search(r"listening on (\S+)", text)
        metrics = re.search(r"metrics on http://(\S+)/metrics", text)
        return listen and metrics and (listen.group(1), metrics.group(1))
    return wait_for("%s to log its addresses" % log, addresses, 30, proc, log)


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


class Node:
    """One daemon: its process, addresses and log."""

    def __init__(self, name, proc, listen, metrics, log, root):
        self.name, self.proc, self.listen, self.metrics = name, proc, listen, metrics
        self.log, self.root = log, root

    def scrape(self):
        return ingest.scrape(self.metrics)

    def cpu_seconds(self):
        return ingest.proc_cpu_seconds(self.proc.pid)

    def rss_peak_mib(self):
        return ingest.proc_status_mib(self.proc.pid, "VmHWM")

    def alive(self):
        return self.proc.poll() is None


class Fabric:
    """ZooKeeper plus the daemons, all stopped by daemons.stop_all()."""

    def __init__(self, daemons, base, logdir):
        self.daemons, self.base, self.logdir = daemons, base, logdir
        self.writers = []
        self.ptail = None
        self.zk = None
        self.buckets_created = 0

    def start_zookeeper(self):
        host = ingest.start_zookeeper(self.daemons, os.path.join(self.base, "zookeeper"))
        self.zk_host = host
        self.zk = host + "/freeway"
        return host

    def start_writer(self):
        n = len(self.writers) + 1
        root = os.path.join(self.base, "root-%d" % n)
        os.makedirs(root)
        log = os.path.join(self.logdir, "calligraphus-%d.log" % n)
        proc = self.daemons.start("calligraphus-%d" % n, [
            CALLIGRAPHUS, "--root", root, "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
            "--zk", self.zk, "--id", "bench-%d" % n], log, grace=120)
        listen, metrics = log_addresses(log, proc)
        wait_for("calligraphus-%d /readyz" % n, lambda: http_ok("http://%s/readyz" % metrics),
                 60, proc, log)
        node = Node("calligraphus-%d" % n, proc, listen, metrics, log, root)
        self.writers.append(node)
        return node

    def stop_writer(self, node):
        status = self.daemons.stop(node.proc)
        self.writers.remove(node)
        if self.writers:
            self.wait_all_owned(120, "the stopped writer's buckets")
        return status

    def start_ptail(self, root):
        log = os.path.join(self.logdir, "ptail.log")
        proc = self.daemons.start("ptail", [
            PTAIL, "--root", root, "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
            "--zk", self.zk, "--id", "bench-ptail"], log, grace=30)
        listen, metrics = log_addresses(log, proc)
        self.ptail = Node("ptail", proc, listen, metrics, log, root)
        return self.ptail

    def create_category(self, name, buckets, codec, sync_interval=None, timeout=120):
        """Creates the category and waits until the writers own all its buckets."""
        cmd = [FREEWAY, "category", "create", name, "--buckets", str(buckets), "--zk", self.zk,
               "--codec", codec]
        if sync_interval:
            cmd += ["--sync-interval", sync_interval]
        self.wait_all_owned(timeout)
        ingest.run(cmd)
        self.buckets_created += buckets
        t0 = time.monotonic()
        self.wait_all_owned(timeout, "%s's %d buckets" % (name, buckets))
        return time.monotonic() - t0

    def wait_all_owned(self, timeout, what="every bucket"):
        """Waits until the live writers own every bucket created so far."""
        wait_for("the writers to own %s" % what,
                 lambda: self.owned() >= self.buckets_created, timeout)

    def owned(self):
        return sum(ingest.metric(w.scrape(), "freeway_calligraphus_open_buckets")
                   for w in self.writers)

    def writer_totals(self, name, **labels):
        return sum(ingest.metric(w.scrape(), name, **labels) for w in self.writers)


def fwbench(args, log, timeout):
    """Runs `fwbench ARGS`, returns its JSON answer (with cpu and exit status).
    Its stderr goes to log."""
    cmd = [FWBENCH] + args
    with open(log, "a") as err:
        err.write("$ %s\n" % " ".join(cmd))
        err.flush()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise BenchError("%s ran longer than %d s (log: %s)" % (" ".join(cmd), timeout, log))
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        raise BenchError("%s exited %d without figures (log: %s)" % (" ".join(cmd), p.returncode,
                                                                       log))
    got = json.loads(lines[-1])
    got["exit_status"] = p.returncode
    got["command"] = " ".join(cmd)
    return got
