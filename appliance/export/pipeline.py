"""`airlock export gguf SRC --type q4_k_m ...`: merge if needed, convert, quantize, Modelfile, fidelity, registry.

SRC is a job (its adapter is merged first), an adapter dir, a merged/full model dir or a cached base model. The
converter writes one 16-bit GGUF (f16, or bf16 when only bf16 is asked for); every other type is quantized from
it in-process. Each file appears under its final name only when complete; a 16-bit file nobody asked for is a
temporary one and is deleted at the end. Fidelity (greedy answers vs the HF model, perplexity vs the 16-bit file)
is written to fidelity.json beside the GGUFs and recorded with each GGUF in the registry, together with the
check that the Ollama Modelfile prompts the model exactly as its chat template does (modelfile.check). Each GGUF
names itself: the job, its base model, licence and Airlock's version (metadata.py).
"""

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import registry
from ..atomic import check_writable, write_json, write_text
from ..errors import AirlockError
from ..hfcache import sha256_file
from ..merge import merge
from ..sources import GGUF, Source, base_of, check_adapter_dir, check_model_dir, default_merge_out, read_provenance, \
    resolve_source
from ..paths import home
from . import gguf, metadata, modelfile, pretokenizer
from .files import part_name, sweep_leftovers
from .quantize import FTYPES, describe_kquants, kquant_report, quantize

TYPES = ("f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q5_0", "q4_0", "q4_k_s", "q5_k_s", "q3_k_m", "q2_k")


@dataclass
class ExportResult:
    out_dir: Path
    model_dir: Path
    files: dict = field(default_factory=dict)        # type -> GGUF path
    lora: Path | None = None                         # the adapter GGUF (with `base_gguf` for llama.cpp --lora)
    base_gguf: Path | None = None
    fidelity: dict = field(default_factory=dict)
    modelfile: dict = field(default_factory=dict)    # modelfile.check(): the Modelfile's prompt vs the chat template's
    kquants: dict = field(default_factory=dict)      # type -> quantize.kquant_report(): matrices not K-quantized
    timings: dict = field(default_factory=dict)      # step -> seconds


def parse_types(values: list[str] | None) -> list[str]:
    """--type q4_k_m --type q8_0, or --type q4_k_m,q8_0; case-insensitive; duplicates dropped."""
    types = []
    for value in values or ["q4_k_m"]:
        for name in value.lower().replace("-", "_").split(","):
            name = name.strip()
            if not name:
                continue
            if name not in TYPES or name not in FTYPES:
                raise AirlockError(f"unknown GGUF type {name!r}", where="--type", fix=f"use one of {', '.join(TYPES)}")
            if name not in types:
                types.append(name)
    return types


def default_out(src: Source) -> Path:
    return src.job_dir / GGUF if src.job_dir else home() / "exports" / src.name


