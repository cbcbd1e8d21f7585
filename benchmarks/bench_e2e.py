#!/usr/bin/env python3
"""``newswire run`` end to end: CPU per article over every process, wall rate, memory, latency.

Two measurements, each a real ``newswire run`` (embedded Tansu broker, dedup →
enrich → store into a fresh SQLite file) started as a child process of this
script, which makes itself the *subreaper* of the process tree (Linux
``PR_SET_CHILD_SUBREAPER``) so that every descendant — the broker, the three
stage processes, the producer's worker processes and their fork server — is
reaped either by its parent or by this script, and none of its CPU time is
lost:

1. **Throughput**: N (``--articles``, default 50,000) distinct seed-shaped
   articles as one JSON-lines file, ``newswire run FILE --until-idle``.
   Printed: CPU ms per article over all processes (user+sys of the whole tree,
   from ``wait4`` of each reaped process: exact), the same per process
   (sampled from ``/proc`` every 0.1 s while it runs: what a process spends in
   its last 0.1 s is missed, and shows as "unattributed"), wall rate (N / time
   from the launch to the exit, and N / the *ingest window*: the first
   article's ingest time to the last article's store time, read from the
   store's rows), and peak RSS (per process ``VmHWM``; the tree's peak is the
   largest sum of ``VmRSS`` seen by the sampler).
   A run of ``--startup`` (default 100) articles first gives the fixed cost
   (imports, broker, group joins, shutdown: seconds of CPU) and so the
   marginal CPU per article.
2. **Latency** (``--paced``, default 10,000 articles; 0 skips): ``newswire run
   - --until-idle`` with the articles written to its standard input at
   ``--rate`` (default 1,000/s) once every stage has its partitions. For each
   article, from the store's row: ``stored_at - ingested_at`` (newswire's own
   stamps: ingest = when the producer validated and encoded it, stored = when
   the store began the transaction that wrote it — so the commit's fsync, a
   few ms, is not in it) and ``stored_at - offered`` (offered = when this
   script wrote its line to the pipe; includes the producer's read of standard
   input in 1 MiB parts). These are exact per article, unlike the stages'
   end-to-end histogram, whose buckets would bound p99 only to a bucket. The
   first ``--warmup`` seconds of articles are excluded (first batches).

``--profile LABEL,…`` (``run``, ``producer workers``, ``dedup``, ``enrich``,
``store``; the broker is not Python) also records each such process of the
throughput run with py-spy (``--nonblocking --gil``: only the thread holding
the GIL, a proxy for Python CPU time; 100 Hz; py-spy is in the ``bench``
extra: ``make bench-venv``, or on PATH) and prints its top functions by own
and by inclusive samples, leaving out the samples taken while importing.
Profiling costs the profiled processes little but it shares the two cores:
compare CPU figures of unprofiled runs.

    .venv/bin/python benchmarks/bench_e2e.py [--articles 50000] [--paced 10000] [--rate 1000]
        [--warmup 1] [--workers N] [--profile LABELS] [--json]

Targets (issue 10): ≤ 0.3 CPU-ms per article end to end; p99 produce → stored
≤ 500 ms at 1,000 articles/s.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "benchmarks"):
    if str(path) not in sys.path:  # run as a script from anywhere
        sys.path.insert(0, str(path))

from bench_stages import article_fields, load_seed  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
PR_SET_CHILD_SUBREAPER = 36
RUN_TIMEOUT_S = 900.0
STAGES = ("dedup", "enrich", "store")


# -- input -----------------------------------------------------------------------------------


def json_lines(n: int, start: int = 0) -> list[bytes]:
    """*n* distinct seed-shaped articles (titles end in ``#i``) as JSON lines."""
    seed = load_seed()
    lines = []
    for i in range(start, start + n):
        fields = article_fields(seed, i)
        lines.append(json.dumps(fields, default=_iso, ensure_ascii=False).encode() + b"\n")
    return lines


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


# -- the process tree ------------------------------------------------------------------------


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process (and reaped here), not to init."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, user+sys CPU seconds) of *pid*, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def _memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of *pid* in KiB, 0 if unknown."""
    rss = hwm = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def label_of(pid: int, root: int) -> str:
    """What process *pid* of the tree under *root* is, from its command line."""
    if pid == root:
        return "run"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    args = [a.decode(errors="replace") for a in argv if a]
    if len(args) > 1 and args[1] == "broker" and "--storage-engine" in args:
        return "broker"
    if "consume" in args:
        at = args.index("consume")
        return args[at + 1] if at + 1 < len(args) else "consume"
    if "py-spy" in os.path.basename(args[0] if args else ""):
        return "py-spy"
    if any("multiprocessing" in a or "forkserver" in a for a in args):
        return "producer workers"
    return os.path.basename(args[0]) if args else "?"


@dataclass
class Proc:
    """One process of the tree, as last sampled."""

    pid: int
    label: str
    ppid: int = 0
    cpu_s: float = 0.0
    hwm_kb: int = 0
    exact: bool = False  # cpu_s is wait4's final figure (the process has been reaped)


@dataclass
class Tree:
    """Samples the descendants of *root* every *every_s*; reaps them with :meth:`reap`."""

    root: int
    every_s: float = 0.1
    procs: dict[int, Proc] = field(default_factory=dict)
    peak_rss_kb: int = 0
    exited: dict[int, tuple[int, resource.struct_rusage]] = field(default_factory=dict)
    excluded: set[int] = field(default_factory=set)  # our own helpers (py-spy)
    on_new: Any = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._loop, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every_s)

    def sample(self) -> None:
        parents: dict[int, tuple[int, float]] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                found = _stat(int(entry.name))
                if found is not None:
                    parents[int(entry.name)] = found
        me = os.getpid()
        inside = {self.root} | {p for p in self.procs if p in parents}
        # The tree: the root's descendants, and orphans re-parented to us (the subreaper).
        changed = True
        while changed:
            changed = False
            for pid, (ppid, _) in parents.items():
                if pid not in inside and (ppid in inside or ppid == me) and pid != me:
                    if pid in self.excluded:
                        continue
                    inside.add(pid)
                    changed = True
        total_rss = 0
        for pid in inside:
            if pid not in parents:
                continue
            proc = self.procs.get(pid)
            if proc is None:
                proc = self.procs[pid] = Proc(pid, label_of(pid, self.root), parents[pid][0])
                if proc.label == "py-spy":
                    self.excluded.add(pid)
                    del self.procs[pid]
                    continue
                if self.on_new is not None:
                    self.on_new(proc)
            if proc.exact:
                continue
            proc.cpu_s = parents[pid][1]
            rss, hwm = _memory_kb(pid)
            proc.hwm_kb = max(proc.hwm_kb, hwm)
            total_rss += rss
        self.peak_rss_kb = max(self.peak_rss_kb, total_rss)

    def reap(self, until_root: bool, timeout_s: float) -> None:
        """Reap children (ours or re-parented to us) until the root has exited (and then until
        none is left or *timeout_s* passed), keeping each one's rusage."""
        deadline = None if until_root else time.monotonic() + timeout_s
        while True:
            flags = 0 if deadline is None else os.WNOHANG
            try:
                pid, status, usage = os.wait4(-1, flags)
            except ChildProcessError:
                return
            if pid == 0:
                if deadline is not None and time.monotonic() > deadline:
                    return
                time.sleep(0.05)
                continue
            if pid == self.root:  # the rest may take a moment to exit: from now on
                deadline = time.monotonic() + timeout_s
            self.exited[pid] = (status, usage)
            proc = self.procs.get(pid)
            if proc is not None and pid != self.root:
                # wait4 counts its own CPU and that of the children it reaped itself (the
                # fork server's workers): take theirs, as sampled, out of it.
                children = sum(p.cpu_s for p in self.procs.values() if p.ppid == pid)
                proc.cpu_s = max(proc.cpu_s, usage.ru_utime + usage.ru_stime - children)
                proc.exact = True

    def total_cpu_s(self) -> float:
        """User+sys CPU of the whole tree: wait4 of every reaped process but our helpers'."""
        return sum(
            u.ru_utime + u.ru_stime
            for pid, (_, u) in self.exited.items()
            if pid not in self.excluded
        )

    def by_label(self) -> dict[str, tuple[float, int, int]]:
        """label → (CPU seconds, peak RSS KiB summed over its processes, processes)."""
        out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0])
        for proc in self.procs.values():
            row = out[proc.label]
            row[0] += proc.cpu_s
            row[1] += proc.hwm_kb
            row[2] += 1
        return {k: (v[0], int(v[1]), int(v[2])) for k, v in out.items()}


