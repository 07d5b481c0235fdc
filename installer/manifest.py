"""The typed manifest: MANIFEST.json, parsed only after its bytes matched the signed SHA256SUMS, then checked field
by field (types, patterns, bounds; unknown or duplicate keys refused) and across fields (every path inside its
section, every file backed by a blob, chunks contiguous, blobs inside the payload and apart). Nothing downstream
trusts the JSON's shape: the verifier, the installer and `bundle inspect` all read this one `Manifest`.
"""

import json
import re
import unicodedata
from dataclasses import dataclass

from appliance.errors import AirlockError

from .format import (FORMAT, HEX64_RE, INSTALL_SH, INSTALLER_PYZ, MAX_MANIFEST, NAME, NAME_RE, check_path_name,
                     check_paths,
                     chunk_name, env_id, parse_version, release_id)

KINDS = ("model", "wheel", "env", "tool", "dataset", "meta")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
ENV_ARCHIVE = "env/env.tar.gz"
REQUIREMENTS = "wheels/requirements.txt"
MAX_SIZE = 1 << 50  # 1 PiB: more than any bundle, less than anything that overflows
MAX_ITEMS = 1_000_000
REPO_ID = re.compile(rf"{NAME}/{NAME}")
REVISION = re.compile(r"[0-9a-f]{40}")
GIT_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")
WHEEL_FILE = re.compile(r"[A-Za-z0-9_.]+-[A-Za-z0-9_.!+]+(-[0-9][A-Za-z0-9_.]*)?-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+"
                        r"-[A-Za-z0-9_.]+\.whl")
ACCELERATOR = re.compile(r"cpu|cuda[0-9]{2}(\.[0-9]{1,2})?")
FIX = "the bundle is malformed: do not install it; rebuild it with this Airlock version"


@dataclass(frozen=True)
class Chunk:
    name: str
    offset: int
    size: int
    sha256: str


@dataclass(frozen=True)
class Blob:
    size: int
    offset: int | None  # where its data starts in the payload; None when a delta leaves it to the base


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str
    kind: str


@dataclass(frozen=True)
class ModelEntry:
    repo_id: str
    revision: str
    prefix: str
    source: str
    license: str
    pickle_weights: tuple[str, ...]
    remote_code: tuple[str, ...]
    skipped: tuple[str, ...]
    ref: str | None = None  # the branch, tag or commit the spec asked for; `revision` is the commit it pinned


@dataclass(frozen=True)
class WheelEntry:
    name: str
    version: str
    filename: str
    sha256: str
    purl: str
    tags: str


@dataclass(frozen=True)
class EnvEntry:
    mode: str  # conda | wheelhouse | none
    path: str | None
    sha256: str | None
    unpacked_size: int
    prefix_digest: str | None


@dataclass(frozen=True)
class ToolEntry:
    version: str
    dir: str | None
    cmake_args: str | None


@dataclass(frozen=True)
class Target:
    os: str
    arch: str
    python: str
    glibc: str
    accelerator: str
    cuda_architectures: str


@dataclass(frozen=True)
class Base:
    name: str
    version: str
    manifest_sha256: str


@dataclass(frozen=True)
class Appliance:
    """Present when the bundle carries Airlock itself: its version and the engines the smoke test imports."""

    version: str
    engines: tuple[str, ...]


@dataclass
class Manifest:
    name: str
    version: str
    created: str
    tool: str
    target: Target
    base: Base | None
    env: EnvEntry
    models: list[ModelEntry]
    wheels: list[WheelEntry]
    tools: dict[str, ToolEntry]
    appliance: Appliance | None
    rehearsal: dict | None
    signed: bool
    payload_size: int
    max_chunk: int
    chunks: list[Chunk]
    blobs: dict[str, Blob]
    files: list[FileEntry]
    installer: dict[str, str]
    host_need: int  # bytes the install takes on the host at its peak (store + env), from the bundler's plan
    sha256: str  # of the MANIFEST.json bytes
    raw: dict  # the checked JSON object, for display and the SBOM

    @property
    def release(self) -> str:
        return release_id(self.name, self.version, self.sha256)

    @property
    def env_id(self) -> str:
        return env_id(self.env.mode, self.target.python, self.env.sha256, [w.sha256 for w in self.wheels])

    @property
    def env_dir_name(self) -> str:
        """envs/<this>: named by the env's content, shared by releases with the same content."""
        return f"{self.name}-{self.env_id}"

    def packed_size(self) -> int:
        """Bytes of blobs this bundle itself carries (a delta leaves the rest to its base)."""
        return sum(b.size for b in self.blobs.values() if b.offset is not None)


