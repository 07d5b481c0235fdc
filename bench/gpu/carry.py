"""Prepare what the GPU acceptance run carries to the device machine (which has Python 3.12, torch, transformers,
peft and accelerate, and no network): the missing wheels for CPython 3.12 (bitsandbytes repacked to its CUDA 13
library only), llama.cpp's converter, and the embedded model's config and tokenizer (its weights are too large
to carry; the run builds the same architecture with seeded random weights).

    .venv/bin/python -m bench.gpu.carry            # writes .bench/gpu-carry (ignored by git), at most 60 MiB

Then, on a task lent a device: run(command="python3 bench/gpu/run.py --carry .bench/gpu-carry --out $OUT",
carry=[".bench/gpu-carry"], timeout_s=540).
"""

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".bench" / "gpu-carry"
LIMIT = 60 * 2**20  # the device tool carries 64 MiB with the working tree
WHEELS = ["trl==1.16.0", "datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19", "gguf==0.19.0",
          "bitsandbytes==0.50.2"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def download(dest: Path) -> None:
    args = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
            "--implementation", "cp", "-d", str(dest)]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    subprocess.run([*args, *WHEELS], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest), "jieba==0.42.1"],
                   check=True, capture_output=True)


def repack_bitsandbytes(dest: Path, keep: str = "cuda130") -> None:
    """bitsandbytes ships one library per CUDA version; the device runs CUDA 13: keep that one and the CPU one."""
    wheel = next(dest.glob("bitsandbytes-*.whl"))
    out = wheel.with_suffix(".repacked")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            name = info.filename
            if "libbitsandbytes_cuda" in name and keep not in name:
                continue
            data = src.read(info)
            if name.endswith(".dist-info/RECORD"):
                data = b"".join(line for line in data.splitlines(keepends=True)
                                if b"libbitsandbytes_cuda" not in line or keep.encode() in line)
            dst.writestr(info, data)
    out.replace(wheel)


def model_files(dest: Path) -> None:
    """The embedded model's config and tokenizer (no weights)."""
    from appliance.catalog import default_card
    from appliance.hfcache import snapshot_path

    snap = snapshot_path(default_card().local_repo_id)
    dest.mkdir(parents=True)
    for f in snap.iterdir():
        if not f.name.endswith(".safetensors"):
            shutil.copyfile(f, dest / f.name)


def main() -> int:
    import argparse

    from appliance.tools import ensure_converter

    ap = argparse.ArgumentParser(prog="python -m bench.gpu.carry")
    ap.add_argument("--out", type=Path, default=OUT, help=f"where the carry goes (default {OUT})")
    out = ap.parse_args().out

    with tempfile.TemporaryDirectory(dir=ROOT / ".bench" if (ROOT / ".bench").is_dir() else None) as tmp:
        stage = Path(tmp) / "carry"
        (stage / "whl").mkdir(parents=True)
        download(stage / "whl")
        repack_bitsandbytes(stage / "whl")
        model_files(stage / "model")
        shutil.copytree(ensure_converter(), stage / "converter", ignore=shutil.ignore_patterns("__pycache__"))
        size = sum(p.stat().st_size for p in stage.rglob("*") if p.is_file())
        for p in sorted(stage.rglob("*.whl")):
            print(f"{p.stat().st_size / 2**20:7.1f} MiB  {p.name}")
        print(f"{size / 2**20:7.1f} MiB  in all (limit {LIMIT / 2**20:.0f})")
        if size > LIMIT:
            print("too large to carry", file=sys.stderr)
            return 1
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(stage, out)
    print(f"ready: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
