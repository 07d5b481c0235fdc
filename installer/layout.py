"""The installed layout of an Airlock home, named in one place: where releases, envs, blobs and links live, and the
one operation that makes a release live (`switch`), shared by install and rollback.

    store/<sha256>                      every blob once (content addressing; a delta's base blobs stay here)
    envs/<name>-<env id>/               a Python env (venv or unpacked conda env), named by its content: releases
                                        with the same wheels share it
    releases/<release>/                 files/ (hard links into store/), env -> ../../envs/<name>-<env id>,
                                        MANIFEST.json, SHA256SUMS(.minisig), .complete
    current/<name>, previous/<name>     -> ../releases/<release>   (switching current/<name> is the commit point)
    bin/airlock                         runs the current release's airlock with AIRLOCK_HOME set to this home
    tools/<dir>                         -> the current release's copy (llama.cpp's converter)
    hf-cache/                           models, as a Hugging Face cache
"""

import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path

READY = ".airlock-env-ready"  # the env is complete: a release was committed with it (shared by later ones)
UNPACKED = ".airlock-env-unpacked"  # a conda env is unpacked and conda-unpack ran; its wheels may still be due


class Layout:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.store = self.root / "store"
        self.hf_cache = self.root / "hf-cache"
        self.wrapper = self.root / "bin" / "airlock"

    def release(self, rid: str) -> Path:
        return self.root / "releases" / rid

    def env(self, name: str) -> Path:
        return self.root / "envs" / name

    def link(self, kind: str, name: str) -> Path:
        return self.root / kind / name  # kind: current | previous

    def release_of(self, kind: str, name: str) -> str | None:
        """The release id current/<name> (or previous/<name>) points at, if it is complete."""
        link = self.link(kind, name)
        if not link.is_symlink() or not (link / ".complete").is_file():
            return None
        return os.readlink(link).rsplit("/", 1)[-1]

    def is_current(self, name: str, rid: str) -> bool:
        return self.release_of("current", name) == rid

    def manifest_of(self, rid: str) -> dict:
        return json.loads((self.release(rid) / "MANIFEST.json").read_text())

    def stage_release(self, rid: str) -> Path:
        """A fresh staging directory beside releases/<rid> (a killed run's are removed first)."""
        parent = self.release(rid).parent
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob(f".{rid}.staging-*"):
            shutil.rmtree(stale, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=parent, prefix=f".{rid}.staging-"))

    def drop_blob(self, sha: str) -> None:
        """Take back a blob this run wrote, unless a complete release uses it."""
        for marker in self.root.glob("releases/*/.complete"):
            manifest = marker.parent / "MANIFEST.json"
            if manifest.is_file() and sha in manifest.read_text():
                return
        (self.store / sha).unlink(missing_ok=True)

    def commit(self, manifest, stage: Path, env: Path | None) -> None:
        """Rename the staged release into place, mark its env ready, then switch to it."""
        final = self.release(manifest.release)
        if env is not None:
            (stage / "env").symlink_to(os.path.relpath(env, final))
        (stage / ".complete").write_text(manifest.sha256 + "\n")
        if final.exists():  # an incomplete tree from a killed run (a complete one would be current already)
            shutil.rmtree(final)
        os.replace(stage, final)
        if env is not None:
            (Path(env) / READY).write_text("")
        self.switch(manifest.name, manifest.release, appliance=manifest.appliance is not None)

    def switch(self, name: str, rid: str, appliance: bool) -> None:
        """Make releases/<rid> current for `name`: tools links, previous/<name>, current/<name>, bin/airlock."""
        files = self.release(rid) / "files" / "tools"
        for tool in sorted(files.iterdir()) if files.is_dir() else []:
            _swap_symlink(self.root / "tools" / tool.name, f"../releases/{rid}/files/tools/{tool.name}")
        old = self.release_of("current", name)
        if old and old != rid:
            _swap_symlink(self.link("previous", name), f"../releases/{old}")
        _swap_symlink(self.link("current", name), f"../releases/{rid}")  # the commit point
        if appliance:
            self.write_wrapper(name)
        script = self.release(rid) / "install.sh"
        if script.is_file():  # the trusted stage 1 for the next bundle: sh bin/airlock-install --bundle MEDIA
            self._write_bin("airlock-install", script.read_text())

    def write_wrapper(self, name: str) -> None:
        """bin/airlock: the operator's one command, from any directory, always the current release."""
        root = shlex.quote(str(self.root))
        airlock = shlex.quote(str(self.link("current", name) / "env" / "bin" / "airlock"))
        self._write_bin("airlock", f"#!/bin/sh\n# Airlock from the bundle '{name}' installed in this home (written "
                        f"by the installer).\nAIRLOCK_HOME={root}\nexport AIRLOCK_HOME\nexec {airlock} \"$@\"\n")

    def _write_bin(self, name: str, text: str) -> None:
        path = self.root / "bin" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, path)


def _swap_symlink(link: Path, points_to: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.new-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(points_to)
    os.replace(tmp, link)
