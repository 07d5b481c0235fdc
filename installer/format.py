"""The bundle format's names and line rules, shared by the bundler (writes) and the installer (reads).
See bundler/FORMAT.md. Only the standard library here: this module runs before any stack is installed.

The two small text files every stage reads, SHA256SUMS (the signed root) and bundle.env (what install.sh needs),
have one exact pattern per line. install.sh checks them with the same patterns (grep -E on the same bytes), and
both sides refuse any byte outside printable ASCII and '\\n', so sh's `read` and Python can never see different
values in the same file.
"""

import re

from appliance.errors import AirlockError

FORMAT = "airlock-bundle/3"
MANIFEST = "MANIFEST.json"
SUMS = "SHA256SUMS"  # the signed root: '<sha256>  <name>' for every other file of the bundle
SIGNATURE = "SHA256SUMS.minisig"
SBOM = "sbom.cdx.json"
README = "README.txt"
INSTALL_SH = "install.sh"
INSTALLER_PYZ = "airlock-installer.pyz"
ENV_INFO = "bundle.env"  # what install.sh needs before any Python exists; bound to SUMS like every file
CHUNKS_DIR = "chunks"
ROOT_FILES = (INSTALL_SH, INSTALLER_PYZ, ENV_INFO, MANIFEST, SBOM, README)  # SUMS lists these first, in this order
DEFAULT_MAX_CHUNK = 4095 * 1024 * 1024  # under 4 GiB: FAT32's limit is 4 GiB - 1 byte, ISO 9660 the same

# Size caps on what is read before it is authenticated (or to bound work on what is).
MAX_SUMS = 1 << 20
MAX_ENV_INFO = 1 << 20
MAX_SIGNATURE = 4096
MAX_MANIFEST = 64 << 20

# The patterns. install.sh spells the same ones out for grep -E; tests hold the two to the same verdicts.
HEX64 = r"[0-9a-f]{64}"
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
# A normalized PEP 440 version (what packaging.version prints back): no leading zeros, no '-', no upper case.
N = r"(0|[1-9][0-9]*)"
VERSION = (rf"([1-9][0-9]*!)?{N}(\.{N})*((a|b|rc){N})?(\.post{N})?(\.dev{N})?(\+[a-z0-9]+(\.[a-z0-9]+)*)?")
NUMBER = r"(0|[1-9][0-9]{0,15})"
FILE_NAME = r"(install\.sh|airlock-installer\.pyz|bundle\.env|MANIFEST\.json|sbom\.cdx\.json|README\.txt" \
            rf"|chunks/[0-9]{{4,6}}-{HEX64}\.part)"
SUMS_LINE = re.compile(rf"({HEX64})  {FILE_NAME}")
ENV_KEYS = (  # bundle.env: these lines, in this order, then one 'SIZE=<bytes> <name>' per SUMS entry but itself
    ("FORMAT", re.escape(FORMAT)),
    ("NAME", NAME),
    ("VERSION", VERSION),
    ("MANIFEST_SHA256", HEX64),
    ("TARGET_ARCH", r"x86_64|aarch64"),
    ("TARGET_PYTHON", r"3\.[0-9]{1,2}"),
    ("TARGET_GLIBC", r"2\.[0-9]{1,2}"),
    ("TARGET_ACCELERATOR", r"cpu|cuda1[0-9](\.[0-9]{1,2})?"),
    ("ENV_MODE", r"conda|wheelhouse|none"),
    ("ENV_ID", r"|[0-9a-f]{16}"),
    ("ENV_SHA256", rf"|{HEX64}"),
    ("ENV_SIZE", NUMBER),
    ("ENV_OFFSET", rf"|{NUMBER}"),
    ("ENV_UNPACKED", NUMBER),
    ("PAYLOAD_SIZE", NUMBER),
    ("NEED_BYTES", NUMBER),  # the disk the install takes at its peak (store + env), from the bundler's plan
)
SIZE_LINE = re.compile(rf"SIZE={NUMBER} {FILE_NAME}")
VERSION_RE = re.compile(VERSION)
NAME_RE = re.compile(NAME)
HEX64_RE = re.compile(HEX64)
BLOB_MEMBER = re.compile(rf"blobs/({HEX64})")