def export_gguf(source: str, types: list[str] | None = None, *, out: Path | None = None, system: str | None = None,
                lora: bool = False, pre_tokenizer: str | None = None, fidelity: bool = True,
                prompts: list[str] | None = None, text: str | None = None, threads: int | None = None,
                log=print) -> ExportResult:
    """Export SRC to GGUF files of `types` in `out`. Raises AirlockError on bad input or a failed step."""
    from ..chat import default_threads
    from ..cpus import busy_warning

    types = parse_types(types)
    threads = threads or default_threads()
    warning = busy_warning("this export")
    if warning:
        log(warning)
    src = resolve_source(source)
    if lora and src.kind != "adapter":
        raise AirlockError("--lora exports a LoRA adapter, but the source is a full model",
                           fix="give a job or adapter directory, or drop --lora")
    out = check_writable(out or default_out(src), "export")  # before a merge or a conversion is spent on it
    model_dir = _model_dir(src, log)
    out.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(out)
    name = src.name
    result = ExportResult(out_dir=out, model_dir=model_dir)

    from . import fidelity as fid

    prompts = fid.heldout_prompts() if prompts is None else prompts
    text = fid.heldout_text() if text is None else text
    # Tokenizer agreement is checked on a demanding multilingual text plus the texts the model will really see.
    agreement_text = "\n".join([pretokenizer.TEST_TEXT, *prompts, (text or "")[:4000]])

    base_type = "bf16" if "bf16" in types and "f16" not in types else "f16"
    final16 = out / f"{name}-{base_type}.gguf"
    work16 = part_name(final16)  # converted here first: renamed to final16 only if asked for and accepted
    try:
        log(f"converting {model_dir} -> {base_type} (llama.cpp converter) ...")
        started = time.perf_counter()
        tokenizer = None

        def special_flags() -> dict:
            # Called once the converter has started: loading the HF tokenizer overlaps its imports and weight reads.
            nonlocal tokenizer
            tokenizer = _tokenizer(model_dir)
            return pretokenizer.special_flags(tokenizer)

        meta = metadata.for_source(src, model_dir)
        gguf.convert_model(model_dir, work16, base_type, pre_tokenizer=pre_tokenizer, special=special_flags,
                           metadata=meta)
        special = pretokenizer.special_flags(tokenizer)
        result.timings[f"convert_{base_type}"] = time.perf_counter() - started
        tok_diff = pretokenizer.compare(work16, tokenizer, agreement_text)
        if pre_tokenizer and tok_diff is not None:
            raise AirlockError(
                f"pre-tokenizer {pre_tokenizer!r} does not reproduce the model's tokenization: {tok_diff.describe()}. "
                "The GGUF was deleted.", where=str(model_dir),
                fix="try the pre-tokenizer of the model's family (its tokenizer.json pre_tokenizer section says how "
                "it splits text); if none matches, llama.cpp does not support this tokenizer yet")
        if pre_tokenizer:
            log(f"  pre-tokenizer {pre_tokenizer!r}: llama.cpp tokenizes the multilingual test text exactly like "
                "the model's tokenizer")
        # Named by the file it becomes; when only quantized types were asked for, it is the temporary source.
        _line(log, base_type, work16, result.timings[f"convert_{base_type}"],
              name=final16.name if base_type in types else "(temporary: the source of the quantized files)")

        for qtype in types:
            if qtype == base_type:
                continue
            target = out / f"{name}-{qtype}.gguf"
            started = time.perf_counter()
            quantize(work16, target, qtype, threads=threads)
            result.timings[qtype] = time.perf_counter() - started
            result.files[qtype] = target
            _line(log, qtype, target, result.timings[qtype])
            if report := kquant_report(target, qtype):
                result.kquants[qtype] = report
                if line := describe_kquants(qtype, report):
                    log(line)
        if base_type in types:
            os.replace(work16, final16)
            result.files = {base_type: final16, **result.files}
            reference = final16
        else:
            reference = work16

        if lora:
            adapter_base = base_of(src)
            result.base_gguf = out / f"{name}-base-f16.gguf"
            result.lora = out / f"{name}-lora-f16.gguf"
            started = time.perf_counter()
            base_ref = (src.provenance or {}).get("base_model") or adapter_base.name
            gguf.convert_model(adapter_base, result.base_gguf, "f16", special=special,
                               metadata=metadata.for_model(base_ref, base_dir=adapter_base, repo_id=base_ref))
            gguf.convert_lora(src.path, adapter_base, result.lora, "f16", metadata=meta)
            result.timings["lora"] = time.perf_counter() - started
            _line(log, "lora", result.lora, result.timings["lora"])

        if fidelity:
            started = time.perf_counter()
            result.fidelity = _fidelity(result, model_dir, tokenizer, reference, base_type, prompts, text, threads, log)
            result.fidelity["tokenizer"] = {"identical": tok_diff is None,
                                            "difference": tok_diff.describe() if tok_diff else None,
                                            "forced_pre_tokenizer": pre_tokenizer}
            result.timings["fidelity"] = time.perf_counter() - started
        # Delete the temporary 16-bit file before the first fsync below: on a journalling filesystem that fsync
        # would otherwise write its hundreds of MB out to disk first, only for them to be deleted.
        work16.unlink(missing_ok=True)

        result.modelfile = _modelfiles(result, tokenizer, system, tokenizer.bos_token if special["bos"] else None, log)
        if fidelity:
            result.fidelity["modelfile"] = result.modelfile
            write_json(out / "fidelity.json", result.fidelity)
            _summary(log, result.fidelity)
    finally:
        work16.unlink(missing_ok=True)

    _write_sums(out, [*result.files.values(), *(p for p in (result.lora, result.base_gguf) if p)])
    _record(src, model_dir, result)
    log(f"done: {out}")
    return result


def _model_dir(src: Source, log) -> Path:
    """The HF model directory to convert: the source itself, or the merge of an adapter (reused when current)."""
    if src.kind == "model":
        check_model_dir(src.path)
        return src.path
    check_adapter_dir(src.path)
    merged = default_merge_out(src)
    prov = read_provenance(merged) if merged.is_dir() else None
    if prov and prov.get("adapter_sha256") == sha256_file(src.path / "adapter_model.safetensors"):
        try:
            check_model_dir(merged)
            log(f"using the merged model in {merged}")
            return merged
        except AirlockError:
            pass  # damaged: merge again below
    return merge(src, merged, log=log)


