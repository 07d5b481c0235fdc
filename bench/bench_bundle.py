"""Verify and install throughput of a bundle against coreutils peers on the same bytes, side by side.

    .venv/bin/python bench/bench_bundle.py [--size-mib 2048] [--chunk-mib 512]

Builds a bundle of incompressible "dataset" files (unsigned; signing is not what is measured), then times:
  verify:  `airlock bundle verify` (parallel chunk hashing)   vs  `sha256sum -c SHA256SUMS`
  install: `airlock bundle install` (one pass: hash while extracting into the store, then the release tree)
           vs  `sha256sum -c` + `tar x` of the same files as a plain tar
Goals: verify <= 1.0x sha256sum; install in a single pass over the bytes. Caches are warm for both sides.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(argv, **kw) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--chunk-mib", type=int, default=512)
    ap.add_argument("--files", type=int, default=8)
    args = ap.parse_args()
    from appliance import schema
    from bundler.create import create_bundle
    from bundler.spec import BundleSpec

    work = Path(tempfile.mkdtemp(prefix="airlock-bench-"))
    os.environ["AIRLOCK_HOME"] = str(work / "home")
    try:
        data = work / "data"
        data.mkdir()
        per = args.size_mib * 2**20 // args.files
        for i in range(args.files):
            with open(data / f"part{i}.bin", "wb") as fh:
                for _ in range(per // 2**20):
                    fh.write(os.urandom(2**20))
        spec = schema.build(BundleSpec, {"name": "bench", "version": "1", "tools": {"converter": False},
                                         "rehearsal": False,
                                         "datasets": [{"path": str(p)} for p in sorted(data.iterdir())]})
        bundle = create_bundle(spec, work / "bundle", unsigned=True, max_chunk=args.chunk_mib * 2**20,
                               log=lambda m: None)
        peer = work / "peer"  # the same bytes as a plain tar + SHA256SUMS for coreutils
        peer.mkdir()
        with tarfile.open(peer / "payload.tar", "w") as tar:
            for p in sorted(data.iterdir()):
                tar.add(p, arcname=p.name)
        subprocess.run("sha256sum payload.tar > SHA256SUMS", shell=True, cwd=peer, check=True)
        py = [sys.executable, "-m", "appliance", "bundle"]
        timed(["cat", *map(str, (bundle / "chunks").iterdir())])  # warm the page cache for both sides
        results = {}
        results["sha256sum -c"] = timed(["sha256sum", "-c", "SHA256SUMS"], cwd=bundle)
        results["airlock verify"] = timed([*py, "verify", str(bundle), "--insecure-no-signature"])
        out = work / "peer-out"
        out.mkdir()
        results["sha256sum + tar x"] = timed(["sh", "-c", f"sha256sum -c SHA256SUMS && tar xf payload.tar -C {out}"],
                                             cwd=peer)
        results["airlock install"] = timed([*py, "install", str(bundle), "--target", str(work / "site"),
                                            "--insecure-no-signature", "--no-smoke"])
        mib = args.size_mib
        print(f"payload {mib} MiB in {len(list((bundle / 'chunks').iterdir()))} chunks, "
              f"{os.cpu_count()} cores")
        for name, secs in results.items():
            print(f"{name:<20} {secs:7.2f} s  {mib / secs:8.0f} MiB/s")
        print(f"verify ratio  airlock/sha256sum        = {results['airlock verify'] / results['sha256sum -c']:.2f}x")
        print(f"install ratio airlock/(sha256sum+tar x) = "
              f"{results['airlock install'] / results['sha256sum + tar x']:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
