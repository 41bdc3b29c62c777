"""Render a run's report.html in headless Chromium and check it: python benchmarks/html_report.py RUN_DIR.

Writes RUN_DIR/report.html (oakdpo.html_report, unless --no-build), installs Debian's chromium when it is
missing (apt-get), takes a screenshot (--screenshot, default RUN_DIR/report_screenshot.png) and prints the
checks, one per line, then a JSON summary:
  - the page loads nothing from outside: no src/href/url() pointing at http(s):// or //host, no <link> or
    external <script>, every image an inline data: URI;
  - it has the metrics table, the plots, pairs with chosen and rejected side by side and an invalid step
    marked, and the verdict-reason filters;
  - Chromium renders it to a non-blank screenshot; page size in bytes.
Exit code 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from oakdpo.html_report import external_refs, write_html_report

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> str:
    path = find_chromium()
    if path:
        return path
    print("chromium missing: apt-get install -y chromium", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True)
    path = find_chromium()
    if not path:
        sys.exit("error: chromium did not install")
    return path


def screenshot(chromium: str, page: Path, png: Path, width: int, height: int) -> tuple[int, str]:
    with tempfile.TemporaryDirectory(prefix="oakdpo-chromium-") as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={png}", page.resolve().as_uri()]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    return r.returncode, (r.stderr or "")[-400:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="A run directory (OUT of oakdpo quickstart / oakdpo oak).")
    ap.add_argument("--no-build", action="store_true", help="Check the existing report.html, do not rewrite it.")
    ap.add_argument("--screenshot", default=None, help="PNG to write (default RUN_DIR/report_screenshot.png).")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=2400)
    args = ap.parse_args()
    run = Path(args.run_dir)
    page = run / "report.html"
    t0 = time.time()
    if not args.no_build:
        write_html_report(run)
    build_s = time.time() - t0
    text = page.read_text(encoding="utf-8")
    checks: dict[str, bool] = {}
    bad = external_refs(text)
    checks["no external URL (src/href/url()/link)"] = not bad
    checks["metrics table"] = '<table class="metrics">' in text and "trace validity" in text
    n_plots = len(re.findall(r'<img src="data:image/png;base64,', text))
    checks["plots inline (data: PNG)"] = n_plots >= 3
    checks["pairs side by side (chosen | rejected)"] = 'class="sides"' in text and "<h4 class=\"rejected\">" in text
    checks["an invalid step marked, with its reason"] = 'class="step bad"' in text and 'class="reason"' in text
    checks["verdict-reason filter"] = "oakFilter(this)" in text
    chromium = ensure_chromium()
    png = Path(args.screenshot) if args.screenshot else run / "report_screenshot.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    if png.exists():
        png.unlink()
    t1 = time.time()
    rc, err = screenshot(chromium, page, png, args.width, args.height)
    shot_s = time.time() - t1
    checks["headless Chromium renders a screenshot"] = rc == 0 and png.is_file() and png.stat().st_size > 20_000
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if bad:
        print("external references:", *bad[:10], sep="\n  ")
    if rc != 0:
        print(f"chromium exit {rc}: {err}")
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout.strip()
    print(json.dumps({"page": str(page), "page_bytes": len(text.encode("utf-8")), "plots": n_plots,
                      "pairs_shown": text.count('class="card pair"'),
                      "invalid_steps_marked": text.count('class="step bad"'),
                      "build_s": round(build_s, 2), "screenshot": str(png),
                      "screenshot_bytes": png.stat().st_size if png.is_file() else 0,
                      "screenshot_s": round(shot_s, 2), "chromium": version, "passed": all(checks.values())}))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
