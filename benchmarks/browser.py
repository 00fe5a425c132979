"""The in-browser page (`enlarge export --web`) against the Python ONNX and PyTorch paths, on this machine.

    python benchmarks/browser.py                  # 1 MP ×2: time per output megapixel, printed
    python benchmarks/browser.py --write          # also write docs/results/browser.md
    python benchmarks/browser.py --photo-12mp     # also a 12 MP photo ×2 in the browser: completes? peak memory

Rows: lite in headless Chromium from file:// (one thread: threads need cross-origin isolation, which file://
cannot have) and from a loopback static host that sends the COOP/COEP headers (threads); lite's ONNX export
through onnxruntime in Python and lite in PyTorch fp32, each with 1 thread and with every core. The reference is
Python ONNX with 1 thread, measured in the same run; the ratio column is each row's time over it. Browser times
are the page's own measure of the enlargement (decode and PNG encoding apart, shown as "page total"). The
12 MP run reports whether it completed, its wall time (click to result, as the driver saw it), the renderer
process's peak resident memory (VmHWM, the kernel's high-water mark of the tab's process, so no sample is
missed) and the JS heap.

Timings taken while another process used the CPU (`machine_info.heavy_processes`, sampled before the run and
after each row; the load average would count a process paused a minute ago) are marked busy.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from machine_info import cpu_summary, heavy_processes  # beside this script
from PIL import Image

from enlarge import procfs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from chromium import start_chromium  # noqa: E402  (the tests' headless Chromium)

RESULT = REPO / "docs" / "results" / "browser.md"
PHOTO = REPO / "examples" / "coffee.png"
MODEL = "lite"
SCALE = 2
ONE_MP = (1224, 816)  # 0.999 MP input: the target's "1 MP ×2"
TWELVE_MP = (4243, 2828)  # 12.0 MP input, ×2 → 48 MP
REPEATS = 3
WINDOW = (1400, 1000)
WAIT_S = 3600.0
POLL_S = 0.5
BYTES_PER_MB = 1024 * 1024
ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}
TAB_LIMIT_MB = 2048  # the target: a 12 MP photo ×2 without the tab exceeding 2 GB


@dataclass(frozen=True)
class Row:
    path: str
    threads: str
    seconds: float
    out_mp: float
    note: str = ""

    @property
    def s_per_mp(self) -> float:
        return self.seconds / self.out_mp


def test_image(size: tuple[int, int], folder: Path) -> Path:
    """The example photo resized to `size`: real content at the size asked."""
    path = folder / f"photo-{size[0]}x{size[1]}.png"
    with Image.open(PHOTO) as photo:
        photo.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(path)
    return path


def time_python(image: Path, backend: str, threads: int) -> float:
    """Median seconds of `Upscaler.upscale_image` (no file I/O) for lite ×SCALE, after one warm-up."""
    from enlarge.imageio import read_image
    from enlarge.sizing import SizeRequest
    from enlarge.upscaler import Upscaler

    precision = None if backend == "onnx" else "fp32"
    upscaler = Upscaler(model=MODEL, backend=backend, threads=threads, precision=precision)
    decoded = read_image(image)
    plan = SizeRequest(scale=SCALE).plan((decoded.width, decoded.height))
    times = []
    for _ in range(REPEATS + 1):
        start = time.perf_counter()
        upscaler.upscale_image(decoded, plan)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


class _IsolatedHandler(http.server.SimpleHTTPRequestHandler):
    """A static host that makes the page cross-origin isolated (so onnxruntime-web may use threads)."""

    def end_headers(self) -> None:
        for name, value in ISOLATION.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, *args: object) -> None:
        pass


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_IsolatedHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/index.html"


def renderer_peak_mb(profile: Path) -> float:
    """Peak resident memory (VmHWM) of the largest renderer process of the Chromium using `profile`."""
    peaks = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "--type=renderer" in cmdline and str(profile) in cmdline:
            if (peak := procfs.peak_rss_bytes(process.pid)) is not None:
                peaks.append(peak / BYTES_PER_MB)
    return max(peaks, default=float("nan"))


def browser_runs(url: str, image: Path, repeats: int, profile: Path, downloads: Path) -> tuple[list[dict], dict]:
    """Enlarge `image` ×SCALE `repeats` times in the page at `url`: the page's timings per run, and facts."""
    from selenium.webdriver.common.by import By

    driver = start_chromium(profile, downloads, WINDOW, wait_s=WAIT_S)
    try:
        driver.get(url)
        facts = {"threads": driver.execute_script("return ort.env.wasm.numThreads"),
                 "isolated": driver.execute_script("return self.crossOriginIsolated")}
        driver.find_element(By.ID, "file").send_keys(str(image))
        deadline = time.monotonic() + WAIT_S
        while not driver.find_element(By.ID, "go").is_enabled():
            if time.monotonic() > deadline:
                raise RuntimeError("the page did not take the image")
            time.sleep(POLL_S)
        scale = driver.find_element(By.ID, "scale")
        scale.clear()
        scale.send_keys(str(SCALE))
        runs = []
        for _ in range(repeats):
            driver.execute_script("window.enlargeTimings = null")
            clicked = time.monotonic()
            driver.find_element(By.ID, "go").click()
            while (timings := driver.execute_script("return window.enlargeTimings")) is None:
                status = driver.find_element(By.ID, "status").text
                if status.startswith("Error") or time.monotonic() > deadline:
                    raise RuntimeError(f"the page failed: {status}")
                time.sleep(POLL_S)
            runs.append({**timings, "wall": time.monotonic() - clicked})
        facts["peak_mb"] = renderer_peak_mb(profile)
        facts["js_heap_mb"] = driver.execute_script("return performance.memory.usedJSHeapSize") / BYTES_PER_MB
        return runs, facts
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write {RESULT.relative_to(REPO)}")
    parser.add_argument("--photo-12mp", action="store_true", help="also enlarge a 12 MP photo ×2 in the browser")
    args = parser.parse_args()
    from enlarge.export.web import export_web
    from enlarge.models.registry import load_model

    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    others = heavy_processes()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="enlarge-browser-") as tmp:
        folder = Path(tmp)
        app = export_web([load_model(MODEL)], folder / "app")
        image = test_image(ONE_MP, folder)
        out_mp = ONE_MP[0] * SCALE * ONE_MP[1] * SCALE / 1e6
        server, url = serve(app.folder)
        try:
            for name, page in (("browser, file://", app.index.as_uri()), ("browser, isolated host", url)):
                runs, facts = browser_runs(page, image, REPEATS + 1, folder / f"profile-{len(rows)}", folder / "dl")
                render = statistics.median(r["render"] for r in runs[1:])
                total = statistics.median(r["total"] for r in runs[1:])
                rows.append(Row(name, str(facts["threads"]), render, out_mp, f"page total {total:.2f} s"))
                print(rows[-1], flush=True)
                others += heavy_processes()
        finally:
            server.shutdown()
        for backend, label in (("onnx", "Python ONNX"), ("torch", "PyTorch fp32")):
            for threads in sorted({1, cores}):
                rows.append(Row(label, str(threads), time_python(image, backend, threads), out_mp))
                print(rows[-1], flush=True)
                others += heavy_processes()
        big = None
        if args.photo_12mp:
            from selenium.common.exceptions import WebDriverException

            photo = test_image(TWELVE_MP, folder)
            try:
                runs, facts = browser_runs(app.index.as_uri(), photo, 1, folder / "profile-12mp", folder / "dl")
                big = (runs[0], facts)
            except (RuntimeError, WebDriverException) as exc:
                big = str(exc).splitlines()[0]
            print(big, flush=True)
    load_after = os.getloadavg()[0]
    text = report(rows, big, load_before, load_after, sorted(set(others)), app.runtime_version)
    print(text)
    if args.write:
        RESULT.write_text(text)
    return 0


