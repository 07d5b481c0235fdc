"""Export failures: a missing or corrupt source, a full disk, an interrupted export. Each gives a clear error,
leaves earlier artifacts untouched and leaves no partial file behind."""

import os
import shutil
import signal
import subprocess
import time

import pytest
from conftest import airlock_argv, tmpfs

EARLIER = b"GGUF an earlier export"


def _copy_model(src, dst):
    shutil.copytree(src, dst, symlinks=False)  # the cache snapshot is symlinks into blobs: copy real files
    return dst


def _earlier_export(out):
    out.mkdir(parents=True, exist_ok=True)
    (out / "tiny-q8_0.gguf").write_bytes(EARLIER)
    return out


def _assert_untouched(out):
    assert sorted(p.name for p in out.iterdir()) == ["tiny-q8_0.gguf"], sorted(p.name for p in out.iterdir())
    assert (out / "tiny-q8_0.gguf").read_bytes() == EARLIER


@pytest.mark.parametrize("case", ["missing", "truncated-weights", "bad-config", "no-weights"])
def test_missing_or_corrupt_source(tiny_model, run_offline, tmp_path, case):
    src = tmp_path / "tiny"
    if case != "missing":
        _copy_model(tiny_model, src)
    if case == "truncated-weights":
        weights = src / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        expect = "corrupt weights file"
    elif case == "bad-config":
        (src / "config.json").write_text("{not json")
        expect = "config.json is not valid JSON"
    elif case == "no-weights":
        (src / "model.safetensors").unlink()
        expect = "no weights"
    else:
        expect = "no such job, directory or cached model"
    out = _earlier_export(tmp_path / "out")
    proc = run_offline(airlock_argv("export", "gguf", src, "--type", "q8_0", "--out", out), check=False)
    assert proc.returncode == 2, proc.stderr
    assert expect in proc.stderr and "fix:" in proc.stderr and "Traceback" not in proc.stderr
    _assert_untouched(out)


@pytest.fixture
def small_disk(tmp_path):
    """A 160 KiB tmpfs: room for earlier files, not for a converted model (the tiny f16 GGUF is ~300 KiB)."""
    with tmpfs(tmp_path / "small", "size=160k") as mount:
        yield mount


def test_no_space_left(tiny_model, run_offline, small_disk):
    out = _earlier_export(small_disk / "out")
    proc = run_offline(airlock_argv("export", "gguf", tiny_model, "--type", "f16", "--type", "q8_0", "--out", out,
                                    "--no-fidelity"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "no space left on the device" in proc.stderr and "fix:" in proc.stderr and "Traceback" not in proc.stderr
    _assert_untouched(out)


def _start_export(src, out):
    return subprocess.Popen(airlock_argv("export", "gguf", src, "--type", "f16,q8_0", "--out", out, "--no-fidelity"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_converter(proc):
    """Block until the export has started llama.cpp's converter (a child process), so the kill lands mid-way."""
    import psutil

    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        if any("convert_hf_to_gguf" in " ".join(c.cmdline()) for c in parent.children(recursive=True)):
            return
        time.sleep(0.05)
    raise AssertionError(f"export ended before converting: {proc.communicate()}")


def test_interrupted_export_cleans_up(tiny_model, tmp_path):
    out = _earlier_export(tmp_path / "out")
    proc = _start_export(tiny_model, out)
    _wait_for_converter(proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate()
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    _assert_untouched(out)


def test_killed_export_leaves_earlier_files_and_next_export_sweeps(tiny_model, tmp_path):
    import psutil

    out = _earlier_export(tmp_path / "out")
    proc = _start_export(tiny_model, out)
    _wait_for_converter(proc)
    children = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGKILL)  # like a power cut: nothing gets to clean up
    proc.wait()
    psutil.wait_procs(children, timeout=30)
    assert (out / "tiny-q8_0.gguf").read_bytes() == EARLIER
    assert not [p for p in out.iterdir() if p.name.endswith(".gguf") and p.name != "tiny-q8_0.gguf"]

    # The next export removes what the killed one left and completes.
    from appliance.export.pipeline import export_gguf

    result = export_gguf(str(tiny_model), ["q8_0"], out=out, fidelity=False, log=lambda _: None)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["tiny-q8_0.gguf", result.files["q8_0"].name, result.files["q8_0"].with_suffix(".Modelfile").name, "SHA256SUMS"])


def test_export_without_llama_cpp_binding_is_a_clear_error(tiny_model, run_offline, tmp_path):
    """An environment without llama-cpp-python (not a bundle install) gets a named error, not an ImportError."""
    import sys

    out = _earlier_export(tmp_path / "out")
    code = ("import sys; sys.modules['llama_cpp'] = None\n"  # as if the binding were not installed
            "from appliance.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = run_offline([sys.executable, "-c", code, "export", "gguf", tiny_model, "--type", "q8_0", "--out", out],
                       check=False)
    assert proc.returncode == 2, proc.stderr
    assert "llama-cpp-python" in proc.stderr and "fix:" in proc.stderr and "Traceback" not in proc.stderr
    _assert_untouched(out)
