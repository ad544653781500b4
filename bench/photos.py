"""Our photo pipeline against Pillow's bare decode + encode of the same 12 MP JPEG.

    .venv/bin/python bench/photos.py [--runs 7]

Each variant runs in its own process, so its peak RSS (minus the process's RSS before the
photo) is its own. Time is the median of the runs.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_photo(path: Path) -> None:
    """A 4000x3000 JPEG with photo-like detail (smooth areas, edges, grain) and EXIF."""
    from PIL import Image, ImageDraw, ImageFilter

    grain = Image.effect_noise((1000, 750), 50).resize((4000, 3000), Image.Resampling.BICUBIC)
    base = Image.merge("RGB", (Image.linear_gradient("L").resize((4000, 3000)),
                               grain, Image.radial_gradient("L").resize((4000, 3000))))
    draw = ImageDraw.Draw(base)
    for i in range(0, 4000, 160):
        draw.line((i, 0, 4000 - i, 3000), fill=(i % 255, 90, 200), width=9)
    base = base.filter(ImageFilter.SMOOTH)
    exif = Image.Exif()
    exif[0x0112] = 6
    base.save(path, "JPEG", quality=92, exif=exif)


def peak_rss_kb() -> int:
    """This process's peak RSS. Not ru_maxrss: after fork it starts at the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_variant(name: str, photo: Path, runs: int) -> dict:
    data = photo.read_bytes()
    from PIL import Image

    from widget import images
    from widget.images import PhotoPolicy

    uri = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii") \
        if name.startswith("ours") else ""
    # A photo's share of the 4.5 MB body: the whole of it alone, a fifth of it with four more.
    budget = {"ours": 4_400_000 * 3 // 4, "ours_one_of_five": 4_400_000 * 3 // 4 // 5}.get(name)

    def ours() -> int:
        return len(images.process(uri, PhotoPolicy(), budget))

    def bare() -> int:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            out = io.BytesIO()
            image.save(out, "JPEG", quality=85)
        return len(out.getvalue())

    work = bare if name == "bare" else ours
    before = peak_rss_kb()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    peak = peak_rss_kb()
    return {"median_s": round(statistics.median(times), 4),
            "peak_rss_growth_mb": round((peak - before) / 1024, 1)}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--variant", choices=["ours", "ours_one_of_five", "bare"])
    parser.add_argument("--photo")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, Path(args.photo), args.runs)))
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.jpg"
        make_photo(photo)
        results = {}
        for variant in ("bare", "ours", "ours_one_of_five"):
            out = subprocess.run(
                [sys.executable, __file__, "--variant", variant, "--photo", str(photo),
                 "--runs", str(args.runs)], capture_output=True, text=True, check=True)
            results[variant] = json.loads(out.stdout)
        size = photo.stat().st_size
    figures = {
        "photo": {"pixels": "4000x3000", "jpeg_bytes": size},
        "bare_pillow_decode_encode": results["bare"],
        "our_pipeline_one_photo": results["ours"],
        "our_pipeline_one_of_five": results["ours_one_of_five"],
        "time_ratio_one_photo": round(results["ours"]["median_s"]
                                      / results["bare"]["median_s"], 3),
        "time_ratio_one_of_five": round(results["ours_one_of_five"]["median_s"]
                                        / results["bare"]["median_s"], 3),
    }
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