def report(rows: list[Row], big: tuple[dict, dict] | str | None, load_before: float, load_after: float,
           others: list[str], runtime: str) -> str:
    reference = next(r for r in rows if r.path == "Python ONNX" and r.threads == "1")
    lines = [
        "# In the browser",
        "",
        f"Produced by `python benchmarks/browser.py{' --photo-12mp' if big else ''} --write`: lite ×{SCALE} on a "
        f"{ONE_MP[0]}×{ONE_MP[1]} photo (1 MP in, {reference.out_mp:.1f} MP out), median of {REPEATS} runs after "
        f"a warm-up. Browser: headless Chromium, onnxruntime-web {runtime} (WebAssembly SIMD), the page's own time "
        "of the enlargement; Python: `Upscaler.upscale_image` (no file I/O). Ratio: time over Python ONNX with "
        "1 thread, measured in the same run.",
        "",
        f"Machine: {cpu_summary()}; load average {load_before:.2f} before, {load_after:.2f} after"
        + (f" — **measured on a busy machine**: {'; '.join(others)}." if others else "; no other process used the CPU."),
        "",
        "| path | threads | s | s per output MP | ratio | note |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row.path} | {row.threads} | {row.seconds:.2f} | {row.s_per_mp:.3f} | "
                     f"{row.seconds / reference.seconds:.2f}× | {row.note} |")
    mp = TWELVE_MP[0] * TWELVE_MP[1] / 1e6
    if isinstance(big, str):
        lines += ["", f"12 MP photo ({TWELVE_MP[0]}×{TWELVE_MP[1]}) ×{SCALE} in the browser from file://: "
                  f"**did not complete**: {big}"]
    elif big is not None:
        timings, facts = big
        verdict = "within" if facts["peak_mb"] <= TAB_LIMIT_MB else "**over**"
        lines += [
            "",
            f"12 MP photo ({TWELVE_MP[0]}×{TWELVE_MP[1]}, {mp:.1f} MP) ×{SCALE} → {4 * mp:.0f} MP in the browser "
            f"from file://: completed in {timings['wall']:.0f} s wall (page total {timings['total']:.0f} s, "
            f"enlargement {timings['render']:.0f} s); the "
            f"tab's renderer process peaked at {facts['peak_mb']:.0f} MB resident ({verdict} the "
            f"{TAB_LIMIT_MB} MB target), JS heap {facts['js_heap_mb']:.0f} MB at the end.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