def _tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def _modelfiles(result: ExportResult, tokenizer, system: str | None, runtime_bos: str | None, log) -> dict:
    """Write a Modelfile beside each GGUF (TEMPLATE, stop, SYSTEM from the model's chat template) and check that
    Ollama would prompt the model as its chat template does. Returns the check; a difference is reported."""
    spec = modelfile.build(tokenizer, system=system, runtime_bos=runtime_bos)
    written = [modelfile.write(path, spec) for path in result.files.values()]
    if result.lora:
        written.append(modelfile.write(result.base_gguf, spec, adapter=result.lora))
    if not written:
        return {}
    check = modelfile.check(tokenizer, written[0].read_text(encoding="utf-8"), system=system, runtime_bos=runtime_bos,
                            tools_note=spec["tools"])
    cases = [v for v in check["cases"].values() if isinstance(v, bool)]
    if check["identical"]:
        log(f"  Modelfile: Ollama's prompt = the chat template's, {len(cases)}/{len(cases)} conversations "
            f"(tool turns {spec['tools']})")
    else:
        why = check.get("reason") or spec["error"] or f"first difference: {check.get('first_difference')}"
        log(f"  warning: Ollama would prompt this model differently from its chat template "
            f"({sum(cases)}/{len(cases)} conversations identical; {why}); fidelity.json has the details")
    return check


def _fidelity(result: ExportResult, model_dir: Path, tokenizer, reference: Path, base_type: str, prompts, text,
              threads, log) -> dict:
    from transformers import AutoModelForCausalLM

    from . import fidelity

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.eval()
    ggufs = dict(result.files)
    if base_type not in ggufs:
        ggufs = {base_type: reference, **ggufs}
    measured = fidelity.measure(model, tokenizer, ggufs, prompts=prompts, text=text, reference=base_type,
                                threads=threads, log=log)
    if result.lora and prompts:
        answers = fidelity.gguf_answers(result.base_gguf, tokenizer, prompts, lora=result.lora, threads=threads)
        same = sum(a == b for a, b in zip(answers, measured["hf_answers"]))
        measured["types"]["lora"] = {"identical": same / len(prompts), "identical_count": same, "answers": answers}
    return measured


def _summary(log, fid: dict) -> None:
    for qtype, entry in fid["types"].items():
        parts = []
        if "identical" in entry:
            parts.append(f"greedy answers identical to HF: {entry['identical_count']}/{len(fid['prompts'])}")
        if "perplexity" in entry:
            ratio = entry.get(f"ppl_ratio_vs_{fid['reference']}")
            parts.append(f"perplexity {entry['perplexity']:.3f}" + (f" ({ratio:.3f}x {fid['reference']})" if ratio else ""))
        log(f"  {qtype:<8} " + "; ".join(parts))


def _line(log, qtype: str, path: Path, seconds: float, name: str | None = None) -> None:
    log(f"  {qtype:<8} {_size(path.stat().st_size):>10}  {seconds:6.2f} s  {name or path.name}")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _write_sums(out: Path, written: list[Path]) -> None:
    """SHA256SUMS beside the files (`sha256sum -c SHA256SUMS`), keeping lines for earlier exports still present."""
    sums_path = out / "SHA256SUMS"
    sums = {}
    if sums_path.is_file():
        for line in sums_path.read_text().splitlines():
            digest, _, fname = line.partition("  ")
            if fname and (out / fname).is_file():
                sums[fname] = digest
    for path in written:
        sums[path.name] = sha256_file(path)
    write_text(sums_path, "".join(f"{d}  {f}\n" for f, d in sorted(sums.items())))


def _record(src: Source, model_dir: Path, result: ExportResult) -> None:
    sums = dict(line.split("  ")[::-1] for line in (result.out_dir / "SHA256SUMS").read_text().splitlines())
    parent = f"{src.name}-merged" if src.kind == "adapter" else src.name
    for qtype, path in result.files.items():
        fid = {k: v for k, v in result.fidelity.get("types", {}).get(qtype, {}).items() if k != "answers"}
        registry.record("gguf", registry.id_for(path.stem, path), path, parents=[parent], type=qtype,
                        size=path.stat().st_size, sha256=sums[path.name], fidelity=fid, source=str(model_dir),
                        modelfile_prompt_identical=result.modelfile.get("identical"),
                        **({"kquants": result.kquants[qtype]} if qtype in result.kquants else {}))
    if result.lora:
        registry.record("gguf", registry.id_for(result.lora.stem, result.lora), result.lora, parents=[src.name], type="lora-f16",
                        size=result.lora.stat().st_size, sha256=sums[result.lora.name], base_gguf=str(result.base_gguf))
    registry.audit("export", source=str(src.path), out=str(result.out_dir), types=list(result.files))