# ------------------------------------------------------------------ field checkers
def _fail(where: str, message: str) -> AirlockError:
    return AirlockError(message, where=f"MANIFEST.json: {where}", fix=FIX)


def _obj(value, where: str, keys: dict, optional: tuple = ()) -> dict:
    """Check a JSON object against {key: checker}: no unknown key, every non-optional key present."""
    if not isinstance(value, dict):
        raise _fail(where, f"expected an object, got {type(value).__name__}")
    if unknown := sorted(set(value) - set(keys)):
        raise _fail(where, f"unknown key {unknown[0]!r} (this installer reads {FORMAT})")
    out = {}
    for key, check in keys.items():
        if key not in value:
            if key in optional:
                out[key] = None
                continue
            raise _fail(where, f"missing key {key!r}")
        out[key] = check(value[key], f"{where}.{key}")
    return out


def _str(pattern: re.Pattern | str | None = None, max_len: int = 4096):
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern

    def check(value, where):
        if not isinstance(value, str) or len(value) > max_len:
            raise _fail(where, f"expected a string of at most {max_len} characters")
        if regex is not None and not regex.fullmatch(value):
            raise _fail(where, f"{value[:80]!r} does not match {regex.pattern}")
        if any(unicodedata.category(c) == "Cc" for c in value):
            raise _fail(where, "control characters are not allowed")
        return value
    return check


def _int(lo: int = 0, hi: int = MAX_SIZE):
    def check(value, where):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise _fail(where, f"expected a whole number from {lo} to {hi}")
        return value
    return check


def _bool(value, where):
    if not isinstance(value, bool):
        raise _fail(where, "expected true or false")
    return value


def _opt(check):
    return lambda value, where: None if value is None else check(value, where)


