"""`create_bundle(spec, out)`: models, datasets, wheels, tools and env -> a signed, chunked bundle directory.

    airlock bundle create bundler/examples/bundle.yaml --out /media/usb/bundle [--since OLD/MANIFEST.json]

Steps: stage models into an HF cache layout, gather datasets/wheels/tools, pack the env, rehearse offline,
then write the payload (each unique blob once; with --since, blobs the site already has are left out), the
manifest, its minisign signature, the SBOM, README.txt, install.sh and SHA256SUMS. The bundle is built beside
`out` and renamed into place, so a rebuild leaves no stale parts and a failed build leaves the old one intact.
"""

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance import __version__
from appliance.atomic import staged_dir
from appliance.errors import AirlockError
from appliance.hfcache import sha256_file
from appliance.schema import to_dict
from installer import minisign
from installer.format import (DEFAULT_MAX_CHUNK, ENV_INFO, FORMAT, INSTALL_SH, INSTALLER_PYZ, MANIFEST, README,
                              ROOT_FILES, SBOM, SIGNATURE, SUMS, check_paths, env_id)
from installer.progress import bar, step

from . import env as envmod
from . import models as modelmod
from . import pack, readme, rehearsal, sbom, tools, wheels
from .hub import Hub
from .lock import new_pin, read_lock, write_lock
from .plan import install_need
from .spec import BundleSpec

INSTALL_SH_SOURCE = Path(__file__).resolve().parents[1] / "installer" / "install.sh"


@dataclass
class Gathered:
    """What the content gatherers collected: logical files (path, source, kind) and the manifest's sections."""

    files: list = field(default_factory=list)
    models: list = field(default_factory=list)
    staged: list = field(default_factory=list)
    pins: list = field(default_factory=list)
    wheels: list = field(default_factory=list)
    tools: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    converter: Path | None = None


def gather_models(spec: BundleSpec, work: Path, got: Gathered, log, origins: list) -> None:
    """Each model staged into an HF cache layout under work/hf-cache (hub models at their pinned commit)."""
    cache = work / "hf-cache"
    cache.mkdir(parents=True)
    hub = Hub(spec.hub)
    for m, origin in zip(spec.models, origins):
        log(f"model {m.path or m.id}" + (f" @ {origin.commit[:12]} ({origin.ref})" if origin.pinned else ""))
        s = modelmod.stage_model(m, cache, origin, hub)
        got.staged.append(s)
        if origin.pinned:
            got.pins.append(new_pin(origin.hub_repo, origin.ref, origin.commit, hub.shown))
        prefix = f"models/{s.repo_id}"
        got.files += [(f"{prefix}/{p.relative_to(s.snapshot)}", p.resolve(), "model")
                      for p in sorted(s.snapshot.rglob("*")) if p.is_file()]
        got.models.append({"repo_id": s.repo_id, "revision": s.revision, "prefix": prefix, "source": s.source,
                           "license": s.license, "pickle_weights": s.pickle_weights, "remote_code": s.remote_code,
                           "skipped": s.skipped, "ref": origin.ref or s.revision})


def gather_datasets(spec: BundleSpec, got: Gathered) -> None:
    for d in spec.datasets:
        if not Path(d.path).is_file():
            raise AirlockError("dataset file not found", where=f"spec: datasets[{d.path}]", fix="check the path")
        got.files.append((f"datasets/{d.name or Path(d.path).name}", Path(d.path), "dataset"))


def gather_wheels(spec: BundleSpec, work: Path, got: Gathered, log) -> None:
    """Airlock's own stack (appliance: true), or the spec's wheels and the llama-cpp-python wheel."""
    if spec.appliance:
        from .appliance import appliance_wheels

        got.wheels, got.tools["llama-cpp-python"] = appliance_wheels(spec, work / "wheels", log)
    else:
        extra = []
        if spec.tools.llama_cpp_wheel or spec.tools.llama_cpp_wheel_file:
            llama, llama_args = tools.llama_cpp_wheel(spec.target, work / "wheels", spec.tools.llama_cpp_wheel_file,
                                          spec.tools.llama_cpp_wheel, log)
            got.tools["llama-cpp-python"] = {"version": wheels.parse(llama, "").version,
                                             "cmake_args": llama_args}
            extra.append(llama)
        if spec.wheels.requirements or spec.wheels.files or extra:
            got.wheels = wheels.gather(spec.wheels, spec.target, work / "wheels", log=log)
    if got.wheels:
        (work / "wheels" / "requirements.txt").write_text(wheels.requirements_txt(got.wheels))
        got.files += [(f"wheels/{w.path.name}", w.path, "wheel") for w in got.wheels]
        got.files.append(("wheels/requirements.txt", work / "wheels" / "requirements.txt", "meta"))