MAX_PATH_PARTS = 64  # directory levels a bundle path may have (bounds the work of checking each one)
# Characters no bundle path may hold: controls (Cc), format characters such as bidi overrides and zero-width
# joiners (Cf), line and paragraph separators (Zl, Zp), lone surrogates (Cs), unassigned and private-use code points.
REFUSED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Cn", "Co"}


def check_path_name(path: str, where: str) -> str:
    """The one rule for a bundle path's characters, applied by the bundler before it writes a manifest and by the
    installer when it reads one: valid UTF-8, NFC-normalized (so two spellings cannot name one file), no control,
    format (bidi), separator or surrogate character, at most MAX_PATH_PARTS levels."""
    import unicodedata

    fix = "rename the file (plain, NFC-normalized names) and rebuild the bundle; do not install this one"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise AirlockError(f"path {path.encode('utf-8', 'backslashreplace').decode()!r} is not valid UTF-8 (a lone "
                           "surrogate)", where=where, fix=fix, code="bundle.path_name") from None
    if bad := next((c for c in path if unicodedata.category(c) in REFUSED_CATEGORIES), None):
        raise AirlockError(f"path {path!r} holds {unicodedata.name(bad, 'an unnamed character')} (U+{ord(bad):04X}), "
                           "a control, bidi, separator or unassigned character", where=where, fix=fix,
                           code="bundle.path_name")
    if unicodedata.normalize("NFC", path) != path:
        raise AirlockError(f"path {path!r} is not NFC-normalized (another spelling of the same name)", where=where,
                           fix=fix, code="bundle.path_name")
    if path.count("/") >= MAX_PATH_PARTS:
        raise AirlockError(f"path {path[:80]!r}... is {path.count('/') + 1} levels deep (at most {MAX_PATH_PARTS})",
                           where=where, fix=fix, code="bundle.path_name")
    return path


def check_paths(paths, where: str) -> None:
    """check_path_name on every path, and no two that differ only in case (one file on a case-insensitive
    filesystem, or on media formatted FAT/exFAT)."""
    folded: dict[str, str] = {}
    for path in paths:
        check_path_name(path, where)
        if (other := folded.setdefault(path.casefold(), path)) != path:
            raise AirlockError(f"paths {other!r} and {path!r} differ only in case", where=where,
                               fix="rename one of them and rebuild the bundle; do not install this one",
                               code="bundle.path_name")


def chunk_name(index: int, sha256: str) -> str:
    return f"{CHUNKS_DIR}/{index:04d}-{sha256}.part"


def check_text(raw: bytes, where: str, *, allow_tab: bool = False) -> list[str]:
    """The lines of a small text file that may hold only printable ASCII ('\\t' where allowed) and ends with
    '\\n'. Anything else (CR, NUL, other controls, non-ASCII, no final newline) is refused, naming the byte."""
    allowed = set(range(0x20, 0x7F)) | {0x0A} | ({0x09} if allow_tab else set())
    for i, byte in enumerate(raw):
        if byte not in allowed:
            line = raw[:i].count(b"\n") + 1
            raise AirlockError(f"byte 0x{byte:02x} at line {line} is not allowed (printable ASCII and newlines only)",
                               where=where, fix="the file was altered or damaged: do not install this bundle")
    if not raw.endswith(b"\n"):
        raise AirlockError("the file does not end with a newline (truncated?)", where=where,
                           fix="copy the bundle again from the media")
    return raw[:-1].decode("ascii").split("\n")


def _bad_line(where: str, n: int, line: str, want: str) -> AirlockError:
    return AirlockError(f"line {n} is not {want}: {line[:120]!r}", where=where,
                        fix="the file was altered or damaged: do not install this bundle")