def _list(check, max_items: int = MAX_ITEMS):
    def run(value, where):
        if not isinstance(value, list) or len(value) > max_items:
            raise _fail(where, f"expected a list of at most {max_items} items")
        return [check(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return run


def _plain_json(value, where, depth: int = 0):
    """Free-form facts (the rehearsal report): plain JSON, shallow, strings bounded."""
    if depth > 4:
        raise _fail(where, "nested too deeply")
    if isinstance(value, dict):
        return {_str(max_len=256)(k, where): _plain_json(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_json(v, where, depth + 1) for v in value[:1000]]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _str(max_len=4096)(value, where)


def safe_relpath(path, where: str) -> str:
    """A relative POSIX path that stays inside its root: no absolute path, no '..', '.', empty part, backslash or
    control character."""
    if not isinstance(path, str) or not path or len(path) > 4096:
        raise AirlockError(f"path {path!r} is empty or not a string", where=where, fix=FIX)
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise AirlockError(f"absolute path {path!r} refused", where=where, fix="a bundle may only hold relative paths")
    if "\\" in path or any(unicodedata.category(c) == "Cc" for c in path):
        raise AirlockError(f"path {path!r} has a backslash or a control character", where=where, fix=FIX)
    check_path_name(path, where)
    parts = path.split("/")
    if ".." in parts:
        raise AirlockError(f"path {path!r} climbs out with '..'", where=where,
                           fix="refusing a path-traversal attempt; do not install this bundle")
    if any(p in ("", ".") or len(p) > 255 for p in parts):
        raise AirlockError(f"path {path!r} has empty, '.' or over-long parts", where=where, fix=FIX)
    return path


def _path(value, where):
    return safe_relpath(value, f"MANIFEST.json: {where}")


def _names(value, where):
    return tuple(_list(_path, 100_000)(value, where))


# ------------------------------------------------------------------ parsing
def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise AirlockError(f"key {dup!r} appears twice in one object", where="MANIFEST.json",
                           fix="refusing an ambiguous manifest: do not install this bundle")
    return dict(pairs)


def _reject_constant(name):
    raise AirlockError(f"{name} is not JSON", where="MANIFEST.json", fix=FIX)


def _mapping(key_check, value_check):
    """A JSON object whose keys are data (blob digests, tool names), each value checked."""
    def check(value, where):
        if not isinstance(value, dict) or len(value) > MAX_ITEMS:
            raise _fail(where, "expected an object")
        return {key_check(k, f"{where} key"): value_check(v, f"{where}.{k[:16]}") for k, v in value.items()}
    return check


def _record(cls, keys: dict, optional: tuple = (), ignore: tuple = ()):
    """A checker that builds `cls` from a JSON object with exactly `keys` (`ignore`d keys checked, not kept)."""
    def check(value, where):
        fields = _obj(value, where, keys, optional)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items() if k not in ignore})
    return check


def parse_manifest(raw: bytes, sha256: str) -> Manifest:
    """The Manifest of `raw`, whose sha256 the caller has already matched against the signed root."""
    if len(raw) > MAX_MANIFEST:
        raise AirlockError(f"MANIFEST.json is {len(raw)} bytes (limit {MAX_MANIFEST})", where="MANIFEST.json", fix=FIX)
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise AirlockError(f"MANIFEST.json is not valid JSON: {reason}", where="MANIFEST.json", fix=FIX) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise AirlockError(f"unknown bundle format {got!r}", where="MANIFEST.json",
                           fix=f"this installer reads {FORMAT}; rebuild the bundle with this Airlock version")
    hexs, name, version = _str(HEX64_RE), _str(NAME_RE), _str(max_len=64)
    top = _obj(data, "manifest", {
        "format": _str(), "name": name, "version": version, "created": _str(max_len=64), "tool": _str(max_len=256),
        "target": _record(Target, {"os": _str("linux"), "arch": _str("x86_64|aarch64"),
                                   "python": _str(r"3\.[0-9]{1,2}"), "glibc": _str(r"2\.[0-9]{1,2}"),
                                   "accelerator": _str(ACCELERATOR),
                                   "cuda_architectures": _str(r"([0-9]{2,3}(;[0-9]{2,3})*)?")}),
        "base": _opt(_record(Base, {"name": name, "version": version, "manifest_sha256": hexs})),
        "env": _record(EnvEntry, {"mode": _str("conda|wheelhouse|none"), "path": _opt(_path),
                                  "sha256": _opt(hexs), "unpacked_size": _int(), "prefix_digest": _opt(hexs)},
                       optional=("path", "sha256", "prefix_digest")),
        "models": _list(_record(ModelEntry, {
            "repo_id": _str(REPO_ID), "revision": _str(REVISION), "prefix": _path, "source": _str(),
            "license": _str(max_len=256), "pickle_weights": _names, "remote_code": _names, "skipped": _names,
            "ref": _str(GIT_REF)}, optional=("ref",)), 10_000),
        "wheels": _list(_record(WheelEntry, {
            "name": _str(r"[a-z0-9][a-z0-9._-]{0,99}"), "version": _str(max_len=64), "filename": _str(WHEEL_FILE),
            "sha256": hexs, "purl": _str(max_len=256),
            "tags": _str(r"[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+")}), 10_000),
        "tools": _mapping(name, _record(ToolEntry, {"version": _str(max_len=64), "dir": _opt(name),
                                                    "cmake_args": _opt(_str(max_len=1024))},
                                        optional=("dir", "cmake_args"))),
        "appliance": _opt(_record(Appliance, {"version": _str(max_len=64),
                                              "engines": _list(_str(r"[a-z_][a-z0-9_]{0,63}"), 64)})),
        "rehearsal": _opt(_plain_json), "signed": _bool, "payload_size": _int(), "max_chunk": _int(1024),
        "chunks": _list(_record(Chunk, {"name": _str(max_len=200), "offset": _int(), "size": _int(1),
                                        "sha256": hexs})),
        "blobs": _mapping(hexs, _record(Blob, {"size": _int(), "offset": _opt(_int())})),
        "files": _list(_record(FileEntry, {"path": _path, "size": _int(), "sha256": hexs,
                                           "kind": _str("|".join(KINDS)), "type": _str("file")},
                               optional=("type",), ignore=("type",))),
        "installer": lambda v, w: _obj(v, w, {INSTALL_SH: hexs, INSTALLER_PYZ: hexs}),
        "host_need": _int(),
    }, optional=("appliance",))
    top.pop("format")
    parse_version(top["version"])
    if top["base"]:
        parse_version(top["base"].version)
    m = Manifest(**top, sha256=sha256, raw=data)
    check_manifest(m)
    return m


# ------------------------------------------------------------------ cross-field rules
def check_manifest(m: Manifest) -> None:
    """Rules across fields; each refusal names the entry."""
    _check_files(m)
    _check_chunks_and_blobs(m)
    _check_sections(m)


def _check_files(m: Manifest) -> None:
    seen: set[str] = set()
    dirs: set[str] = set()
    for i, f in enumerate(m.files):
        at = f"files[{i}] {f.path}"
        if f.path in seen:
            raise AirlockError(f"duplicate path {f.path!r}", where=f"MANIFEST.json: {at}",
                               fix="refusing a bundle that names a file twice")
        parents = {"/".join(f.path.split("/")[:k]) for k in range(1, f.path.count("/") + 1)}
        if f.path in dirs or parents & seen:
            raise _fail(at, "a path is both a file and a directory")
        seen.add(f.path)
        dirs |= parents
        blob = m.blobs.get(f.sha256)
        if blob is None or blob.size != f.size:
            raise _fail(at, "no blob of matching sha256 and size")
        allowed = {"model": "models/", "wheel": "wheels/", "tool": "tools/", "dataset": "datasets/",
                   "env": ENV_ARCHIVE, "meta": REQUIREMENTS}[f.kind]
        if not (f.path == allowed if f.kind in ("env", "meta") else f.path.startswith(allowed)):
            raise _fail(at, f"a {f.kind} file must be {'at' if f.kind in ('env', 'meta') else 'under'} {allowed}")
    if unused := set(m.blobs) - {f.sha256 for f in m.files}:
        raise _fail("blobs", f"{len(unused)} blob(s) no file uses")
    check_paths(seen, "MANIFEST.json: files")


def _check_chunks_and_blobs(m: Manifest) -> None:
    offset = 0
    for i, c in enumerate(m.chunks):
        if c.name != chunk_name(i, c.sha256) or c.offset != offset or c.size > m.max_chunk:
            raise _fail(f"chunks[{i}]", "out of order, misnamed or larger than max_chunk")
        offset += c.size
    if offset != m.payload_size:
        raise _fail("chunks", "chunk sizes do not add up to payload_size")
    spans = sorted((b.offset, b.offset + b.size, sha) for sha, b in m.blobs.items() if b.offset is not None)
    end = 0
    for start, stop, sha in spans:
        if start < end + 512 or stop > m.payload_size:  # each blob's data follows its own 512-byte tar header
            raise _fail(f"blobs.{sha[:12]}", "overlaps another blob or lies outside the payload")
        end = stop
    if m.base is None and any(b.offset is None for b in m.blobs.values()):
        raise _fail("blobs", "a blob without an offset, but this is not a delta")
    if m.base is not None and m.base.name != m.name:
        raise _fail("base", f"a delta of {m.name} cannot be against {m.base.name}")


def _check_sections(m: Manifest) -> None:
    by_path = {f.path: f for f in m.files}
    prefixes = []
    for i, model in enumerate(m.models):
        if model.prefix != f"models/{model.repo_id}":
            raise _fail(f"models[{i}].prefix", f"must be models/{model.repo_id}")
        owned = {p[len(model.prefix) + 1:] for p in by_path if p.startswith(model.prefix + "/")}
        for name in model.pickle_weights + model.remote_code:
            if name not in owned:
                raise _fail(f"models[{i}]", f"lists {name!r}, which the bundle does not carry")
        if undeclared := sorted(n for n in owned if n.endswith(PICKLE_SUFFIXES) and n not in model.pickle_weights):
            raise _fail(f"models[{i}]", f"pickle weights {undeclared[0]!r} are not declared as pickle_weights")
        prefixes.append(model.prefix + "/")
    for f in m.files:
        if f.kind == "model" and not f.path.startswith(tuple(prefixes) or ("\0",)):
            raise _fail(f.path, "a model file outside every listed model")
    wheel_files = {f"wheels/{w.filename}": w for w in m.wheels}
    for path, w in wheel_files.items():
        if path not in by_path or by_path[path].sha256 != w.sha256:
            raise _fail(f"wheels {w.filename}", "not carried, or carried with another sha256")
    for f in m.files:
        if f.kind == "wheel" and f.path not in wheel_files:
            raise _fail(f.path, "a wheel file that the wheels list does not name")
    env = m.env
    if env.mode == "conda":
        archive = by_path.get(ENV_ARCHIVE)
        if env.path != ENV_ARCHIVE or env.sha256 is None or archive is None or archive.sha256 != env.sha256:
            raise _fail("env", f"a conda env must be carried as {ENV_ARCHIVE} with the sha256 env names")
    elif env.path is not None or env.sha256 is not None or ENV_ARCHIVE in by_path:
        raise _fail("env", f"env mode {env.mode} carries no env archive")
    if env.mode == "wheelhouse" and not m.wheels:
        raise _fail("env", "a wheelhouse env needs wheels")
    if env.mode == "none" and m.wheels:  # they would go into the installer's own Python, outside the target
        raise _fail("env", "env mode none carries no wheels (nothing may be installed outside the target)")
    for name, tool in m.tools.items():
        if tool.dir and not any(p.startswith(f"tools/{tool.dir}/") for p in by_path):
            raise _fail(f"tools.{name}", f"names dir {tool.dir!r}, which the bundle does not carry")
    if m.appliance is not None and not any(w.name == "airlock" for w in m.wheels):
        raise _fail("appliance", "an appliance bundle must carry Airlock's own wheel")


