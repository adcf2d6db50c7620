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
from bench import free_port, pages, serve  # noqa: E402


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


HUNG = 180  # seconds after which a run is taken to hang


def run(cmd):
    """Wall seconds, peak tree RSS in bytes, exit code, the first line it printed."""
    start = time.perf_counter()
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=err, stderr=err)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.02)
        if time.perf_counter() - start > HUNG:
            # A run that hangs (SingleFile did, once, on a corpus page) is killed with
            # its children and counted as failed, at this length.
            subprocess.run(["pkill", "-KILL", "-P", str(proc.pid)])
            proc.kill()
            proc.wait()
            break
    wall = time.perf_counter() - start
    err.seek(0)
    said = " ".join(err.read().decode("utf-8", "replace").strip().splitlines()[:1])
    return wall, peak, proc.returncode, said


def shot(chromium, url, png, sandbox, height, offline):
    """A screenshot of `url` in a plain headless Chromium window 1280 px wide and `height`
    tall. `offline`: every request goes to a proxy that is not there."""
    profile = tempfile.mkdtemp(prefix="linksnap-bench-profile-")
    # Virtual time: the page's timers and fetches run as fast as they can, for 15 s of
    # the page's clock (the whole page's list loads its three pages in it).
    cmd = [chromium, "--headless", *sandbox, "--hide-scrollbars", "--virtual-time-budget=15000",
           f"--user-data-dir={profile}", f"--window-size=1280,{height}", f"--screenshot={png}"]
    if offline:
        cmd += [f"--proxy-server=http://127.0.0.1:{free_port()}", "--proxy-bypass-list=<-loopback>"]
    subprocess.run(cmd + [url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    subprocess.run(["rm", "-rf", profile])


def differing(a, b):
    """Pixels of two screenshots of one size whose colours differ by more than 12.5 %
    (ImageMagick's absolute-error count with that fuzz)."""
    r = subprocess.run(["compare", "-metric", "AE", "-fuzz", "12.5%", a, b, "null:"],
                       capture_output=True, text=True)
    return int(float(r.stderr.split()[0]))


def fidelity(a, root, out, sandbox):
    """The rendered fixture page's constructs (tests/fixtures/site/rendered), each on its
    own page and all together, saved by linksnap's browser engine and by SingleFile: how
    many pixels of each snapshot, opened with the network cut off, differ from the live
    page (both in plain headless Chromium, same window), and how much of the text the
    construct must show (constructs.json) each snapshot has."""
    with open(os.path.join(a.site, "rendered", "constructs.json")) as f:
        constructs = json.load(f)
    other = free_port()
    port, nginx = serve(root, also=other)
    tools = ["browser"] + (["singlefile"] if a.singlefile else [])
    # differing pixels, texts kept, pages drawn as live, failed tries
    totals = {t: [0, 0, 0, 0] for t in tools}
    print(f"fidelity: pixels differing from the live page (window 1280 x height), text kept")
    for name in list(constructs) + ["all"]:
        query = f"?cross={other}" + (f"&c={name}" if name != "all" else "")
        url = f"http://127.0.0.1:{port}/site/rendered/page.html{query}"
        height = 9000 if name == "all" else 4800
        live = os.path.join(out, f"fid-{name}-live.png")
        shot(a.chromium, url, live, sandbox, height, offline=False)
        shows = [s for texts in constructs.values() for s in texts] if name == "all" else constructs[name]
        row = []
        for tool in tools:
            html = os.path.join(out, f"fid-{name}-{tool}.html")
            # Up to three tries, the first that saves counting: SingleFile often ends
            # without a file ("Execution context not found", its issue 198).
            for attempt in range(1, 4):
                _, _, code, said = run(command(a, tool, url, html, sandbox))
                if code == 0 and os.path.exists(html):
                    break
                print(f"  {name}: {tool}: try {attempt}: exit {code}: {said[:160]}", flush=True)
                totals[tool][3] += 1
            png = os.path.join(out, f"fid-{name}-{tool}.png")
            if os.path.exists(html):
                shot(a.chromium, "file://" + html, png, sandbox, height, offline=True)
                with open(html, encoding="utf-8", errors="replace") as f:
                    text = f.read()
            else:
                text = ""
            diff = differing(live, png) if os.path.exists(png) else 1280 * height
            kept = sum(s in text for s in shows)
            totals[tool][0] += diff
            totals[tool][1] += kept
            totals[tool][2] += diff == 0
            row.append(f"{tool} {diff:>8} px, text {kept}/{len(shows)}")
        print(f"  {name:8} " + "; ".join(row), flush=True)
    texts = 2 * sum(len(t) for t in constructs.values())
    for tool, (diff, kept, alike, failed) in totals.items():
        print(f"fidelity {tool:10}: {alike} of {len(constructs) + 1} pages drawn as live; "
              f"{diff} pixels differing in all; text kept {kept} of {texts}; failed tries {failed}")
    nginx.terminate()


def command(a, tool, url, target, sandbox):
    if tool == "singlefile":
        # Its defaults (deferred images loaded; a second after the page is loaded), but
        # "network almost idle" for "network idle": with Chromium 156 the default fails
        # most pages with "Execution context not found for SingleFile world"
        # (single-file-cli issue 198, whose workaround this is).
        return [a.singlefile, url, target, "--browser-executable-path", a.chromium,
                "--browser-args", json.dumps(sandbox), "--browser-wait-until", "networkAlmostIdle"]
    return [a.linksnap, "snap", url, "-q", "-o", target,
            "--allow-net", "127.0.0.0/8", "--engine", tool, "--chromium", a.chromium]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--linksnap", required=True)
    ap.add_argument("--chromium", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--site", required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--singlefile", help="SingleFile's CLI (single-file), measured beside")
    ap.add_argument("--font", required=True, help="the font the fixture site serves as /font/fixture.ttf")
    ap.add_argument("--only", choices=["speed", "fidelity"], help="one of the two parts")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="linksnap-bench-")
    os.symlink(os.path.abspath(a.corpus), os.path.join(root, "corpus"))
    os.symlink(os.path.abspath(a.site), os.path.join(root, "site"))
    os.mkdir(os.path.join(root, "font"))
    os.symlink(a.font, os.path.join(root, "font", "fixture.ttf"))
    out = tempfile.mkdtemp(prefix="linksnap-bench-out-")
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
    if a.only != "speed":
        fidelity(a, root, out, sandbox)
    if a.only == "fidelity":
        return
    port, nginx = serve(root)
    todo = pages(root)
    if a.limit:
        todo = todo[: a.limit]
    engines = ["static", "browser"] + (["singlefile"] if a.singlefile else [])
    results = {e: [] for e in engines}
    failures = {e: 0 for e in engines}
    for i, page in enumerate(todo):
        url = f"http://127.0.0.1:{port}/{page}"
        for engine in engines:
            target = os.path.join(out, f"{i}-{engine}.html")
            wall, peak, code, said = run(command(a, engine, url, target, sandbox))
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
