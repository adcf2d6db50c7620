"""The browser engine on hostile pages (run by bench/hostile.sh inside a loopback-only
network namespace): for each, `linksnap snap --engine browser`'s exit code, wall time and
the peak memory (PSS) of linksnap together with every Chromium process it starts, sampled
from /proc every 20 ms. The pages are served by a small threaded server of this script's
own: each is what a hostile or broken site does, not a page of the corpus."""
import argparse
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
from browser import run  # noqa: E402

PAGES = {
    "/hog.html": "<!doctype html><title>hog</title><p id=h>holding nothing</p><script>"
                 "var held = []; for (;;) held.push(new Array(131072).fill(Math.random()));</script>",
    "/busy.html": "<!doctype html><title>busy</title><p>a script that never yields</p>"
                  "<script>setTimeout(function () { for (;;) {} }, 100);</script>",
    "/alerts.html": "<!doctype html><title>alerts</title><p>shown before the alerts</p>"
                    "<script>setTimeout(function () { for (;;) { alert('again'); } }, 0);</script>",
    "/tall.html": "<!doctype html><body style=margin:0><div style='height:30000px;"
                  "background:linear-gradient(red,blue)'>tall</div></body>",
    "/heavy.html": "<!doctype html><title>heavy</title><p>a page whose resources never end</p>"
                   "<img src=/huge alt='200 MB'><script>fetch('/drip').then(function (r) { return r.text(); });</script>",
    "/nowhere.html": "<!doctype html><title>moves</title><p>first</p><script>"
                     "addEventListener('load', function () { location.href = 'http://nowhere.invalid/'; });</script>",
    "/elsewhere.html": "<!doctype html><title>moves</title><p>first</p><script>"
                       "addEventListener('load', function () { location.href = 'http://10.0.0.1/'; });</script>",
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def stream_200_mb(self, content_type, announced):
        """200 MB of bytes, with their length announced or the connection's end for it."""
        chunk = b"x" * 65536
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if announced:
            self.send_header("Content-Length", str(3200 * len(chunk)))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            for _ in range(3200):
                self.wfile.write(chunk)
        except OSError:
            pass

    def do_GET(self):
        path = self.path.split("?")[0]
        if path in PAGES:
            body = PAGES[path].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif path == "/huge":
            # 200 MB, announced: over the capture's per-resource limit.
            self.stream_200_mb("image/png", announced=True)
        elif path == "/huge-unannounced":
            self.stream_200_mb("text/html", announced=False)
        elif path == "/drip":
            # A response that never ends.
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                n = 0
                while True:
                    self.wfile.write(f"<p>{n}</p>\n".encode())
                    self.wfile.flush()
                    n += 1
                    time.sleep(0.1)
            except OSError:
                pass
        elif path == "/redirect-refused":
            self.send_response(302)
            self.send_header("Location", "http://10.0.0.1/")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--linksnap", required=True)
    ap.add_argument("--chromium", required=True)
    a = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    out = tempfile.mkdtemp(prefix="linksnap-bench-hostile-")
    cases = [
        ("a script that wants memory without end", "/hog.html", []),
        ("the same, --browser-heap-limit 256", "/hog.html", ["--browser-heap-limit", "256"]),
        ("a script that never yields", "/busy.html", []),
        ("alert() without end", "/alerts.html", []),
        ("a page 30,000 px tall, with a screenshot", "/tall.html",
         ["--screenshot", os.path.join(out, "tall.png")]),
        ("a 200 MB image and a response that never ends", "/heavy.html", []),
        ("a 200 MB page, no length announced", "/huge-unannounced", []),
        ("a page that never ends", "/drip", []),
        ("a page that navigates to a name that does not resolve", "/nowhere.html", []),
        ("a page that navigates to a refused address", "/elsewhere.html", []),
        ("a redirect into a refused address", "/redirect-refused", []),
    ]
    print(f"{'page':56} exit   wall  peak PSS (linksnap + Chromium)  said")
    for what, path, extra in cases:
        cmd = [a.linksnap, "snap", base + path, "-q", "-o", os.path.join(out, "out.html"),
               "--allow-net", "127.0.0.0/8", "--engine", "browser", "--chromium", a.chromium,
               "--timeout", "20", *extra]
        wall, peak, code, said = run(cmd)
        print(f"{what:56} {code:>4} {wall:6.2f} s {peak / 2**20:8.0f} MiB  {said[:110]}", flush=True)
    server.shutdown()


if __name__ == "__main__":
    main()