def parse_sums(raw: bytes, where: str = SUMS) -> list[tuple[str, str]]:
    """[(sha256, name)] in file order: the six bundle files in their fixed order, then the chunks numbered from
    0000 in order, each named by its own sha256."""
    if len(raw) > MAX_SUMS:
        raise AirlockError(f"{len(raw)} bytes is too large for a checksum list", where=where, fix="do not install it")
    entries = []
    for n, line in enumerate(check_text(raw, where), 1):
        match = SUMS_LINE.fullmatch(line)
        if not match:
            raise _bad_line(where, n, line, "'<sha256>  <bundle file>'")
        entries.append((match[1], match[2]))
    if tuple(name for _, name in entries[:len(ROOT_FILES)]) != ROOT_FILES:
        raise AirlockError(f"the first lines must list {', '.join(ROOT_FILES)} in that order", where=where,
                           fix="the file was altered or damaged: do not install this bundle")
    for i, (sha, name) in enumerate(entries[len(ROOT_FILES):]):
        if name != chunk_name(i, sha):
            raise AirlockError(f"{name}: expected {chunk_name(i, sha)} (chunks are numbered in order and named by "
                               "their sha256)", where=where, fix="the file was altered or damaged")
    return entries


def parse_env_info(raw: bytes, sums: list[tuple[str, str]], where: str = ENV_INFO) -> dict:
    """bundle.env as {KEY: value} plus 'SIZE': {name: bytes} for every file SUMS lists except bundle.env."""
    if len(raw) > MAX_ENV_INFO:
        raise AirlockError(f"{len(raw)} bytes is too large", where=where, fix="do not install this bundle")
    lines = check_text(raw, where)
    info: dict = {}
    for n, (key, pattern) in enumerate(ENV_KEYS, 1):
        line = lines[n - 1] if n <= len(lines) else ""
        if not re.fullmatch(f"{key}=({pattern})", line):
            raise _bad_line(where, n, line, f"'{key}=...' in its exact form")
        info[key] = line.split("=", 1)[1]
    sized = [name for _, name in sums if name != ENV_INFO]
    size_lines = lines[len(ENV_KEYS):]
    if len(size_lines) != len(sized):
        raise AirlockError(f"{len(size_lines)} SIZE lines for {len(sized)} files", where=where,
                           fix="the file was altered or damaged: do not install this bundle")
    info["SIZE"] = {}
    for n, (line, name) in enumerate(zip(size_lines, sized), len(ENV_KEYS) + 1):
        if not SIZE_LINE.fullmatch(line) or line.split(" ", 1)[1] != name:
            raise _bad_line(where, n, line, f"'SIZE=<bytes> {name}'")
        info["SIZE"][name] = int(line[len("SIZE="):].split(" ", 1)[0])
    return info


def env_id(mode: str, python: str, env_sha256: str | None, wheel_sha256s) -> str:
    """Which env a release runs in: releases with the same env content share one (a model or data update installs
    in seconds, and a rollback finds its env). Empty for mode none."""
    if mode == "none":
        return ""
    import hashlib

    text = f"{mode}\n{python}\n{env_sha256 or ''}\n" + "".join(f"{sha}\n" for sha in sorted(wheel_sha256s))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def release_id(name: str, version: str, manifest_sha256: str) -> str:
    """<name>-<version>-<12 hex>: unambiguous because a normalized version has no '-'."""
    return f"{name}-{version}-{manifest_sha256[:12]}"


def parse_version(version: str):
    """A PEP 440 Version (packaging's; pip's vendored copy in a bare venv), for rollback protection."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # a fresh venv has pip, and pip carries packaging
        from pip._vendor.packaging.version import InvalidVersion, Version
    try:
        parsed = Version(version)
    except InvalidVersion:
        parsed = None
    if parsed is None or str(parsed) != version or not VERSION_RE.fullmatch(version):
        hint = f"write it as {str(parsed)!r}" if parsed is not None else "e.g. 1.0, 2.0.post1, 2024.11.1"
        raise AirlockError(f"version {version!r} is not a normalized PEP 440 version", where="version", fix=hint)
    return parsed
