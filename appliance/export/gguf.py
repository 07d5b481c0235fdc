"""Run llama.cpp's own converters in a guarded child: HF model -> GGUF (f16/bf16/q8_0), PEFT LoRA -> GGUF adapter.

The converter scripts come from the pinned llama-cpp-python sdist (tools.converter_dir()); they run through
`python -m appliance.offline`, so the network guard is on in the child too. Each output is written under a
temporary name and renamed into place only when the converter succeeded.
"""

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import AirlockError
from ..offline import guarded_python_command, offline_env
from ..tools import converter_dir
from . import pretokenizer
from .files import no_space, staged_file
from .metadata import write as write_metadata

CONVERT_TYPES = ("f32", "f16", "bf16", "q8_0")


def convert_model(model_dir: Path, out_file: Path, outtype: str = "f16", *, pre_tokenizer: str | None = None,
                  special: dict | None = None, metadata: dict | None = None, tools: Path | None = None) -> Path:
    """Convert an HF model directory to one GGUF file.

    `pre_tokenizer` forces that BPE pre-tokenizer name; `special` ({"bos": bool, "eos": bool}, measured from the HF
    tokenizer by pretokenizer.special_flags) says whether llama.cpp must add BOS/EOS; it may be a function giving
    them, called once the converter has started (which needs them only when it writes the vocabulary), so that
    measuring them overlaps the converter's start-up. `metadata` is the `general.*` override of
    appliance.export.metadata. See converter_shim.py.
    """
    if outtype not in CONVERT_TYPES:
        raise AirlockError(f"the converter writes {', '.join(CONVERT_TYPES)}, not {outtype!r}")
    tools = tools or converter_dir()
    shim: list[str] = []
    if pre_tokenizer:
        pretokenizer.check_name(pre_tokenizer, tools)
        shim += ["--pre", pre_tokenizer]
    late = special if callable(special) else None
    if late:
        shim += ["--special", "-"]
    for typ, value in ({} if late else special or {}).items():
        shim += [f"--add-{typ}", "1" if value else "0"]
    with staged_file(out_file) as tmp, _metadata_file(metadata) as meta:
        args = [str(model_dir), "--outtype", outtype, "--outfile", str(tmp)]
        if meta:
            shim += ["--metadata", str(meta)]
            args += ["--metadata", str(meta)]  # the converter's own option; the shim adds what it leaves out
        _run(_command(tools / "convert_hf_to_gguf.py", shim, args), model_dir, out_file, tools, late)
    return Path(out_file)


def convert_lora(adapter_dir: Path, base_dir: Path, out_file: Path, outtype: str = "f16", *,
                 metadata: dict | None = None) -> Path:
    """Convert a PEFT LoRA adapter to a GGUF adapter for llama.cpp's runtime --lora (needs the base's config)."""
    tools = converter_dir()
    with staged_file(out_file) as tmp, _metadata_file(metadata) as meta:
        args = [str(adapter_dir), "--base", str(base_dir), "--outtype", outtype, "--outfile", str(tmp)]
        shim = ["--metadata", str(meta)] if meta else []
        _run(_command(tools / "convert_lora_to_gguf.py", shim, args), adapter_dir, out_file, tools)
    return Path(out_file)


def _command(script: Path, shim: list[str], args: list[str]) -> list[str]:
    if not shim:
        return guarded_python_command(str(script), *args)
    return guarded_python_command(str(Path(__file__).with_name("converter_shim.py")), *shim, "--", str(script), *args)


@contextlib.contextmanager
def _metadata_file(metadata: dict | None):
    if not metadata:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="airlock-gguf-meta-") as tmp:
        yield write_metadata(metadata, Path(tmp) / "metadata.json")


def _run(argv: list[str], source: Path, out_file: Path, tools: Path, late_input=None) -> None:
    """Run the converter; `late_input`, if given, is called while it runs and its answer sent as JSON on stdin."""
    with subprocess.Popen(argv, stdin=subprocess.PIPE if late_input else subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=offline_env()) as proc:
        try:
            # communicate() ignores a closed pipe: a converter that already stopped says why in its output.
            stdout, stderr = proc.communicate(json.dumps(late_input()) + "\n" if late_input else None)
        except BaseException:
            proc.kill()  # an interrupted or failed export leaves no converter behind
            raise
    if proc.returncode == 0:
        return
    output = stdout + stderr
    if pretokenizer.UNRECOGNIZED_MARK in output:
        raise pretokenizer.unrecognized_error(source, tools)
    # A full disk shows as ENOSPC, or as numpy's short write ("8192 requested and 1408 written") without errno.
    if "No space left on device" in output or re.search(r"\d+ requested and \d+ written", output) \
            or shutil.disk_usage(Path(out_file).parent).free < 2**20:
        raise no_space(Path(out_file).parent)
    if "OfflineViolation" in output or "blocked a network connection" in output:
        raise AirlockError("llama.cpp's converter tried to reach the network", where=str(source),
                           fix="the model directory must be complete (config, tokenizer, weights); a missing file "
                           "makes the converter look for it on a hub")
    tail = "\n".join(line for line in output.strip().splitlines()[-8:])
    raise AirlockError(f"llama.cpp's converter failed (exit {proc.returncode}):\n{tail}", where=str(source),
                       fix="check that the directory holds a complete Hugging Face model of a supported architecture")
