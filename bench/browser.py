"""The browser engine against the static engine on the benchmark's pages (run by
bench/browser.sh inside a loopback-only network namespace): wall time per page, and the
peak memory (PSS) of linksnap together with every process it starts (Chromium's
browser, renderer, GPU and utility processes), sampled from /proc every 20 ms."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench import pages, serve  # noqa: E402


def pss(pid):
    """Proportional set size of `pid` in bytes: its private memory plus its share of
    what it shares (Chromium's processes share much; summing their RSS would count that
    once per process)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(root_pid):
    """Memory (PSS) of `root_pid` and all its descendants."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ppid = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += pss(pid)
        stack.extend(children.get(pid, []))
    return total


def run(cmd):
    """Wall seconds, peak tree RSS in bytes, exit code, the first line it printed."""
    start = time.perf_counter()
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=err, stderr=err)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.02)
    wall = time.perf_counter() - start
    err.seek(0)
    said = " ".join(err.read().decode("utf-8", "replace").strip().splitlines()[:1])
    return wall, peak, proc.returncode, said


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--linksnap", required=True)
    ap.add_argument("--chromium", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--site", required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--singlefile", help="SingleFile's CLI (single-file), measured beside")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="linksnap-bench-")
    os.symlink(os.path.abspath(a.corpus), os.path.join(root, "corpus"))
    os.symlink(os.path.abspath(a.site), os.path.join(root, "site"))
    out = tempfile.mkdtemp(prefix="linksnap-bench-out-")
    port, nginx = serve(root)
    todo = pages(root)
    if a.limit:
        todo = todo[: a.limit]
    engines = ["static", "browser"] + (["singlefile"] if a.singlefile else [])
    results = {e: [] for e in engines}
    failures = {e: 0 for e in engines}
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
    for i, page in enumerate(todo):
        url = f"http://127.0.0.1:{port}/{page}"
        for engine in engines:
            target = os.path.join(out, f"{i}-{engine}.html")
            if engine == "singlefile":
                # Its defaults (deferred images loaded; a second after the page is
                # loaded), but "network almost idle" for "network idle": with Chromium 156
                # the default fails most pages with "Execution context not found for
                # SingleFile world" (single-file-cli issue 198, whose workaround this is).
                cmd = [a.singlefile, url, target, "--browser-executable-path", a.chromium,
                       "--browser-args", json.dumps(sandbox),
                       "--browser-wait-until", "networkAlmostIdle"]
            else:
                cmd = [a.linksnap, "snap", url, "-q", "-o", target,
                       "--allow-net", "127.0.0.0/8", "--engine", engine, "--chromium", a.chromium]
            wall, peak, code, said = run(cmd)
            if code == 0 and not os.path.exists(target):
                code = -1
            if code != 0:
                print(f"{engine}: exit {code}: {page}: {said[:160]}", flush=True)
            results[engine].append((wall, peak, os.path.getsize(os.path.join(out, f"{i}-{engine}.html")) if code == 0 else 0))
            failures[engine] += code != 0
    nginx.terminate()
    print(f"pages: {len(todo)}, one run each per engine (Chromium started anew for every browser run)")
    if a.singlefile:
        ours = [r[0] for r in results["browser"]]
        theirs = [r[0] for r in results["singlefile"]]
        print(f"SingleFile / linksnap browser, median wall: {statistics.median(theirs) / statistics.median(ours):.2f}x; "
              f"per page: median {statistics.median([t / o for t, o in zip(theirs, ours)]):.2f}x")
    for engine, rows in results.items():
        walls = [r[0] for r in rows]
        ok_walls = [r[0] for r in rows if r[2] > 0]
        peaks = [r[1] for r in rows]
        sizes = sum(r[2] for r in rows)
        print(f"{engine:10} wall per page: median {statistics.median(walls):.2f} s, p90 "
              f"{sorted(walls)[int(len(walls) * 0.9)]:.2f} s, max {max(walls):.2f} s; total {sum(walls):.1f} s; "
              f"peak memory (linksnap + children): median {statistics.median(peaks) / 2**20:.0f} MiB, "
              f"max {max(peaks) / 2**20:.0f} MiB; output {sizes} bytes; failed {failures[engine]} "
              f"(median of the runs that saved: {statistics.median(ok_walls) if ok_walls else 0:.2f} s)")


if __name__ == "__main__":
    main()
