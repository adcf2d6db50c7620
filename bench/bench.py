#!/usr/bin/env python3
"""Runs linksnap and monolith on every page of a loopback web server and prints, per page
and in total: median wall time, output bytes, peak RSS, and the ratios between the tools.
Called by bench/run.sh inside a loopback-only network namespace."""
import argparse, os, statistics, subprocess, sys, tempfile, threading, time

NGINX_CONF = """
daemon off;
user root;
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 30;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=1024;{more}
        root {root};
    }}
}}
"""

def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def serve(root, also=None):
    """Serves `root` with nginx on a free loopback port (and on port `also`, another
    origin, when given): a real web server, so the figures measure the tools and not the
    server."""
    import socket
    port = free_port()
    more = f"\n        listen 127.0.0.1:{also};" if also else ""
    tmp = tempfile.mkdtemp(prefix="linksnap-bench-nginx-")
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(tmp=tmp, port=port, root=root, more=more))
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", tmp])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return port, proc
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nginx did not start; see " + tmp)

RSS_FILE = tempfile.mktemp(prefix="linksnap-bench-rss-")

def timed(cmds, reps):
    """Median wall seconds of each command, measured by hyperfine without a shell: the
    time from spawn to exit of the tool itself, with the harness's own spawning cost
    calibrated away (a Python-side stopwatch adds ~3 ms to every run of either tool)."""
    out = tempfile.mktemp(prefix="linksnap-bench-hf-", suffix=".json")
    subprocess.run(["hyperfine", "-N", "--warmup", "1", "--runs", str(reps), "--export-json", out,
                    "--style", "none", *[" ".join(c) for c in cmds]],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import json
    with open(out) as f:
        results = json.load(f)["results"]
    os.remove(out)
    return [r["median"] for r in results]

def run(cmd):
    """Wall seconds, peak RSS in bytes and exit code of one run.

    The peak RSS comes from GNU time, a small parent: Linux carries a parent's memory
    high-water mark into the child it forks, so measuring from this Python process would
    report Python's own size for any small child."""
    start = time.perf_counter()
    code = subprocess.call(["/usr/bin/time", "-f", "%M", "-o", RSS_FILE, *cmd],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    with open(RSS_FILE) as f:
        rss_kb = int(f.read().strip().splitlines()[-1])
    return elapsed, rss_kb * 1024, code

def pages(root):
    out = ["site/pages/index.html"]
    mono = os.path.join(root, "corpus/monolith-fixtures")
    for dirpath, _, files in sorted(os.walk(mono)):
        for f in sorted(files):
            if f.endswith(".html"):
                out.append(os.path.relpath(os.path.join(dirpath, f), root))
    read = os.path.join(root, "corpus/readability")
    for name in sorted(os.listdir(read)):
        if os.path.isfile(os.path.join(read, name, "source.html")):
            out.append(f"corpus/readability/{name}/source.html")
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--linksnap", required=True)
    ap.add_argument("--monolith", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--site", required=True)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="linksnap-bench-")
    os.symlink(os.path.abspath(a.corpus), os.path.join(root, "corpus"))
    os.symlink(os.path.abspath(a.site), os.path.join(root, "site"))
    out_dir = tempfile.mkdtemp(prefix="linksnap-bench-out-")
    port, nginx = serve(root)
    tools = {
        "linksnap": lambda url, out: [a.linksnap, "snap", url, "-q", "-o", out, "--allow-net", "127.0.0.0/8"],
        "monolith": lambda url, out: [a.monolith, url, "-q", "-e", "-o", out],
    }
    rows, totals = [], {t: {"time": 0.0, "bytes": 0, "rss": 0, "fail": 0} for t in tools}
    for page in pages(root):
        url = f"http://127.0.0.1:{port}/{page}"
        row = {"page": page}
        outs = {tool: os.path.join(out_dir, f"{tool}.html") for tool in tools}
        cmds = [cmd(url, outs[tool]) for tool, cmd in tools.items()]
        medians = timed(cmds, a.reps)
        for (tool, cmd), median in zip(tools.items(), medians):
            # One more run, under GNU time, for the exit code, output size and peak RSS.
            _, rss, code = run(cmd(url, outs[tool]))
            size = os.path.getsize(outs[tool]) if os.path.exists(outs[tool]) else 0
            row[tool] = (median, size, rss, code)
            totals[tool]["time"] += median
            totals[tool]["bytes"] += size
            totals[tool]["rss"] = max(totals[tool]["rss"], rss)
            totals[tool]["fail"] += code != 0
            if os.path.exists(outs[tool]):
                os.remove(outs[tool])
        rows.append(row)
    print(f"| page | linksnap ms | monolith ms | speed-up | linksnap bytes | monolith bytes | size ratio | linksnap RSS MB | monolith RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    speedups, size_ratios = [], []
    for r in rows:
        (lt, lb, lr, lc), (mt, mb, mr, mc) = r["linksnap"], r["monolith"]
        sp = mt / lt if lt else 0
        sr = lb / mb if mb else 0
        speedups.append(sp)
        if mb:
            size_ratios.append(sr)
        flag = "" if lc == 0 and mc == 0 else f" (exit {lc}/{mc})"
        print(f"| {r['page']}{flag} | {lt*1000:.1f} | {mt*1000:.1f} | {sp:.2f}x | {lb} | {mb} | {sr:.3f} | {lr/2**20:.1f} | {mr/2**20:.1f} |")
    L, M = totals["linksnap"], totals["monolith"]
    print()
    print(f"pages: {len(rows)}, runs per page per tool: {a.reps} (hyperfine -N, median), after one warm-up run")
    print(f"total median time: linksnap {L['time']:.2f} s, monolith {M['time']:.2f} s, ratio {M['time']/L['time']:.2f}x")
    print(f"per-page speed-up (monolith time / linksnap time): median {statistics.median(speedups):.2f}x, min {min(speedups):.2f}x, max {max(speedups):.2f}x")
    print(f"total output: linksnap {L['bytes']} bytes, monolith {M['bytes']} bytes, ratio {L['bytes']/max(M['bytes'], 1):.3f}")
    print(f"per-page size ratio (linksnap / monolith): median {statistics.median(size_ratios):.3f}")
    print(f"peak RSS over all runs: linksnap {L['rss']/2**20:.1f} MB, monolith {M['rss']/2**20:.1f} MB")
    print(f"non-zero exits: linksnap {L['fail']}, monolith {M['fail']}")
    nginx.terminate()

if __name__ == "__main__":
    main()
