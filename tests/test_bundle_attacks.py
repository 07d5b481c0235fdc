"""The bundle's trust chain under attack: every attack runs against `airlock bundle verify`, `airlock bundle install`
and `sh install.sh` with minisign on PATH (the attacks on what is read up to the signature check also with only
openssl, with neither, and with neither plus --insecure-self-verify), each into a target that already holds a good
release.

Each run must be refused with a clear message and no traceback, write nothing outside the target, leave the good
release intact and current, and leave nothing behind (the target is compared file by file; only the audit log
may grow, by 'bundle-refused' records). A hang is a failure: every run has a time limit.

Attack bundles are written by tests/forge.py, which shares no code with the bundler or the installer.
Media-only attacks change files after signing (no key); build-side attacks are signed with the site's key, to
show that the installer's own checks hold even when a build machine or a spec goes wrong (defence in depth).

    .venv/bin/python -m pytest tests/test_bundle_attacks.py -q
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

import forge
from conftest import CAN_UNSHARE

ROOT = Path(__file__).resolve().parents[1]
ROUTES = ("verify", "install", "sh-minisign", "sh-openssl", "sh-neither", "sh-self-verify")
MODEL = "acme/tiny"
REV = "a" * 40


# ------------------------------------------------------------------ the world each attack runs in
@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """Keys, the genuine installer files, a bare venv, PATH variants, and a target holding a good release."""
    from bundler.pyz import build_pyz

    root = tmp_path_factory.mktemp("attack-world")
    keys, attacker = forge.Keys(root / "site-keys"), forge.Keys(root / "attacker-keys")
    genuine = root / "genuine"
    genuine.mkdir()
    shutil.copyfile(ROOT / "installer" / "install.sh", genuine / "install.sh")
    build_pyz(genuine / "airlock-installer.pyz")
    venv = root / "bare-venv"  # the site's Python as stage 2 meets it: no cryptography, no project packages
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], check=True)
    paths = {}
    for variant, hidden in (("minisign", set()), ("openssl", {"minisign"}), ("neither", {"minisign", "openssl"})):
        farm = root / f"path-{variant}"
        farm.mkdir()
        for directory in os.environ.get("PATH", "").split(":"):
            for tool in Path(directory).glob("*") if Path(directory).is_dir() else []:
                if tool.name not in hidden and not (farm / tool.name).exists() and os.access(tool, os.X_OK):
                    (farm / tool.name).symlink_to(tool)
        paths[variant] = str(farm)
    if not shutil.which("minisign"):
        pytest.skip("minisign is not installed (apt-get install minisign)")
    w = {"root": root, "keys": keys, "attacker": attacker, "genuine": genuine, "python": venv / "bin" / "python",
         "paths": paths, "host": root / "host"}
    w["host"].mkdir()
    (w["host"] / "victim").write_text("a host file that no bundle may touch\n")
    good = forge.write(recipe(w, version="1.0"), root / "good-1.0", keys)
    w["target"] = root / "target"
    proc = run_route("install", good, w["target"], w)
    assert proc.returncode == 0, proc.stderr
    w["older"] = forge.write(recipe(w, version="0.9"), root / "good-0.9", keys)
    return w


def recipe(w, **changes) -> forge.Recipe:
    """A good bundle: a dataset, a model, a tool directory; version 1.1 (an upgrade of the installed 1.0)."""
    files = {"datasets/facts.jsonl": ("dataset", b'{"instruction": "q", "output": "a"}\n'),
             f"models/{MODEL}/config.json": ("model", b'{"model_type": "llama"}\n'),
             f"models/{MODEL}/model.safetensors": ("model", os.urandom(3000)),
             "tools/llama.cpp-0/convert.py": ("tool", b"print('convert')\n")}
    base = forge.Recipe(files=files, models=[(MODEL, REV, [])], tools={"converter": "llama.cpp-0"},
                        install_sh=(w["genuine"] / "install.sh").read_bytes(),
                        installer_pyz=(w["genuine"] / "airlock-installer.pyz").read_bytes())
    return replace(base, **changes)


def run_route(route: str, bundle: Path, target: Path, w, extra=()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("AIRLOCK_TRUSTED_KEY", "AIRLOCK_HOME")}
    key = str(w["keys"].public_file)
    if route in ("verify", "install"):
        env["AIRLOCK_HOME"] = str(w["root"] / "operator-home")
        argv = [sys.executable, "-m", "appliance", "bundle", route, str(bundle), "--trusted-key", key]
        if route == "install":
            argv += ["--target", str(target), "--no-smoke", *extra]
    else:
        variant = route.split("-", 1)[1]
        env["PATH"] = w["paths"]["neither" if variant == "self-verify" else variant]
        argv = ["sh", str(w["genuine"] / "install.sh"), "--bundle", str(bundle), "--target", str(target),
                "--trusted-key", key, "--python", str(w["python"]), "--no-smoke", *extra]
        if variant == "self-verify":
            argv.append("--insecure-self-verify")
    if CAN_UNSHARE:
        argv = ["unshare", "-n", *argv]
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{route} hung on {bundle.name} (a hang is a failure)")


def snapshot(root: Path) -> dict:
    """Every path under `root` with its type, mode and content (the audit log left out: it may grow)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if rel == "registry/audit.jsonl":
            continue
        st = p.lstat()
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir", st.st_mode)
        else:
            out[rel] = ("file", st.st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


# ------------------------------------------------------------------ the attacks
@dataclass
class Attack:
    id: str
    make: object  # callable(recipe, w) -> recipe (may set hooks)
    match: str  # what the refusal must say (Python routes; sh too unless `sh` is given)
    sh: str | None = None  # what install.sh says when it refuses by itself
    replaces_installer: bool = False  # the bundle's own code is replaced: --insecure-self-verify cannot help
    extra: tuple = ()
    verify_ok: bool = False  # a well-formed bundle only installing refuses (verify warns)


def _after(fn):
    return lambda r, w: replace(r, after=lambda out: fn(out, w))


def _edit_file(name, change):
    def edit(out, w):
        path = out / name
        path.write_bytes(change(path.read_bytes()))
    return edit


def _chunk(out, index=1) -> Path:
    return sorted((out / "chunks").iterdir())[index]


def _flip(path: Path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _to_directory(path: Path):
    path.unlink()
    path.mkdir()


def _replace_with_fifo(path: Path):
    path.unlink()
    os.mkfifo(path)


def _swap_link(path: Path, to: str):
    path.unlink()
    path.symlink_to(to)


def _manifest(change):
    return lambda r, w: replace(r, edit_manifest=lambda m: change(m, w))


def _env_lines(change):
    return lambda r, w: replace(r, edit_env=change)


def _sums_lines(change):
    return lambda r, w: replace(r, edit_sums=change)


def _set_env(key, value):
    def change(lines):
        lines[[i for i, line in enumerate(lines) if line.startswith(key + "=")][0]] = f"{key}={value}"
    return _env_lines(change)


def _conda(extra=(), unpacked=10_000, **kw):
    def make(r, w):
        archive = forge.conda_env(extra, python=sys.executable, **kw)
        return replace(r, env_mode="conda", env_archive=archive, env_unpacked=unpacked)
    return make


def _pyz_that_writes_marker(r, w):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("__main__.py", f"open({str(w['host'] / 'PWNED')!r}, 'w').write('pyz ran')\n")
    return buf.getvalue()


def _models(change):
    def make(r, w):
        return replace(r, edit_manifest=lambda m: change(m["models"][0]))
    return make


def _add_file(path, kind, data=b"x"):
    def make(r, w):
        files = dict(r.files)
        files[path] = (kind, data)
        return replace(r, files=files)
    return make


def _other_bundle(w) -> Path:
    return w["older"]


SIG = "signature|signed by another key|SHA256SUMS.minisig|not a minisign"
ALTERED = "differs from|altered|damaged|missing|not a regular file|wrong size"
MALFORMED = "malformed|not valid JSON|not a normalized|does not match|expected|unknown|missing key|climbs out|" \
            "absolute|control|twice|must be|outside|not allowed|control character|backslash"
ATTACKS = [
    # --- media-only: the signature breaks or a file is no longer the signed one
    Attack("sums_line_appended", _after(_edit_file("SHA256SUMS", lambda b: b + b"0" * 64 + b"  chunks/9999-x.part\n")),
           SIG, "signature does not verify|SHA256SUMS is not"),
    Attack("sums_crlf", _after(_edit_file("SHA256SUMS", lambda b: b.replace(b"\n", b"\r\n"))), SIG,
           "signature does not verify|SHA256SUMS is not"),
    Attack("sums_is_fifo", _after(lambda out, w: _replace_with_fifo(out / "SHA256SUMS")), "not a regular file"),
    Attack("sums_links_to_host_file", _after(lambda out, w: _swap_link(out / "SHA256SUMS", str(w["host"] / "victim"))),
           "symlink|not a regular file|cannot be opened"),
    Attack("sums_huge", _after(_edit_file("SHA256SUMS", lambda b: b + b"#" * (2 << 20))), "too large|larger than"),
    Attack("signature_missing", _after(lambda out, w: (out / "SHA256SUMS.minisig").unlink()), "not signed|missing"),
    Attack("signature_garbage", _after(_edit_file("SHA256SUMS.minisig", lambda b: b"garbage\n")), SIG),
    Attack("signature_truncated", _after(_edit_file("SHA256SUMS.minisig", lambda b: b[:-20])), SIG),
    Attack("signature_extra_line", _after(_edit_file("SHA256SUMS.minisig", lambda b: b + b"extra\n")), SIG),
    Attack("signature_crlf", _after(_edit_file("SHA256SUMS.minisig", lambda b: b.replace(b"\n", b"\r\n"))), SIG),
    Attack("signature_is_fifo", _after(lambda out, w: _replace_with_fifo(out / "SHA256SUMS.minisig")),
           "not a regular file|SHA256SUMS.minisig"),
    Attack("signed_by_attacker_key", lambda r, w: replace(r, after=lambda out: (out / "SHA256SUMS.minisig").write_bytes(
        w["attacker"].sign((out / "SHA256SUMS").read_bytes()))), "signed by key|another key|signature"),
    Attack("signature_of_other_release", lambda r, w: replace(r, after=lambda out: shutil.copyfile(
        _other_bundle(w) / "SHA256SUMS.minisig", out / "SHA256SUMS.minisig")), SIG),
    Attack("sums_and_signature_of_other_release", lambda r, w: replace(r, after=lambda out: [shutil.copyfile(
        _other_bundle(w) / n, out / n) for n in ("SHA256SUMS", "SHA256SUMS.minisig")]), ALTERED),
    Attack("env_info_edited", _after(_edit_file("bundle.env", lambda b: b.replace(b"NAME=attack-site",
                                                                                  b"NAME=attack-evil"))), ALTERED),
    Attack("env_info_cr_injected", _after(_edit_file("bundle.env", lambda b: b.replace(b"VERSION=1.1\n",
                                                                                       b"VERSION=1.1\r\n"))), ALTERED),
    Attack("env_info_is_fifo", _after(lambda out, w: _replace_with_fifo(out / "bundle.env")), "not a regular file"),
    Attack("manifest_edited", _after(_edit_file("MANIFEST.json", lambda b: b.replace(b'"1.1"', b'"1.2"'))), ALTERED),
    Attack("manifest_of_other_release", lambda r, w: replace(r, after=lambda out: shutil.copyfile(
        _other_bundle(w) / "MANIFEST.json", out / "MANIFEST.json")), ALTERED),
    Attack("manifest_links_to_host_file",
           _after(lambda out, w: _swap_link(out / "MANIFEST.json", str(w["host"] / "victim"))), ALTERED + "|symlink"),
    Attack("installer_replaced", lambda r, w: replace(r, after=lambda out: (out / "airlock-installer.pyz").write_bytes(
        _pyz_that_writes_marker(r, w))), ALTERED, replaces_installer=True),
    Attack("installer_replaced_and_listed", lambda r, w: replace(r, after=lambda out: (
        (out / "airlock-installer.pyz").write_bytes(_pyz_that_writes_marker(r, w)),
        forge.rehash(out, ("airlock-installer.pyz",)))), SIG, replaces_installer=True),
    Attack("install_sh_replaced", _after(_edit_file("install.sh", lambda b: b"touch /tmp/PWNED\n" + b)), ALTERED,
           replaces_installer=True),
    Attack("chunk_bit_flipped", _after(lambda out, w: _flip(_chunk(out))), "damaged"),
    Attack("chunk_truncated", _after(lambda out, w: _chunk(out).write_bytes(_chunk(out).read_bytes()[:100])),
           "wrong size|truncated"),
    Attack("chunk_missing", _after(lambda out, w: _chunk(out).unlink()), "missing"),
    Attack("chunk_is_fifo", _after(lambda out, w: _replace_with_fifo(_chunk(out))), "not a regular file"),
    Attack("chunk_links_to_host_file", _after(lambda out, w: _swap_link(_chunk(out), str(w["host"] / "victim"))),
           "not a regular file"),
    Attack("chunk_links_to_dev_zero", _after(lambda out, w: _swap_link(_chunk(out), "/dev/zero")),
           "not a regular file"),
    Attack("chunk_is_directory", _after(lambda out, w: _to_directory(_chunk(out))), "not a regular file"),
    Attack("chunks_dir_is_symlink", _after(lambda out, w: (shutil.move(out / "chunks", out / "elsewhere"),
                                                          (out / "chunks").symlink_to(out / "elsewhere"))),
           "not a directory|not a regular file"),
    Attack("chunk_of_other_release", _after(lambda out, w: shutil.copyfile(
        sorted((_other_bundle(w) / "chunks").iterdir())[0], sorted((out / "chunks").iterdir())[0])),
           "damaged|wrong size"),
    # --- signed by the site's key, yet malformed: the installer's own rules hold (defence in depth)
    Attack("sums_names_path_outside", _sums_lines(lambda s: s.append("0" * 64 + "  ../../etc/passwd")),
           "is not '<sha256>|SHA256SUMS"),
    Attack("sums_names_device", _sums_lines(lambda s: s.append("0" * 64 + "  /dev/zero")), "SHA256SUMS"),
    Attack("sums_single_space", _sums_lines(lambda s: s.__setitem__(0, s[0].replace("  ", " "))), "SHA256SUMS"),
    Attack("sums_uppercase_hex", _sums_lines(lambda s: s.__setitem__(0, s[0][:64].upper() + s[0][64:])),
           "SHA256SUMS"),
    Attack("sums_root_twice", _sums_lines(lambda s: s.insert(1, s[0])), "SHA256SUMS"),
    Attack("sums_chunks_swapped", _sums_lines(lambda s: s.__setitem__(slice(6, 8), [s[7], s[6]])),
           "out of order|misnamed|SHA256SUMS"),
    Attack("sums_signed_crlf", _sums_lines(lambda s: s.__setitem__(0, s[0] + "\r")), "0x0d|SHA256SUMS"),
    Attack("sums_signed_nul", _sums_lines(lambda s: s.__setitem__(3, s[3] + "\0")), "0x00|SHA256SUMS"),
    Attack("sums_signed_file_separator", _sums_lines(lambda s: s.__setitem__(2, s[2] + "\x1c")), "0x1c|SHA256SUMS"),
    Attack("sums_signed_unicode_line_separator", _sums_lines(lambda s: s.__setitem__(2, s[2] + "\u2028")),
           "0xe2|SHA256SUMS"),
    Attack("env_info_signed_cr", _env_lines(lambda e: e.__setitem__(1, e[1] + "\r")), "0x0d|bundle.env"),
    Attack("env_info_signed_record_separator", _env_lines(lambda e: e.__setitem__(2, e[2] + "\x1e")),
           "0x1e|bundle.env"),
    Attack("env_info_signed_tab", _env_lines(lambda e: e.__setitem__(1, e[1].replace("=", "=\t"))),
           "0x09|bundle.env"),
    Attack("env_info_duplicate_key", _env_lines(lambda e: e.insert(2, "NAME=other")), "bundle.env"),
    Attack("env_info_no_final_newline", lambda r, w: replace(r, edit_env_bytes=lambda b: b[:-1]),
           "newline|bundle.env"),
    Attack("env_info_blank_line", _env_lines(lambda e: e.insert(5, "")), "bundle.env"),
    Attack("env_info_name_traversal", _set_env("NAME", "../../evil"), "bundle.env line 2|NAME|bundle.env"),
    Attack("env_info_name_dotdot", _set_env("NAME", ".."), "bundle.env"),
    Attack("env_info_version_slash", _set_env("VERSION", "1/../../x"), "bundle.env"),
    Attack("env_info_offset_elsewhere", _set_env("ENV_OFFSET", "0"), "disagrees|bundle.env"),
    Attack("env_info_wrong_size", _env_lines(lambda e: e.__setitem__(-1, e[-1].replace("SIZE=", "SIZE=1"))),
           "wrong size|disagrees|SIZE|damaged|truncated"),
    Attack("env_info_points_at_installed_manifest", _set_env("MANIFEST_SHA256", "f" * 64), "disagree|differs"),
    Attack("manifest_name_traversal", _manifest(lambda m, w: m.update(name="../evil")),
           "does not match|disagrees"),
    Attack("manifest_version_not_pep440", _manifest(lambda m, w: m.update(version="1.1-1")),
           "normalized PEP 440|disagrees"),
    Attack("model_revision_traversal", _models(lambda x: x.update(revision="../../../../outside")), MALFORMED),
    Attack("model_revision_absolute", _models(lambda x: x.update(revision="/tmp/evil")), MALFORMED),
    Attack("model_prefix_traversal", _models(lambda x: x.update(prefix="models/../../outside")), MALFORMED),
    Attack("model_prefix_other_model", _models(lambda x: x.update(prefix="models/other/model")), "must be"),
    Attack("model_repo_traversal", _models(lambda x: x.update(repo_id="../evil", prefix="models/../evil")), MALFORMED),
    Attack("tool_dir_traversal", _manifest(lambda m, w: m["tools"]["converter"].update(dir="../../bin")), MALFORMED),
    Attack("tool_dir_absolute", _manifest(lambda m, w: m["tools"]["converter"].update(dir="/usr/bin")), MALFORMED),
    Attack("env_sha256_is_a_path", _manifest(lambda m, w: m["env"].update(sha256="../../etc/passwd")), MALFORMED),
    Attack("env_path_absolute", _manifest(lambda m, w: m["env"].update(path="/etc/passwd")), MALFORMED),
    Attack("file_path_traversal", _manifest(lambda m, w: m["files"][0].update(path="datasets/../../outside")),
           MALFORMED),
    Attack("file_path_absolute", _manifest(lambda m, w: m["files"][0].update(path="/etc/cron.d/evil")), MALFORMED),
    Attack("file_path_backslash", _manifest(lambda m, w: m["files"][0].update(path="datasets\\..\\x")), MALFORMED),
    Attack("file_path_newline", _manifest(lambda m, w: m["files"][0].update(path="datasets/a\nb")), MALFORMED),
    Attack("file_path_bidi_override", _add_file("datasets/\u202elmth.exe.jsonl", "dataset"), "RIGHT-TO-LEFT|bidi"),
    Attack("file_path_line_separator", _add_file("datasets/a\u2028b.jsonl", "dataset"), "LINE SEPARATOR|separator"),
    Attack("file_path_zero_width", _add_file("datasets/fa\u200bcts.jsonl", "dataset"), "ZERO WIDTH|format"),
    Attack("file_path_lone_surrogate", lambda r, w: replace(r, edit_manifest_bytes=lambda b: b.replace(
        b'"datasets/facts.jsonl"', b'"datasets/\\ud800facts.jsonl"', 1)), "not valid UTF-8|surrogate"),
    Attack("file_path_not_nfc", _add_file("datasets/cafe\u0301.jsonl", "dataset"), "not NFC"),
    Attack("file_paths_collide_in_case", _add_file("datasets/FACTS.jsonl", "dataset"), "differ only in case"),
    Attack("file_path_very_deep", _add_file("datasets/" + "d/" * 100 + "x.jsonl", "dataset"), "levels deep"),
    Attack("file_listed_twice", _manifest(lambda m, w: m["files"].append(dict(m["files"][0]))), "twice|duplicate"),
    Attack("file_also_a_directory", _manifest(lambda m, w: m["files"].append(dict(
        m["files"][1], path=m["files"][1]["path"] + "/inner"))), "both a file and a directory"),
    Attack("duplicate_json_key", lambda r, w: replace(r, edit_manifest_bytes=lambda b: b.replace(
        b'"name": "attack-site"', b'"name": "attack-site", "name": "evil"', 1)), "twice"),
    Attack("deeply_nested_json", lambda r, w: replace(r, edit_manifest_bytes=lambda b: b.replace(
        b'"rehearsal": null', b'"rehearsal": ' + b"[" * 100000 + b"]" * 100000, 1)), "nested|not valid JSON"),
    Attack("manifest_not_an_object", lambda r, w: replace(r, edit_manifest_bytes=lambda b: b"[1, 2, 3]\n"),
           "format"),
    Attack("manifest_size_as_string", _manifest(lambda m, w: m["files"][0].update(size=str(m["files"][0]["size"]))),
           "whole number"),
    Attack("manifest_bool_as_size", _manifest(lambda m, w: m.update(payload_size=True)), "whole number"),
    Attack("manifest_huge_size", _manifest(lambda m, w: m["files"][0].update(size=10**30)), "whole number"),
    Attack("manifest_nan", lambda r, w: replace(r, edit_manifest_bytes=lambda b: b.replace(
        b'"rehearsal": null', b'"rehearsal": NaN', 1)), "not JSON|not valid JSON"),
    Attack("manifest_unknown_key", _manifest(lambda m, w: m.update(post_install="rm -rf /")), "unknown key"),
    Attack("manifest_missing_key", _manifest(lambda m, w: m.pop("files")), "missing key"),
    Attack("manifest_format_1", _manifest(lambda m, w: m.update(format="airlock-bundle/1")), "unknown bundle format"),
    Attack("pickle_weights_undeclared", _add_file(f"models/{MODEL}/pytorch_model.bin", "model", b"\x80\x04evil"),
           "pickle weights"),
    Attack("pickle_weights_declared", lambda r, w: replace(_add_file(f"models/{MODEL}/pytorch_model.bin", "model",
                                                                     b"\x80\x04ev")(r, w),
                                                           models=[(MODEL, REV, ["pytorch_model.bin"])]),
           "--allow-pickle", verify_ok=True),
    Attack("model_file_outside_models", _add_file("models/ghost/x/config.json", "model"), "outside every listed model"),
    Attack("blob_offset_lies", _manifest(lambda m, w: next(iter(m["blobs"].values())).update(offset=0)),
           "overlaps|outside the payload"),
    Attack("blob_nobody_uses", _manifest(lambda m, w: m["blobs"].update({"b" * 64: {"size": 1, "offset": 10**6}})),
           "no file uses|overlaps|outside"),
    Attack("chunk_list_disagrees", _manifest(lambda m, w: m["chunks"].pop()), "add up|disagrees"),
    Attack("installer_section_disagrees", _manifest(lambda m, w: m["installer"].update({"install.sh": "c" * 64})),
           "disagrees"),
    Attack("delta_without_its_base", _manifest(lambda m, w: (m.update(base={
        "name": "attack-site", "version": "0.5", "manifest_sha256": "d" * 64}), next(iter(m["blobs"].values())).update(
        offset=None))), "delta against|not installed|not listed"),
    # --- payload members the extractor must refuse (signed)
    *[Attack(f"payload_{name}", (lambda member: lambda r, w: replace(r, before_members=[member(w)]))(member), match)
      for name, member, match in (
          ("symlink", lambda w: forge.tar_member(f"blobs/{'e' * 64}", kind=b"2", linkname=str(w["host"] / "victim")),
           "symlink"),
          ("hardlink", lambda w: forge.tar_member(f"blobs/{'e' * 64}", kind=b"1", linkname="../../host/victim"),
           "hardlink"),
          ("device", lambda w: forge.tar_member("blobs/dev", kind=b"3"), "device"),
          ("fifo", lambda w: forge.tar_member("blobs/fifo", kind=b"6"), "FIFO"),
          ("traversal", lambda w: forge.tar_member("../../host/evil", b"x"), "climbs out"),
          ("absolute", lambda w: forge.tar_member(str(w["host"] / "evil"), b"x"), "absolute"),
          ("unlisted_blob", lambda w: forge.tar_member(f"blobs/{'e' * 64}", b"x"), "not listed"))],
    # --- the packed env (conda), signed: unpacked by tar in install.sh, by tarfile in `airlock bundle install`
    Attack("env_device_node", _conda([forge.tar_member("dev-null", kind=b"3")]), "device",
           "devices, FIFOs or special files"),
    Attack("env_fifo", _conda([forge.tar_member("pipe", kind=b"6")]), "FIFO|device", "devices, FIFOs"),
    Attack("env_hardlink_to_host_file",
           lambda r, w: _conda([forge.tar_member("stolen", kind=b"1", linkname=str(w["host"] / "victim"))])(r, w),
           "hard link|outside|cannot be unpacked", "unpacking the env failed|special|hard link"),
    Attack("env_member_traversal", _conda([forge.tar_member("../../../host/evil", b"x")]),
           "outside|cannot be unpacked", "unpacking the env failed|special"),
    Attack("env_symlink_then_write_through",
           lambda r, w: _conda([forge.tar_member("escape", kind=b"2", linkname=str(w["host"])),
                                forge.tar_member("escape/evil", b"written through a link")])(r, w),
           "outside|cannot be unpacked", "unpacking the env failed"),
    Attack("env_carries_the_ready_marker", _conda([forge.tar_member(".airlock-env-ready", b"")]),
           "completion marker", "completion marker"),
    Attack("env_decompression_bomb", _conda([forge.tar_member("big", bytes(1 << 20))], unpacked=5000),
           "decompression bomb|more than", "more than"),
    Attack("env_hash_lies", lambda r, w: replace(_conda()(r, w), edit_manifest=lambda m: m["env"].update(
        sha256="9" * 64)), "a conda env must be carried|disagrees|no blob"),
    # --- genuine and well formed, but not for this host or not for an Airlock home (signed)
    Attack("target_other_arch", lambda r, w: replace(r, edit_manifest=lambda m: m["target"].update(arch="aarch64")),
           "for aarch64 hosts", verify_ok=True),
    Attack("target_newer_glibc", lambda r, w: replace(r, target_glibc="2.99"), "needs glibc 2.99", verify_ok=True),
    Attack("target_other_python", lambda r, w: replace(r, target_python="3.13" if sys.version_info[:2] != (3, 13)
                                                       else "3.12"), "is for Python 3", verify_ok=True),
    Attack("wheels_without_env_would_install_outside", lambda r, w: replace(
        _add_file("wheels/evil-1.0-py3-none-any.whl", "wheel", b"PK not a wheel")(r, w),
        edit_manifest=lambda m: m["wheels"].append({
            "name": "evil", "version": "1.0", "filename": "evil-1.0-py3-none-any.whl",
            "sha256": next(f["sha256"] for f in m["files"] if f["path"].startswith("wheels/")),
            "purl": "pkg:pypi/evil@1.0", "tags": "py3-none-any"})), "env mode none carries no wheels"),
]


_BUILT: dict = {}


def attack_bundle(attack: Attack, w) -> Path:
    if attack.id not in _BUILT:
        r = attack.make(recipe(w), w)
        _BUILT[attack.id] = forge.write(r, w["root"] / "attacks" / attack.id, w["keys"])
    return _BUILT[attack.id]


# install.sh with only openssl, with neither tool, or with --insecure-self-verify differs from the minisign run only
# up to the signature check (after it, the same stage 2 reads the signed data): those routes take the attacks on
# what is read before or during it (the sums, the signature, bundle.env, the installer's own files); the attacks
# inside the signed data run through verify, install and install.sh with minisign.
BEFORE_SIGNATURE = ("sums_", "signature_", "signed_", "env_info_", "installer_", "install_sh_", "manifest_edited",
                    "manifest_of_other_release", "manifest_links_to_host_file")


def routes_for(attack: Attack) -> tuple[str, ...]:
    if attack.id.startswith(BEFORE_SIGNATURE):
        return ROUTES
    return tuple(r for r in ROUTES if r not in ("sh-openssl", "sh-neither", "sh-self-verify"))


@pytest.mark.parametrize("attack, route", [(a, r) for a in ATTACKS for r in routes_for(a)],
                         ids=[f"{a.id}-{r}" for a in ATTACKS for r in routes_for(a)])
def test_attack_refused(attack, route, world, tmp_path):
    if route == "sh-self-verify" and attack.replaces_installer:
        pytest.skip("with --insecure-self-verify the bundle's own code is the check; replacing it is the documented "
                    "risk of that flag (bundler/FORMAT.md, threat model)")
    bundle = attack_bundle(attack, world)
    target = tmp_path / "target"
    shutil.copytree(world["target"], target, symlinks=True)
    before, host_before = snapshot(target), snapshot(world["host"])
    audit_before = (target / "registry" / "audit.jsonl").read_text()
    proc = run_route(route, bundle, target, world, attack.extra)
    said = proc.stderr
    if route == "verify" and attack.verify_ok:
        assert proc.returncode == 0 and "WARNING" in proc.stdout, proc.stdout + said
        return
    assert proc.returncode != 0, f"{attack.id} was accepted by {route}:\n{proc.stdout}\n{said}"
    assert "Traceback" not in said and "error" in said, said
    import re

    if route == "sh-neither":
        assert "neither minisign nor openssl" in said
    elif route.startswith("sh") and attack.sh:
        assert re.search(attack.sh, said), f"{route} refused {attack.id} without saying why: {said}"
    else:
        assert re.search(attack.match, said), f"{route} refused {attack.id} without saying why: {said}"
    assert snapshot(target) == before, "the target changed (a leftover, or the good release was touched)"
    assert os.readlink(target / "current" / "attack-site").endswith("attack-site-1.0-" +
                                                                     before["current/attack-site"][1][-12:])
    assert snapshot(world["host"]) == host_before and not (world["host"] / "PWNED").exists()
    added = (target / "registry" / "audit.jsonl").read_text()[len(audit_before):].splitlines()
    assert all(json.loads(line)["action"] == "bundle-refused" for line in added)


def test_attack_suite_is_broad():
    assert len(ATTACKS) >= 60 and len({a.id for a in ATTACKS}) == len(ATTACKS)


# ------------------------------------------------------------------ what must still work
@pytest.mark.parametrize("route", ("install", "sh-minisign", "sh-openssl", "sh-self-verify"))
def test_forged_good_bundle_installs(route, world, tmp_path):
    """The control: the forge's honest bundle installs on every route, so each refusal above is the attack's."""
    bundle = attack_bundle(Attack("control", lambda r, w: r, ""), world)
    target = tmp_path / "target"
    shutil.copytree(world["target"], target, symlinks=True)
    proc = run_route(route, bundle, target, world)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.readlink(target / "current" / "attack-site").startswith("../releases/attack-site-1.1-")
    assert (target / "previous" / "attack-site" / ".complete").is_file()
    if route == "sh-openssl":
        assert "signature OK (openssl" in proc.stdout
    log = [json.loads(x) for x in (target / "registry" / "audit.jsonl").read_text().splitlines()]
    assert log[-1]["action"] == "bundle-install" and log[-1]["version"] == "1.1"


@pytest.mark.parametrize("route", ("install", "sh-minisign"))
def test_env_setuid_bits_dropped(route, world, tmp_path):
    bundle = attack_bundle(Attack("setuid", _conda(setuid=True), ""), world)
    target = tmp_path / "target"
    shutil.copytree(world["target"], target, symlinks=True)
    proc = run_route(route, bundle, target, world)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    helper = next(target.glob("envs/attack-site-*/bin/helper"))
    assert helper.stat().st_mode & 0o7000 == 0, oct(helper.stat().st_mode)


def test_stock_minisign_accepts_the_forge(world, tmp_path):
    """The forge's signatures are real minisign signatures (so a refusal is never the forge's mistake)."""
    bundle = attack_bundle(Attack("control", lambda r, w: r, ""), world)
    ok = subprocess.run(["minisign", "-Vm", str(bundle / "SHA256SUMS"), "-p", str(world["keys"].public_file)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert subprocess.run(["sha256sum", "-c", "--strict", "--quiet", "SHA256SUMS"], cwd=bundle).returncode == 0


@pytest.mark.parametrize("versions,accepted", [(("2.0.post1", "2.0"), False), (("2.0", "2.0.post1"), True),
                                               (("1.10", "1.9"), False), (("2.0rc1", "2.0"), True),
                                               (("2.0", "2.0rc1"), False), (("1!0.1", "9.9"), False)])
def test_rollback_protection_orders_versions_like_pep440(versions, accepted, world, tmp_path):
    installed, offered = versions
    target = tmp_path / "target"
    first = forge.write(recipe(world, version=installed), tmp_path / "first", world["keys"])
    assert run_route("install", first, target, world).returncode == 0
    second = forge.write(recipe(world, version=offered), tmp_path / "second", world["keys"])
    proc = run_route("install", second, target, world)
    assert (proc.returncode == 0) == accepted, proc.stderr
    if not accepted:
        assert "older than the installed" in proc.stderr and "--allow-downgrade" in proc.stderr
        again = run_route("install", second, target, world, extra=("--allow-downgrade",))
        assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("route", ("install", "sh-minisign"))
def test_attack_same_version_other_build_is_refused_unless_replace(route, world, tmp_path):
    """A genuine bundle whose version is the installed one's but whose bytes differ: refused, the release untouched;
    --allow-replace installs it and the audit log names the build it replaced."""
    target = tmp_path / "target"
    shutil.copytree(world["target"], target, symlinks=True)
    before = snapshot(target)
    other = forge.write(recipe(world, version="1.0"), tmp_path / "other-1.0", world["keys"])
    proc = run_route(route, other, target, world)
    assert proc.returncode != 0 and "another build" in proc.stderr and "--allow-replace" in proc.stderr, proc.stderr
    assert {k: v for k, v in snapshot(target).items() if k != "registry/audit.jsonl"} == {
        k: v for k, v in before.items() if k != "registry/audit.jsonl"}
    again = run_route(route, other, target, world, extra=("--allow-replace",))
    assert again.returncode == 0, again.stderr
    log = [json.loads(x) for x in (target / "registry" / "audit.jsonl").read_text().splitlines()]
    assert log[-1]["action"] == "bundle-install" and log[-1]["replaces_build"].startswith("attack-site-1.0-")


def test_attack_stage_two_refuses_an_env_the_manifest_does_not_name(world, tmp_path):
    """Stage 2 takes the env path from stage 1's command line; a path the signed manifest does not name (here: a
    bundle without an env, handed an attacker's directory) is refused before anything is installed."""
    target = tmp_path / "target"
    shutil.copytree(world["target"], target, symlinks=True)
    before = snapshot(target)
    rogue = tmp_path / "rogue-env"
    (rogue / "bin").mkdir(parents=True)
    bundle = attack_bundle(Attack("control", lambda r, w: r, ""), world)
    proc = subprocess.run([str(world["python"]), "-I", str(world["genuine"] / "airlock-installer.pyz"), "install",
                           str(bundle), "--target", str(target), "--env", str(rogue), "--trusted-key",
                           str(world["keys"].public_file), "--no-smoke"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "code: install.env_mismatch" in proc.stderr, proc.stderr
    assert {k: v for k, v in snapshot(target).items() if k != "registry/audit.jsonl"} == {
        k: v for k, v in before.items() if k != "registry/audit.jsonl"}


@pytest.mark.parametrize("route", ("install", "sh-minisign", "sh-openssl"))
def test_attack_trusted_key_writable_by_others_is_refused(route, world, tmp_path):
    """Whoever can write the trusted key can sign anything: a key file the group or others may write is refused."""
    target = tmp_path / "target"
    shutil.copytree(world["target"], target, symlinks=True)
    loose = tmp_path / "keys" / "site.pub"
    loose.parent.mkdir()
    shutil.copyfile(world["keys"].public_file, loose)
    loose.chmod(0o666)
    bundle = attack_bundle(Attack("control", lambda r, w: r, ""), world)
    proc = run_route(route, bundle, target, dict(world, keys=type("K", (), {"public_file": loose})()))
    assert proc.returncode != 0 and "writable by" in proc.stderr and "chmod go-w" in proc.stderr, proc.stderr
    loose.chmod(0o644)
    assert run_route(route, bundle, target, dict(world, keys=type("K", (), {"public_file": loose})())).returncode == 0


def test_attack_umask_002_opens_nothing_to_the_group(world, tmp_path):
    """An operator whose umask is 002: the home's store, releases and bin stay writable by their owner only."""
    target = tmp_path / "target"
    bundle = attack_bundle(Attack("control", lambda r, w: r, ""), world)
    argv = [sys.executable, "-m", "appliance", "bundle", "install", str(bundle), "--target", str(target),
            "--trusted-key", str(world["keys"].public_file), "--no-smoke"]
    env = {k: v for k, v in os.environ.items() if k not in ("AIRLOCK_TRUSTED_KEY", "AIRLOCK_HOME")}
    proc = subprocess.run(["sh", "-c", 'umask 002; exec "$@"', "sh", *argv], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    loose = [str(p.relative_to(target)) for p in [target, *target.rglob("*")]
             if not p.is_symlink() and p.stat().st_mode & 0o022]
    assert not loose, f"group- or other-writable after an install under umask 002: {loose[:5]}"


def test_pickle_weights_install_with_the_flag(world, tmp_path):
    attack = next(a for a in ATTACKS if a.id == "pickle_weights_declared")
    target = tmp_path / "target"
    shutil.copytree(world["target"], target, symlinks=True)
    proc = run_route("install", attack_bundle(attack, world), target, world, extra=("--allow-pickle",))
    assert proc.returncode == 0, proc.stderr
    log = [json.loads(x) for x in (target / "registry" / "audit.jsonl").read_text().splitlines()]
    assert log[-1]["pickle_weights"] == [MODEL]


def test_attack_a_damaged_blob_already_in_the_store_is_replaced_not_trusted(world, tmp_path):
    """A blob already in store/ is re-hashed before a new release links it: one damaged (or planted) there is
    replaced by the bundle's verified copy, and the new release reads the signed bytes."""
    target = tmp_path / "target"
    shutil.copytree(world["target"], target, symlinks=True)
    data = b'{"instruction": "q", "output": "a"}\n'  # the dataset both releases carry
    blob = target / "store" / hashlib.sha256(data).hexdigest()
    assert blob.is_file()
    blob.chmod(0o644)
    blob.write_bytes(b'{"instruction": "q", "output": "planted"}\n')
    bundle = forge.write(recipe(world, version="1.1"), tmp_path / "next-1.1", world["keys"])
    proc = run_route("install", bundle, target, world)
    assert proc.returncode == 0, proc.stderr
    assert blob.read_bytes() == data
    assert (target / "current" / "attack-site" / "files" / "datasets" / "facts.jsonl").read_bytes() == data