# -- py-spy ----------------------------------------------------------------------------------


def py_spy() -> str | None:
    """The py-spy binary: on PATH, beside this interpreter, or in the bench venv."""
    for candidate in (
        shutil.which("py-spy"),
        str(Path(sys.executable).parent / "py-spy"),
        str(REPO / ".venv-bench" / "bin" / "py-spy"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@dataclass
class Profiler:
    """Starts ``py-spy record`` on each new process whose label is wanted."""

    labels: set[str]
    tree: Tree
    workdir: Path
    binary: str
    outputs: dict[str, list[Path]] = field(default_factory=lambda: defaultdict(list))
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __call__(self, proc: Proc) -> None:
        if proc.label not in self.labels:
            return
        out = self.workdir / f"pyspy-{proc.label.replace(' ', '_')}-{proc.pid}.txt"
        spy = subprocess.Popen(
            [
                self.binary,
                "record",
                "--pid",
                str(proc.pid),
                "--rate",
                "100",
                "--nonblocking",
                "--gil",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.tree.excluded.add(spy.pid)
        self.processes.append(spy)
        self.outputs[proc.label].append(out)


def top_functions(
    paths: list[Path], limit: int
) -> tuple[int, int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, of which importing, top by own samples, top by inclusive samples) of py-spy
    raw (collapsed) files; samples taken while a module was being imported (start-up) are
    counted apart and left out of the tops."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = importing = 0
    for p in paths:
        with contextlib.suppress(OSError):
            for line in p.read_text(errors="replace").splitlines():
                stack, _, count = line.rpartition(" ")
                if not stack or not count.isdigit():
                    continue
                n = int(count)
                total += n
                if "_find_and_load" in stack:
                    importing += n
                    continue
                frames = [f for f in (_short(f) for f in stack.split(";")) if f]
                if not frames:
                    continue
                own[frames[-1]] += n
                for f in set(frames):
                    inclusive[f] += n
    return total, importing, own.most_common(limit), inclusive.most_common(limit)


def _short(frame: str) -> str:
    """``handle (consumers/dedup/consumer.py:120)`` → ``handle (consumers/dedup/consumer.py)``;
    the thread/process header frames are dropped."""
    frame = frame.strip()
    if frame.startswith(("process ", "thread ")) or not frame:
        return ""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3.11/", str(REPO) + "/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{name} ({file})" if file else name


# -- one run ---------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What one ``newswire run`` cost and did."""

    articles: int
    wall_s: float
    tree: Tree
    stored: int
    ingest_window_s: float
    status: int
    output: str
    latencies: dict[str, list[float]] = field(default_factory=dict)
    profiler: Profiler | None = None

    @property
    def cpu_s(self) -> float:
        return self.tree.total_cpu_s()


def newswire_command() -> list[str]:
    return [sys.executable, "-m", "newswire"]


def run_pipeline(
    args: argparse.Namespace,
    workdir: Path,
    lines: list[bytes],
    *,
    paced: bool,
    profile: set[str],
) -> RunResult:
    """One ``newswire run`` over *lines* (a file, or paced into its stdin)."""
    store = workdir / "store.db"
    rundir = workdir / "run"
    cmd = [*newswire_command(), "run"]
    if paced:
        cmd.append("-")
    else:
        data = workdir / "articles.jsonl"
        data.write_bytes(b"".join(lines))
        cmd.append(str(data))
    cmd += ["--store", f"sqlite:///{store}", "--until-idle", "--workdir", str(rundir)]
    cmd += ["--timeout", str(RUN_TIMEOUT_S)]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    env = {**os.environ, "NEWSWIRE_METRICS__RUNTIME_DIR": str(workdir / "runtime")}
    env["NEWSWIRE_PRODUCER__REJECTS_PATH"] = str(workdir / "rejects.jsonl")
    log_path = workdir / ("paced.log" if paced else "run.log")
    started = time.perf_counter()
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if paced else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    tree = Tree(process.pid)
    profiler = None
    if profile:
        binary = py_spy()
        if binary is None:
            raise SystemExit("--profile needs py-spy (the bench extra: `make bench-venv`)")
        profiler = Profiler(profile, tree, workdir, binary)
        tree.on_new = profiler
    tree.start()
    offered: dict[int, float] = {}
    writer = None
    if paced:
        assert process.stdin is not None
        writer = threading.Thread(
            target=_pace,
            args=(process.stdin, lines, args.rate, rundir, offered),
            daemon=True,
        )
        writer.start()
    watchdog = threading.Timer(RUN_TIMEOUT_S + 60, lambda: _kill(process.pid))
    watchdog.daemon = True
    watchdog.start()
    try:
        tree.reap(until_root=True, timeout_s=30.0)
    finally:
        watchdog.cancel()
        tree.stop()
    wall = time.perf_counter() - started
    if profiler is not None:
        for spy in profiler.processes:  # each ends with its process; reaped above or here
            with contextlib.suppress(ChildProcessError, subprocess.TimeoutExpired):
                spy.wait(10)
    status, _ = tree.exited.get(process.pid, (-1, None))
    code = os.waitstatus_to_exitcode(status) if status != -1 else -1
    stored, window, latencies = read_store(store, offered, args)
    return RunResult(
        articles=len(lines),
        wall_s=wall,
        tree=tree,
        stored=stored,
        ingest_window_s=window,
        status=code,
        output=log_path.read_text(errors="replace"),
        latencies=latencies,
        profiler=profiler,
    )


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def _pace(
    stdin: Any, lines: list[bytes], rate: float, rundir: Path, offered: dict[int, float]
) -> None:
    """Once every stage has partitions, write *lines* at *rate* per second; close stdin."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        logs = [rundir / f"{stage}.log" for stage in STAGES]
        if all(_assigned(p) for p in logs):
            break
        time.sleep(0.1)
    try:
        start = time.perf_counter()
        for i, line in enumerate(lines):
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            stdin.write(line)
            stdin.flush()
            offered[i] = time.time()
    except BrokenPipeError:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            stdin.close()


def _assigned(path: Path) -> bool:
    try:
        return "partitions assigned" in path.read_text(errors="replace")
    except OSError:
        return False


def read_store(
    store: Path, offered: dict[int, float], args: argparse.Namespace
) -> tuple[int, float, dict[str, list[float]]]:
    """(rows, first ingest → last store seconds, latencies by kind) from the store's rows."""
    if not store.exists():
        return 0, 0.0, {}
    with contextlib.closing(sqlite3.connect(store)) as db:
        rows = db.execute(
            "SELECT title, ingested_at, enriched_at, stored_at FROM articles"
        ).fetchall()
    if not rows:
        return 0, 0.0, {}
    parsed = [(title, *(dt.datetime.fromisoformat(t) for t in times)) for title, *times in rows]
    window = (max(p[3] for p in parsed) - min(p[1] for p in parsed)).total_seconds()
    latencies: dict[str, list[float]] = {k: [] for k in ("ingested", "offered", "enrich", "store")}
    if offered:
        skip = int(args.warmup * args.rate)
        for title, ingested, enriched, stored in parsed:
            i = int(title.rsplit("#", 1)[1])
            if i < skip:
                continue
            latencies["ingested"].append((stored - ingested).total_seconds())
            # The hops: producer → dedup → enrich (its enriched_at), enrich → store.
            latencies["enrich"].append((enriched - ingested).total_seconds())
            latencies["store"].append((stored - enriched).total_seconds())
            if i in offered:
                latencies["offered"].append(stored.timestamp() - offered[i])
    return len(rows), window, latencies


# -- output ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def process_table(result: RunResult) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    labels = result.tree.by_label()
    order = ["broker", "run", "producer workers", *STAGES]
    for label in order + sorted(set(labels) - set(order)):
        if label not in labels:
            continue
        cpu, hwm, count = labels[label]
        rows.append(
            {
                "process": label,
                "processes": count,
                "cpu_s": cpu,
                "cpu_ms_per_article": cpu / result.articles * 1e3,
                "share": cpu / result.cpu_s if result.cpu_s else 0.0,
                "peak_rss_mib": hwm / 1024,
            }
        )
    attributed = sum(float(r["cpu_s"]) for r in rows)
    rows.append(
        {
            "process": "unattributed (last 0.1 s of sampled processes)",
            "processes": 0,
            "cpu_s": result.cpu_s - attributed,
            "cpu_ms_per_article": (result.cpu_s - attributed) / result.articles * 1e3,
            "share": (result.cpu_s - attributed) / result.cpu_s if result.cpu_s else 0.0,
            "peak_rss_mib": 0.0,
        }
    )
    return rows


def summary(result: RunResult, args: argparse.Namespace) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "articles": result.articles,
        "stored": result.stored,
        "exit_status": result.status,
        "cpu_s": result.cpu_s,
        "cpu_ms_per_article": result.cpu_s / result.articles * 1e3,
        "wall_s": result.wall_s,
        "articles_per_s": result.articles / result.wall_s,
        "ingest_window_s": result.ingest_window_s,
        "articles_per_s_ingest_window": (
            result.stored / result.ingest_window_s if result.ingest_window_s else 0.0
        ),
        "peak_rss_mib_tree": result.tree.peak_rss_kb / 1024,
        "processes": process_table(result),
    }
    for kind, values in result.latencies.items():
        if values:
            doc[f"latency_{kind}_s"] = {
                "n": len(values),
                "p50": percentile(values, 0.50),
                "p90": percentile(values, 0.90),
                "p99": percentile(values, 0.99),
                "max": max(values),
                "mean": statistics.fmean(values),
            }
    if result.profiler is not None:
        doc["profile"] = {}
        for label, paths in result.profiler.outputs.items():
            total, importing, own, inclusive = top_functions(paths, args.profile_limit)
            doc["profile"][label] = {
                "samples": total,
                "importing": importing,
                "own": own,
                "inclusive": inclusive,
            }
    return doc


def print_run(title: str, doc: dict[str, Any]) -> None:
    print(f"## {title}")
    print(
        f"{doc['articles']:,} articles, {doc['stored']:,} stored, exit status "
        f"{doc['exit_status']}: {doc['cpu_ms_per_article']:.3f} CPU-ms per article over all "
        f"processes ({doc['cpu_s']:.1f} s CPU); wall {doc['wall_s']:.1f} s = "
        f"{doc['articles_per_s']:,.0f} articles/s from launch to exit, "
        f"{doc['articles_per_s_ingest_window']:,.0f}/s over the ingest window "
        f"({doc['ingest_window_s']:.1f} s: first ingest → last stored); peak RSS of the tree "
        f"{doc['peak_rss_mib_tree']:.0f} MiB"
    )
    print()
    startup = any("startup_cpu_s" in row for row in doc["processes"])
    extra = " start-up CPU s |" if startup else ""
    print(f"| process | n | CPU s | CPU-ms/article | share | peak RSS MiB |{extra}")
    print("|---|---:|---:|---:|---:|---:|" + ("---:|" if startup else ""))
    for row in doc["processes"]:
        tail = f" {row.get('startup_cpu_s', 0.0):.2f} |" if startup else ""
        print(
            f"| {row['process']} | {row['processes']} | {row['cpu_s']:.2f} | "
            f"{row['cpu_ms_per_article']:.3f} | {100 * row['share']:.0f}% | "
            f"{row['peak_rss_mib']:.0f} |{tail}"
        )
    for kind, what in (
        ("ingested", "ingested_at → stored_at (newswire's stamps)"),
        ("offered", "line written to stdin → stored_at"),
        ("enrich", "  of which ingested_at → enriched_at (produce, dedup, enrich)"),
        ("store", "  and enriched_at → stored_at (enrich's output, store)"),
    ):
        lat = doc.get(f"latency_{kind}_s")
        if lat:
            print(
                f"latency {what}: n={lat['n']:,} p50 {1e3 * lat['p50']:.0f} ms, "
                f"p90 {1e3 * lat['p90']:.0f} ms, p99 {1e3 * lat['p99']:.0f} ms, "
                f"max {1e3 * lat['max']:.0f} ms"
            )
    for label, prof in doc.get("profile", {}).items():
        print()
        steady = max(1, prof["samples"] - prof["importing"])
        print(
            f"py-spy, {label}: {prof['samples']:,} samples, {prof['importing']:,} of them "
            f"importing (left out); of the other {steady:,}, top by own samples:"
        )
        for name, n in prof["own"]:
            print(f"  {100 * n / steady:5.1f}%  {name}")
        print("  by inclusive samples:")
        for name, n in prof["inclusive"]:
            print(f"  {100 * n / steady:5.1f}%  {name}")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=50_000, help="throughput run (0 skips)")
    parser.add_argument(
        "--startup",
        type=int,
        default=100,
        help="also a run of this many articles: the fixed (start-up) cost (0 skips)",
    )
    parser.add_argument("--paced", type=int, default=10_000, help="latency run articles (0 skips)")
    parser.add_argument("--rate", type=float, default=1000.0, help="latency run: articles/s")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="latency run: seconds of articles not counted"
    )
    parser.add_argument("--workers", type=int, help="producer worker processes (run's default)")
    parser.add_argument("--profile", default="", help="py-spy these processes: broker,run,dedup…")
    parser.add_argument("--profile-limit", type=int, default=20, help="functions per list")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    profile = {x.strip() for x in args.profile.split(",") if x.strip()}

    become_subreaper()
    env = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "load_avg_before": os.getloadavg(),
    }
    docs: dict[str, Any] = {"environment": env}
    failed = False
    runs: list[tuple[str, int, bool, set[str]]] = []
    if args.articles and args.startup:
        runs.append(("startup", args.startup, False, set()))
    if args.articles:
        runs.append(("throughput", args.articles, False, profile))
    if args.paced:
        runs.append(("latency", args.paced, True, set()))
    for name, n, paced, prof in runs:
        with tempfile.TemporaryDirectory(prefix=f"bench-e2e-{name}-") as tmp:
            lines = json_lines(n)
            result = run_pipeline(args, Path(tmp), lines, paced=paced, profile=prof)
            doc = summary(result, args)
            if paced:
                doc["rate"] = args.rate
            docs[name] = doc
            if result.status != 0 or result.stored != n:
                failed = True
                doc["output_tail"] = result.output.splitlines()[-15:]
    if "startup" in docs and "throughput" in docs:
        small, big = docs["startup"], docs["throughput"]
        fixed = {r["process"]: r["cpu_s"] for r in small["processes"]}
        marginal = (big["cpu_s"] - small["cpu_s"]) / max(1, big["articles"] - small["articles"])
        big["startup_cpu_s"] = small["cpu_s"]
        big["marginal_cpu_ms_per_article"] = marginal * 1e3
        for row in big["processes"]:
            row["startup_cpu_s"] = fixed.get(row["process"], 0.0)
    if args.json:
        print(json.dumps(docs, indent=2, default=str))
    else:
        print(
            f"{env['date']}; {env['machine']}; Python {env['python']}; load average before "
            f"{env['load_avg_before'][0]:.1f}"
        )
        print()
        for name in ("throughput", "latency"):
            if name in docs:
                title = (
                    f"newswire run, {docs[name]['articles']:,} JSON lines → SQLite"
                    if name == "throughput"
                    else f"newswire run -, paced at {args.rate:,.0f} articles/s → SQLite"
                )
                print_run(title, docs[name])
                if name == "throughput" and "marginal_cpu_ms_per_article" in docs[name]:
                    d = docs[name]
                    print(
                        f"start-up cost (a run of {docs['startup']['articles']} articles): "
                        f"{d['startup_cpu_s']:.1f} s CPU; marginal cost "
                        f"{d['marginal_cpu_ms_per_article']:.3f} CPU-ms per article\n"
                    )
                if "output_tail" in docs[name]:
                    print("FAILED; last lines of its output:")
                    print("\n".join(docs[name]["output_tail"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
