#!/usr/bin/env python3
"""Storage: 100 pages of one site (real article text, a shared stylesheet, web font and logo,
and an image of their own each) saved by linksnap into one library, against the sum of
monolith's 100 output files. Run by bench/library.sh inside a loopback-only namespace."""
import os, random, struct, subprocess, sys, tempfile, zlib, html
sys.path.insert(0, os.path.dirname(__file__))
from bench import serve  # nginx on loopback

def png(w, h, seed):
    rnd = random.Random(seed)
    rows = b"".join(b"\x00" + bytes(rnd.randrange(256) for _ in range(w * 3)) for _ in range(h))
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")

def strip(s):
    out, tag = [], False
    for c in s:
        if c == "<": tag = True
        elif c == ">": tag = False; out.append(" ")
        elif not tag: out.append(c)
    return html.unescape(" ".join("".join(out).split()))

def main():
    linksnap, monolith, corpus = sys.argv[1], sys.argv[2], sys.argv[3]
    root = tempfile.mkdtemp(prefix="linksnap-storage-site-")
    site = os.path.join(root, "site"); os.makedirs(site)
    rules = "\n".join(f".c{i} {{ margin: {i % 17}px; padding: {i % 5}px {i % 11}px; color: #{i * 2654435761 % 0xffffff:06x}; }}" for i in range(3000))
    open(os.path.join(site, "style.css"), "w").write("@font-face { font-family: Site; src: url(font.ttf); }\nbody { font-family: Site, serif; background: url(logo.png) no-repeat top right; }\n" + rules)
    font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    open(os.path.join(site, "font.ttf"), "wb").write(open(font, "rb").read())
    open(os.path.join(site, "logo.png"), "wb").write(png(120, 60, 1))
    texts = []
    rd = os.path.join(corpus, "readability")
    for name in sorted(os.listdir(rd)):
        p = os.path.join(rd, name, "expected.html")
        if os.path.exists(p): texts.append(strip(open(p, encoding="utf-8", errors="replace").read()))
    for i in range(100):
        open(os.path.join(site, f"img{i}.png"), "wb").write(png(40, 30, 100 + i))
        body = html.escape(texts[i % len(texts)])
        open(os.path.join(site, f"page{i}.html"), "w").write(
            f"<!doctype html><html><head><meta charset=utf-8><title>Page {i}</title><link rel=stylesheet href=style.css></head>"
            f"<body><header><img src=logo.png alt=logo></header><article><h1>Page {i}</h1><img src=img{i}.png><p>{body}</p></article></body></html>")
    port, nginx = serve(root)
    urls = [f"http://127.0.0.1:{port}/site/page{i}.html" for i in range(100)]
    data = os.path.join(root, "library")
    subprocess.run([linksnap, "--data", data, "add", *urls, "--wait", "--allow-net", "127.0.0.0/8"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def du(path):
        total = 0
        for d, _, files in os.walk(path):
            for f in files:
                total += os.path.getsize(os.path.join(d, f))
        return total
    mono_dir = os.path.join(root, "monolith"); os.makedirs(mono_dir)
    for i, u in enumerate(urls):
        subprocess.run([monolith, u, "-q", "-e", "-o", os.path.join(mono_dir, f"{i}.html")], check=True)
    ls = subprocess.run([linksnap, "--data", data, "ls", "--json", "--status", "ok"], capture_output=True, text=True, check=True).stdout
    ok = ls.count('"status": "ok"')
    site_bytes = du(site)
    lib_total, blobs, mono = du(data), du(os.path.join(data, "blobs")), du(mono_dir)
    print(f"pages: 100 (captured ok: {ok}); the site itself: {site_bytes} bytes")
    print(f"monolith, sum of 100 files: {mono} bytes")
    print(f"linksnap data directory (database, blobs, search index): {lib_total} bytes, ratio {lib_total / mono:.3f}")
    print(f"linksnap blobs alone: {blobs} bytes, ratio {blobs / mono:.3f}")
    nginx.terminate()

if __name__ == "__main__":
    main()
