"""Bundles against coreutils on the same bytes, side by side: verify and install speed, and size on the media.

    .venv/bin/python -m bench bundle [--quick]

A bundle of incompressible "dataset" files (one of them twice, as a model shared by two entries would be) is
built unsigned (signing is not what is measured), then, interleaved:
  verify:  `airlock bundle verify` (every chunk's hash, every payload member and blob hash) vs `sha256sum -c`
  install: `airlock bundle install` (hash while extracting into the store, release tree of hard links)
           vs `sha256sum -c` + `tar x` of the same files as a plain tar
and sizes: the bundle on the media (every file) vs a plain tar of the same files with a SHA256SUMS (content
addressing must not lose). Without --quick it also builds the CPU appliance bundle (bundler/examples/
appliance.yaml) and sets its size against the plain tar of its parts. Goals: verify <= 1.0x, size <= 1.0x.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .harness import compare, row

ROOT = Path(__file__).resolve().parents[1]


def _run(argv, **kw) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw)


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def _plain_tar(files: list[tuple[str, Path]], out: Path) -> Path:
    """The peer's media: the same logical files in one tar plus a SHA256SUMS of it."""
    out.mkdir()
    with tarfile.open(out / "payload.tar", "w") as tar:
        for name, path in files:
            tar.add(path, arcname=name)
    subprocess.run("sha256sum payload.tar > SHA256SUMS", shell=True, cwd=out, check=True)
    return out


def _size_row(name: str, bundle: Path, files: list[tuple[str, Path]], work: Path) -> dict:
    peer = _plain_tar(files, work)
    mib = 2**20
    return row(name, "plain tar + SHA256SUMS of the same files", [_size(bundle) / mib], [_size(peer) / mib],
               unit="MiB")


def _data_bundle(work: Path, mib: int):
    from appliance import schema
    from bundler.create import create_bundle
    from bundler.spec import BundleSpec

    data = work / "data"
    data.mkdir()
    for i in range(8):
        with open(data / f"part{i}.bin", "wb") as fh:
            for _ in range(mib // 8):
                fh.write(os.urandom(2**20))
    shutil.copyfile(data / "part0.bin", data / "part0-again.bin")  # content addressing stores it once
    spec = schema.build(BundleSpec, {"name": "bench", "version": "1", "tools": {"converter": False},
                                     "rehearsal": False,
                                     "datasets": [{"path": str(p)} for p in sorted(data.iterdir())]})
    bundle = create_bundle(spec, work / "bundle", unsigned=True, max_chunk=max(mib // 4, 1) * 2**20,
                           log=lambda m: None)
    return bundle, [(f"datasets/{p.name}", p) for p in sorted(data.iterdir())]


def _appliance_size(work: Path) -> dict:
    """The CPU appliance bundle for this machine against a plain tar of its own parts."""
    import json
    import platform

    py = [sys.executable, "-m", "appliance", "bundle", "create", str(ROOT / "bundler" / "examples" / "appliance.yaml"),
          "--out", str(work / "appliance"), "--unsigned", "--set",
          f"target.glibc={'.'.join(platform.libc_ver()[1].split('.')[:2])}"]
    _run(py)
    bundle = work / "appliance"
    m = json.loads((bundle / "MANIFEST.json").read_text())
    site = work / "appliance-site"  # the parts, one file per logical path, as installed files
    _run([sys.executable, "-m", "appliance", "bundle", "install", str(bundle), "--target", str(site),
          "--insecure-no-signature", "--no-smoke", "--python", sys.executable])
    release = next((site / "releases").iterdir()) / "files"
    return _size_row("size: CPU appliance bundle on the media", bundle,
                     [(f["path"], release / f["path"]) for f in m["files"]], work / "appliance-peer")


def run(quick: bool = False) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="airlock-bench-bundle-"))
    env = dict(os.environ, AIRLOCK_HOME=str(work / "home"))
    try:
        mib = 256 if quick else 2048
        bundle, files = _data_bundle(work, mib)
        peer = _plain_tar(files, work / "peer")
        py = [sys.executable, "-m", "appliance", "bundle"]
        _run(["cat", *map(str, (bundle / "chunks").iterdir())])  # warm the page cache for both sides
        rounds = 2 if quick else 3
        rows = [compare(f"verify {mib} MiB", lambda: _run([*py, "verify", str(bundle), "--insecure-no-signature"],
                                                          env=env),
                        lambda: _run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=bundle),
                        peer_name="sha256sum -c", rounds=rounds)]
        site, out = work / "site", work / "peer-out"

        def clean():
            shutil.rmtree(site, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()

        rows.append(compare(f"install {mib} MiB", lambda: _run([*py, "install", str(bundle), "--target", str(site),
                                                                "--insecure-no-signature", "--no-smoke"], env=env),
                            lambda: _run(["sh", "-c", f"sha256sum -c --quiet SHA256SUMS && tar xf payload.tar -C {out}"],
                                         cwd=peer),
                            peer_name="sha256sum -c + tar x", rounds=rounds, setup=clean))
        rows.append(_size_row(f"size: {mib} MiB of data (one file twice)", bundle, files, work / "size-peer"))
        if not quick:
            rows.append(_appliance_size(work))
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)