def gather_converter(spec: BundleSpec, got: Gathered, log) -> None:
    if not spec.tools.converter:
        return
    got.converter = converter = tools.converter(log=log)
    got.files += [(f"tools/{converter.name}/{p.relative_to(converter)}", p, "tool")
                  for p in sorted(converter.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    got.tools["llama.cpp-converter"] = {"version": converter.name.split("-", 1)[1], "dir": converter.name}


def gather_env(spec: BundleSpec, work: Path, got: Gathered, log, base: dict | None) -> None:
    got.env = {"mode": spec.env.mode,
               "unpacked_size": wheels.unpacked_size(got.wheels) if spec.env.mode == "wheelhouse" else 0}
    if spec.env.mode != "conda":
        return
    digest = envmod.prefix_digest(spec.env.prefix)
    old = (base or {}).get("env", {})
    if old.get("prefix_digest") == digest:  # unchanged env: a delta reuses the site's copy (packing is not
        log("conda env unchanged since the base bundle: not packed again")  # byte-reproducible)
        got.env.update({k: old[k] for k in ("path", "sha256", "unpacked_size", "prefix_digest")})
        got.files.insert(0, ("env/env.tar.gz", ("base", old["sha256"], base["blob_sizes"][old["sha256"]]), "env"))
        return
    log(f"conda-pack {spec.env.prefix}")
    archive = envmod.pack_conda(spec.env.prefix, work / "env.tar.gz")
    got.env.update(path="env/env.tar.gz", sha256=sha256_file(archive), prefix_digest=digest,
                   unpacked_size=envmod.unpacked_bound(spec.env.prefix))
    got.files.insert(0, ("env/env.tar.gz", archive, "env"))


def gather(spec: BundleSpec, work: Path, log=step, base: dict | None = None, origins: list | None = None) -> dict:
    """Stage everything; returns manifest sections and a list of (path, source, kind) logical files.
    `origins`: where each spec model comes from (bundler.models.locate); located here when not given."""
    got = Gathered()
    if origins is None:
        hub = Hub(spec.hub)
        origins = [modelmod.locate(m, hub) for m in spec.models]
    gather_models(spec, work, got, log, origins)
    gather_datasets(spec, got)
    gather_wheels(spec, work, got, log)
    gather_converter(spec, got, log)
    gather_env(spec, work, got, log, base)
    rehearsal_facts = None
    if spec.rehearsal and got.staged:
        rehearsal_facts = rehearsal.rehearse(got.staged, work / "hf-cache", got.converter, log=log)
    from .appliance import manifest_section

    return {"files": got.files, "models": got.models, "env": got.env, "tools": got.tools, "pins": got.pins,
            "appliance": manifest_section() if spec.appliance else None,
            "wheels": [{"name": w.name, "version": w.version, "filename": w.path.name, "sha256": w.sha256,
                        "purl": w.purl, "tags": w.tags} for w in got.wheels],
            "rehearsal": rehearsal_facts}


def create_bundle(spec: BundleSpec, out: Path, *, key: Path | None = None, unsigned: bool = False,
                  since: Path | None = None, max_chunk: int = DEFAULT_MAX_CHUNK, log=step, lock: Path | None = None,
                  update: bool = False, plan: bool = True) -> Path:
    """Build the bundle for `spec` into directory `out` (replaced as a whole). Returns `out`.

    Hub models are pinned first (`lock`: the spec's lock file, whose commits are reused unless `update`), then the
    plan is printed and the output's disk checked, then everything is gathered, packed and signed; the lock file
    is written only once the bundle exists."""
    out = Path(out).resolve()
    started = time.time()
    secret = None
    if not unsigned:
        secret = minisign.read_secret_key(key or default_secret_key())
    base = _read_base(since) if since else None
    hub = Hub(spec.hub)
    pins = read_lock(lock)
    origins = [modelmod.locate(m, hub, pins, update) for m in spec.models]
    if plan:
        from .plan import check_space, make_plan, render

        the_plan = make_plan(spec, origins, hub, max_chunk, log)
        print(render(the_plan), flush=True)
        check_space(the_plan, out, the_plan.total("wheel") + the_plan.total("env"))
    work = Path(tempfile.mkdtemp(prefix=".airlock-bundle-work-", dir=out.parent if out.parent.is_dir() else None))
    try:
        got = gather(spec, work, log, base, origins)
        with staged_dir(out) as stage:
            manifest = write_bundle(stage, spec, got, base, secret, max_chunk, log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if lock is not None and got["pins"] and write_lock(lock, got["pins"]):
        log(f"pinned {len(got['pins'])} hub model(s) in {lock}")
    summary(out, manifest, time.time() - started)
    return out


def _read_base(since: Path) -> dict:
    """The earlier bundle a delta leaves out: its MANIFEST.json (a file, or the bundle directory holding it)."""
    import hashlib

    from installer.manifest import parse_manifest

    since = Path(since)
    path = since / MANIFEST if since.is_dir() else since
    if not path.is_file():
        raise AirlockError("no MANIFEST.json there", where=f"--since {since}", fix="give the earlier bundle's "
                           "MANIFEST.json (or its directory)")
    raw = path.read_bytes()
    m = parse_manifest(raw, hashlib.sha256(raw).hexdigest())
    return {"name": m.name, "version": m.version, "manifest_sha256": m.sha256, "blobs": set(m.blobs),
            "blob_sizes": {sha: b.size for sha, b in m.blobs.items()}, "env": m.raw["env"]}


def write_bundle(stage: Path, spec: BundleSpec, got: dict, base: dict | None, secret, max_chunk: int, log) -> dict:
    import hashlib

    check_paths([path for path, _, _ in got["files"]], "bundle: the files it would carry")  # the installer's rule
    for m in got["models"]:  # the names the manifest lists about a model are read by the same rule
        check_paths([*m["skipped"], *m["pickle_weights"], *m["remote_code"]], f"bundle: model {m['repo_id']}")
    entries, sources = [], {}
    for path, source, kind in got["files"]:
        if isinstance(source, tuple):  # ("base", sha256, size): content the site already has
            _, sha, size = source
        else:
            sha, size = sha256_file(source), Path(source).stat().st_size
        entries.append({"path": path, "size": size, "sha256": sha, "kind": kind, "type": "file"})
        sources.setdefault(sha, (size, source))
    if base and base["name"] != spec.name:
        raise AirlockError(f"--since names bundle {base['name']!r}, this one is {spec.name!r}", where="--since",
                           fix="a delta must be against an earlier version of the same bundle")
    in_base = set(base["blobs"]) if base else set()
    to_pack = [(sha, size, src) for sha, (size, src) in sources.items()
               if sha not in in_base and not isinstance(src, tuple)]
    log(f"packing {len(to_pack)} blob(s), {sum(s for _, s, _ in to_pack) / 2**20:.1f} MiB"
        + (f" ({len(sources) - len(to_pack)} already at the site)" if base else ""))
    writer = pack.ChunkWriter(stage, max_chunk)
    with bar("packing", sum(s for _, s, _ in to_pack)) as advance:
        offsets = pack.write_payload(writer, to_pack, advance)
    chunks = writer.close()
    # The installer goes in before the manifest so the signed manifest names its hashes: install.sh checks them
    # (with minisign) before it runs anything from the bundle.
    shutil.copyfile(INSTALL_SH_SOURCE, stage / INSTALL_SH)
    (stage / INSTALL_SH).chmod(0o755)
    from .pyz import build_pyz

    build_pyz(stage / INSTALLER_PYZ)
    manifest = {
        "format": FORMAT, "name": spec.name, "version": spec.version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tool": f"airlock {__version__}",
        "target": to_dict(spec.target),
        "base": {k: base[k] for k in ("name", "version", "manifest_sha256")} if base else None,
        "env": got["env"], "models": got["models"], "wheels": got["wheels"], "tools": got["tools"],
        "appliance": got["appliance"], "rehearsal": got["rehearsal"], "signed": secret is not None,
        "payload_size": writer.pos, "max_chunk": max_chunk,
        "chunks": chunks,
        "blobs": {sha: {"size": size, "offset": offsets.get(sha)} for sha, (size, _) in sorted(sources.items())},
        "files": entries,
        "installer": {n: sha256_file(stage / n) for n in (INSTALL_SH, INSTALLER_PYZ)},
        "host_need": install_need(sum(s for _, s, _ in to_pack), got["env"],
                                  [src for _, src, kind in got["files"] if kind == "wheel"]),
    }
    raw = (json.dumps(manifest, indent=1, sort_keys=False) + "\n").encode()
    (stage / MANIFEST).write_bytes(raw)
    manifest_sha = hashlib.sha256(raw).hexdigest()
    key_id = minisign.PublicKey(secret.key_id, secret.public).id_hex if secret is not None else None
    sbom.write_sbom(stage / SBOM, manifest)
    (stage / README).write_text(readme.render(manifest, key_id))
    # The signed root: every file above and every chunk, then bundle.env (which gives each of their sizes).
    hashes = {name: sha256_file(stage / name) for name in ROOT_FILES if name != ENV_INFO}
    hashes.update({c["name"]: c["sha256"] for c in chunks})
    sizes = {name: (stage / name).stat().st_size for name in ROOT_FILES if name != ENV_INFO}
    sizes.update({c["name"]: c["size"] for c in chunks})
    order = list(ROOT_FILES) + [c["name"] for c in chunks]
    (stage / ENV_INFO).write_text(env_info(manifest, manifest_sha, [(n, sizes[n]) for n in order if n != ENV_INFO]))
    hashes[ENV_INFO] = sha256_file(stage / ENV_INFO)
    sums = "".join(f"{hashes[name]}  {name}\n" for name in order).encode()
    (stage / SUMS).write_bytes(sums)
    if secret is not None:
        trusted = f"timestamp:{int(time.time())} file:{SUMS} bundle:{spec.name} {spec.version}"
        (stage / SIGNATURE).write_text(minisign.sign(sums, secret, trusted))
    return manifest


def env_info(manifest: dict, manifest_sha: str, sizes: list[tuple[str, int]]) -> str:
    """bundle.env: what install.sh needs before Python exists, in the exact line form FORMAT.md gives."""
    env = manifest["env"]
    blob = manifest["blobs"].get(env.get("sha256") or "", {}) if env["mode"] == "conda" else {}
    target = manifest["target"]
    info = {"FORMAT": FORMAT, "NAME": manifest["name"], "VERSION": manifest["version"],
            "MANIFEST_SHA256": manifest_sha, "TARGET_ARCH": target["arch"], "TARGET_PYTHON": target["python"],
            "TARGET_GLIBC": target["glibc"], "TARGET_ACCELERATOR": target["accelerator"],
            "ENV_MODE": env["mode"],
            "ENV_ID": env_id(env["mode"], manifest["target"]["python"], env.get("sha256"),
                             [w["sha256"] for w in manifest["wheels"]]),
            "ENV_SHA256": env.get("sha256") or "", "ENV_SIZE": blob.get("size", 0),
            "ENV_OFFSET": "" if blob.get("offset") is None else blob["offset"],
            "ENV_UNPACKED": env.get("unpacked_size", 0), "PAYLOAD_SIZE": manifest["payload_size"],
            "NEED_BYTES": manifest["host_need"]}
    return "".join(f"{k}={v}\n" for k, v in info.items()) + "".join(f"SIZE={n} {name}\n" for name, n in sizes)


def default_secret_key() -> Path:
    from appliance.paths import home

    return home() / "keys" / "airlock.key"


def summary(out: Path, manifest: dict, seconds: float) -> None:
    """A table of what went in, by kind, with sizes (rich when on a terminal, plain lines otherwise)."""
    rows: dict[str, list[int]] = {}
    for f in manifest["files"]:
        r = rows.setdefault(f["kind"], [0, 0])
        r[0] += 1
        r[1] += f["size"]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for kind, (n, size) in rows.items():
            print(f"{kind:<8} {n:>6} files {size / 2**20:>10.1f} MiB")
        return
    table = Table(title=f"{manifest['name']} {manifest['version']} -> {out}")
    for col in ("kind", "files", "MiB"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for kind, (n, size) in sorted(rows.items()):
        table.add_row(kind, str(n), f"{size / 2**20:.1f}")
    table.add_row("payload", f"{len(manifest['chunks'])} chunks", f"{manifest['payload_size'] / 2**20:.1f}")
    table.caption = f"{'signed' if manifest['signed'] else 'UNSIGNED'}; built in {seconds:.1f} s"
    Console().print(table)
