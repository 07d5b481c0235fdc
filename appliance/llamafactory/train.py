"""A LLaMA-Factory training YAML as an Airlock TrainConfig, saying exactly what was and was not carried over.

Every key lands in one of three lists: translated (key -> our setting), not needed here (a housekeeping key whose
job Airlock does another way, with the reason) and unsupported (a key that would change the run and that this
version cannot honour, with the reason: refused unless --lenient). A key the YAML leaves out gets LLaMA-Factory's
default (defaults.py), and `Translation.differences()` lists every value that differs from Airlock's own. What cannot mean anything here (stage ppo, freeze tuning, 8-bit or fp4
quantization, an unknown template, a hub dataset_dir) is an AirlockError naming the key. The table of every key
is keys.py.

Paths: dataset_dir is resolved against the current directory, exactly as LLaMA-Factory resolves it (run the
translation from the folder you run LLaMA-Factory from); without dataset_dir it is ./data, LLaMA-Factory's
default. `finish()` validates the result and checks the data (appliance.data.preflight.check_data) so
`airlock train --from-llamafactory` refuses a config mistake before any job exists.
"""

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import schema
from ..errors import AirlockError
from .defaults import DEFAULTS, airlock_defaults, same
from .keys import BNB, KTO_ONLY, LISTED_ONLY, PREF_LOSSES, QUANT_METHODS, REFUSED_STAGES, STAGES, TRAIN
from .templates import map_template


INPUTS = {"model", "adapter", "stage", "method", "data.dataset", "data.path"}  # what to train, not how: no default


@dataclass
class Translation:
    source: Path
    config: dict  # TrainConfig-shaped mapping (validate with finish / schema.build)
    translated: list[tuple[str, object, str, object]] = field(default_factory=list)  # (lf key, value, ours, value)
    not_needed: list[tuple[str, object, str]] = field(default_factory=list)  # (key, value, reason)
    unsupported: list[tuple[str, object, str]] = field(default_factory=list)  # (key, value, reason)
    name: str | None = None  # a job name from output_dir
    notes: list[str] = field(default_factory=list)  # what a mapping means (e.g. the template's)
    defaults: list[tuple[str, object, str, object, str]] = field(default_factory=list)
    # ^ LLaMA-Factory's defaults applied for keys the YAML leaves out: (lf key, LF value, ours, value, source)
    kept: list[tuple[str, object, str]] = field(default_factory=list)  # housekeeping kept Airlock's: (key, LF, ours)
    preprocess_only: str | None = None  # LF's tokenized_path not made yet: tokenize, cache, mark it and stop

    @property
    def blocking(self) -> list[str]:
        """The unsupported keys that would change what is trained: refused unless --lenient."""
        return [k for k, _, _ in self.unsupported if k not in LISTED_ONLY]

    def differences(self) -> list[tuple[str, object, str, object]]:
        """(setting, value, where it comes from, Airlock's default) for every setting that differs from what
        Airlock would use on its own, and the housekeeping settings where LLaMA-Factory's default differs."""
        ours = airlock_defaults()
        rows = []
        for key, _, setting, value in self.translated:
            if setting in ours and setting not in INPUTS and not same(value, ours[setting]):
                rows.append((setting, value, f"from the YAML ({key.split(' ')[0]})", ours[setting]))
        for key, _, setting, value, source in self.defaults:
            if setting in ours and not same(value, ours[setting]):
                rows.append((setting, value, f"{source}'s default ({key})", ours[setting]))
        for key, lf_value, setting in self.kept:
            rows.append((setting, ours.get(setting), f"Airlock's, kept: housekeeping (LLaMA-Factory's default "
                                                     f"{key} {lf_value!r})", ours.get(setting)))
        return rows


def _set(config: dict, dotted: str, value) -> None:
    node = config
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _train_fields() -> set[str]:
    from ..data import DataConfig
    from ..train.config import TrainConfig

    from ..train.distributed_config import DistributedConfig, FsdpSettings

    return {f.name for f in dataclasses.fields(TrainConfig)} | {
        f"data.{f.name}" for f in dataclasses.fields(DataConfig)} | {
        f"distributed.{f.name}" for f in dataclasses.fields(DistributedConfig)} | {
        f"distributed.fsdp.{f.name}" for f in dataclasses.fields(FsdpSettings)}


def _bool(value) -> bool:
    return value.strip().lower() in ("true", "yes", "on", "1") if isinstance(value, str) else bool(value)


def translate(path) -> Translation:
    """Translate the training YAML at `path`; an AirlockError for what cannot mean anything here, and for a YAML
    that is not a training one (merge, export, prediction ...) with the command that does its job."""
    from .tasks import kind_of, not_training, refuse_other

    path = Path(path)
    raw = schema.load_file(path)
    refuse_other(path, raw)
    if kind_of(raw) != "train":
        raise not_training(path, raw)
    if not raw.get("dataset"):
        raise AirlockError("no dataset: a training YAML names its data with `dataset:`", where=f"{path}: dataset",
                           fix="add dataset: NAME (a key of dataset_info.json in dataset_dir, ./data by default)")
    known = _train_fields()
    tr = Translation(source=path, config={"data": {}})
    where = lambda key: f"{path}: {key}"  # noqa: E731

    def put(lf_key, value, ours, our_value):
        if ours not in known:  # e.g. a setting this version's TrainConfig does not have yet
            tr.unsupported.append((lf_key, value, f"this version's training config has no '{ours}'"))
            return
        _set(tr.config, ours, our_value)
        tr.translated.append((lf_key, value, ours, our_value))

    stage = str(raw.get("stage", "sft"))
    if stage not in STAGES:
        why = REFUSED_STAGES.get(stage, "not a LLaMA-Factory stage")
        raise AirlockError(f"stage {stage!r} is not offered ({why}; Airlock trains pt, sft, dpo and kto)",
                           where=where("stage"), fix="use stage: pt, sft, dpo or kto")
    method = str(raw.get("finetuning_type", "lora"))
    if method not in ("lora", "full"):
        raise AirlockError(f"finetuning_type {method!r} is not offered", where=where("finetuning_type"),
                           fix="use lora (adapters; add quantization_bit: 4 for QLoRA) or full")
    bits = _quantization(raw, method, where, known)

    for key, value in raw.items():
        spec = TRAIN.get(key)
        if key == "stage":
            put(key, value, "stage", STAGES[stage])
        elif key == "finetuning_type":
            put(key, value, "method", "qlora" if bits == 4 else method)
        elif key in ("quantization_bit", "quantization_method", "quantization_type", "double_quantization"):
            if bits != 4:
                tr.not_needed.append((key, value, "no effect without quantization_bit: 4"))
            elif key in ("quantization_type", "double_quantization"):
                put(key, value, key, value if key == "quantization_type" else _bool(value))
            else:
                what = {"quantization_type": "qlora (NF4)", "double_quantization": "qlora (double quantization)"}
                tr.translated.append((key, value, "method", what.get(key, "qlora")))
        elif key == "lora_target":
            targets = [t.strip() for t in str(value).split(",") if t.strip()] if isinstance(value, str) else value
            put(key, value, "lora_target", ["all-linear"] if targets == ["all"] else list(targets))
        elif key == "dataset_dir":
            put(key, value, "data.path", _dataset_dir(value, where(key)))
        elif key == "template":
            chat_template, note = map_template(str(value), str(raw.get("model_name_or_path") or ""), where(key))
            put(key, value, "data.chat_template", chat_template)
            tr.notes.append(f"template {value}: {note}")
        elif key in ("bf16", "fp16", "pure_bf16"):
            if _bool(value):
                put(key, value, "dtype", "fp16" if key == "fp16" else "bf16")
            else:
                tr.not_needed.append((key, value, "off; fp32 is the default"))
        elif key == "max_steps":
            if value is not None and int(value) > 0:
                put(key, value, "max_steps", int(value))
            else:
                tr.not_needed.append((key, value, "not positive: num_train_epochs decides"))
        elif key in KTO_ONLY and stage != "kto":
            tr.not_needed.append((key, value, "read by stage kto only"))
        elif key == "pref_loss" and stage == "kto":
            tr.not_needed.append((key, value, "stage kto has its own loss"))
        elif key == "pref_loss":
            if value not in PREF_LOSSES:
                tr.unsupported.append((key, value, f"DPO losses offered: {', '.join(PREF_LOSSES)}"))
            else:
                put(key, value, "pref_loss", value)
        elif key in ("train_on_prompt", "mask_history"):
            if _bool(value):
                put(key, value, "data.train_on", "all" if key == "train_on_prompt" else "last")
            else:
                tr.not_needed.append((key, value, "off: " + ("replies only" if key == "train_on_prompt"
                                                             else "every reply is trained") + ", the default"))
        elif key == "output_dir":
            tr.name = Path(str(value)).name or None
            tr.not_needed.append((key, value, spec.why))
        elif key == "seed":
            put(key, value, "seed", value)
            put(key, value, "data.seed", value)
        elif key == "interleave_probs":
            probs = [float(p) for p in str(value).split(",") if p.strip()] if isinstance(value, str) else value
            put(key, value, "data.interleave_probs", probs)
        elif key == "adapter_name_or_path":
            if stage == "dpo" and value:
                put(key, value, "adapter", str(value))
            elif value:
                tr.unsupported.append((key, value, f"training stage {stage} on top of an adapter is not offered: merge "
                                                   "it (`airlock merge`) and start from the merged model"))
            else:
                tr.not_needed.append((key, value, "off"))
        elif key == "disable_gradient_checkpointing":
            put(key, value, "gradient_checkpointing", not _bool(value))
        elif key == "neat_packing":
            if _bool(value):
                put(key, value, "packing", True)
            else:
                tr.not_needed.append((key, value, "off"))
        elif key in ("deepspeed", "fsdp", "fsdp_config"):
            _scale_out(key, value, put, tr, where(key))
        elif key == "tokenized_path":
            _tokenized_path(value, raw, tr, where(key))
        elif key == "enable_thinking":
            if _bool(value):
                tr.not_needed.append((key, value, "the model's own template decides"))
            else:
                tr.unsupported.append((key, value, "give data.chat_template a Jinja file that renders without "
                                                   "thinking"))
        elif spec is None:
            close = schema.suggest(key, list(TRAIN))
            tr.unsupported.append((key, value, f"unknown key ({close})" if close.startswith("did") else "unknown key"))
        elif spec.status == "supported":
            put(key, value, spec.ours, value)
        elif spec.status == "not needed":
            tr.not_needed.append((key, value, spec.why))
        elif value in (None, False):
            tr.not_needed.append((key, value, "off"))
        else:
            tr.unsupported.append((key, value, spec.why))
    if "data.path" not in {t[2] for t in tr.translated} and "dataset" in raw:
        put("dataset_dir (not set)", "data", "data.path", _dataset_dir("data", where("dataset_dir")))
    _lf_defaults(tr, raw, stage, "qlora" if bits == 4 else method, known)
    if stage == "kto":
        _kto_pairs(tr)
    return tr


def _kto_pairs(tr: Translation) -> None:
    """KTO at one sample per batch, as LLaMA-Factory's KTO example runs it: LLaMA-Factory pairs each answer with
    another's prompt while preprocessing; trl (here) takes the pair from the same batch, so it needs two. Batch 1
    with an even gradient_accumulation_steps becomes 2 with half the accumulation: the same answers per optimizer
    step, and a step's loss is the same mean over them."""
    batch = tr.config.get("per_device_train_batch_size", 8)
    accumulation = tr.config.get("gradient_accumulation_steps", 1)
    if batch != 1 or accumulation % 2:
        return  # an odd accumulation cannot be halved: the config check refuses batch 1 with the fix
    tr.config["per_device_train_batch_size"], tr.config["gradient_accumulation_steps"] = 2, accumulation // 2
    tr.notes.append(f"stage kto: per_device_train_batch_size 1 x gradient_accumulation_steps {accumulation} runs as "
                    f"2 x {accumulation // 2} (the same {accumulation} answers per step): KTO's reference point "
                    "pairs each answer with another prompt in the batch")


def _lf_defaults(tr: Translation, raw: dict, stage: str, method: str, known: set) -> None:
    """LLaMA-Factory's value for every key the YAML leaves out (defaults.py), so the run is the one LLaMA-Factory
    would make; housekeeping keeps Airlock's value and is shown beside LLaMA-Factory's."""
    given = {setting for _, _, setting, _ in tr.translated}
    for d in DEFAULTS:
        if d.key in raw or d.ours in given or d.ours not in known or method not in d.methods or stage not in d.stages:
            continue
        if not d.learned:
            tr.kept.append((d.key, d.value, d.ours))
            continue
        value = d.our_value(raw)
        _set(tr.config, d.ours, value)
        tr.defaults.append((d.key, d.value, d.ours, value, d.source))
        if d.key == "seed":  # LLaMA-Factory's seed also shuffles, splits and mixes the data
            _set(tr.config, "data.seed", value)


def _tokenized_path(value, raw: dict, tr: Translation, where: str) -> None:
    """LLaMA-Factory's tokenized_path: a folder not there yet means a preprocess-only run (tokenize, save, stop),
    which is not a training run here; an existing one is its cache, which Airlock does not need."""
    if value in (None, ""):
        tr.not_needed.append(("tokenized_path", value, "off"))
        return
    if Path(str(value)).expanduser().exists():
        tr.not_needed.append(("tokenized_path", value, "LLaMA-Factory's tokenized cache: Airlock tokenizes the dataset "
                                                      "files and caches the result itself"))
        return
    stage = str(raw.get("stage", "sft"))
    if stage not in ("sft", "pt"):  # trl tokenizes DPO and KTO data inside the run: there is nothing to cache
        raise AirlockError(f"this YAML only tokenizes (tokenized_path {value} does not exist yet), and stage {stage} "
                           "data is tokenized inside the training run here", where=where, code="lf.preprocess_only",
                           fix="remove tokenized_path and train: the data is read and tokenized then")
    tr.preprocess_only = str(value)
    tr.not_needed.append(("tokenized_path", value, "a preprocess-only run: `airlock train --from-llamafactory` "
                                                   "tokenizes the data into Airlock's cache and stops"))
    tr.notes.append(f"tokenized_path {value} does not exist yet: as in LLaMA-Factory, this YAML tokenizes the data "
                    "and stops (Airlock caches the tokens under its home and makes the folder, so the same YAML "
                    "then trains, reading them from the cache)")


def _scale_out(key: str, value, put, tr, where: str) -> None:
    """LLaMA-Factory's multi-GPU keys -> the distributed section. The process count is not in its YAMLs (it comes
    from NPROC_PER_NODE/FORCE_TORCHRUN), so the translation notes where it goes here."""
    if value in (None, "", False):
        tr.not_needed.append((key, value, "off"))
        return
    if key == "deepspeed":  # LLaMA-Factory's examples/deepspeed/ds_z{0,2,3}[_offload]_config.json
        path = Path(str(value)).expanduser()
        stage = re.search(r"z(\d)", path.name)
        if path.is_file():
            put(key, value, "distributed.strategy", "deepspeed")
            put(key, value, "distributed.deepspeed", str(path.resolve()))
        elif stage and stage.group(1) in ("2", "3"):
            put(key, value, "distributed.strategy", "deepspeed")
            put(key, value, "distributed.deepspeed", f"zero{stage.group(1)}")
            tr.notes.append(f"deepspeed {value}: the file is not here; Airlock's zero{stage.group(1)} preset is used")
        elif stage and stage.group(1) == "0":
            put(key, value, "distributed.strategy", "ddp")  # ZeRO stage 0 is plain data parallelism
        else:
            raise AirlockError(f"deepspeed config {value} not found", where=where,
                               fix="run from the folder the path is relative to (LLaMA-Factory resolves it against "
                                   "the current directory), or name a ds_z2/ds_z3 config")
    elif key == "fsdp":  # transformers' option string, e.g. "full_shard auto_wrap offload"
        # a string ("full_shard auto_wrap") or, as some of LLaMA-Factory's examples write it, a YAML list
        words = ["full_shard"] if isinstance(value, bool) else [str(w) for w in value] if isinstance(value, list) \
            else str(value).split()
        unknown = [w for w in words if w not in ("full_shard", "shard_grad_op", "auto_wrap", "offload")]
        if unknown:
            raise AirlockError(f"fsdp option(s) {', '.join(unknown)} are not offered", where=where,
                               fix="use full_shard or shard_grad_op, with auto_wrap and offload as needed")
        put(key, value, "distributed.strategy", "fsdp")
        put(key, value, "distributed.fsdp.sharding", "shard_grad_op" if "shard_grad_op" in words else "full_shard")
        if "offload" in words:
            put(key, value, "distributed.fsdp.offload_params", True)
    else:  # fsdp_config
        table = {"transformer_layer_cls_to_wrap": "distributed.fsdp.wrap",
                 "activation_checkpointing": "distributed.fsdp.activation_checkpointing"}
        for sub, sub_value in (value or {}).items():
            if sub in table:
                put(f"fsdp_config.{sub}", sub_value, table[sub], sub_value)
            else:
                tr.unsupported.append((f"fsdp_config.{sub}", sub_value, "Airlock sets this FSDP option itself"))
    tr.notes.append("processes: LLaMA-Factory takes them from NPROC_PER_NODE; here `--nproc-per-node N` (and "
                    "`--nnodes/--node-rank/--master-addr` across hosts), see docs/distributed.md")


def _quantization(raw: dict, method: str, where, known: set) -> int | None:
    """The quantization bits after refusing, by name, every combination this version cannot train."""
    qmethod = str(raw.get("quantization_method") or "bitsandbytes").lower()
    if qmethod not in BNB:
        why = QUANT_METHODS.get(qmethod, "not a quantization method LLaMA-Factory offers")
        raise AirlockError(f"quantization_method {qmethod!r} is not offered: {why}", where=where("quantization_method"),
                           fix="train QLoRA on the full-precision model (quantization_method: bitsandbytes, "
                               "quantization_bit: 4), or plain LoRA without quantization")
    bits = raw.get("quantization_bit")
    if bits not in (None, 4):
        why = "8-bit (LLM.int8) training" if bits == 8 else f"{bits}-bit training"
        raise AirlockError(f"quantization_bit {bits} is not offered: {why} is not available; QLoRA here quantizes "
                           "the base to 4-bit NF4", where=where("quantization_bit"),
                           fix="use 4 (QLoRA, NF4), or remove it for LoRA on the full-precision base")
    if bits == 4 and method == "full":
        raise AirlockError("quantization_bit 4 needs finetuning_type lora (QLoRA)", where=where("quantization_bit"),
                           fix="set finetuning_type: lora, or remove quantization_bit for full fine-tuning")
    if bits != 4:
        return bits
    qtype = str(raw.get("quantization_type", "nf4")).lower()
    if qtype not in ("nf4", "fp4"):
        raise AirlockError(f"quantization_type {qtype} is not offered: QLoRA quantizes the base to nf4 or fp4 "
                           "(bitsandbytes' 4-bit types)", where=where("quantization_type"),
                           fix="use quantization_type: nf4 (LLaMA-Factory's default) or fp4")
    return bits


def _dataset_dir(value, where: str) -> str:
    """dataset_dir as LLaMA-Factory reads it: relative to the current directory; hub forms are refused."""
    text = str(value)
    if text == "ONLINE" or text.startswith("REMOTE:"):
        raise AirlockError(f"dataset_dir {text} downloads datasets from a hub; this host is offline", where=where,
                           fix="copy the data and its dataset_info.json into a folder and name that folder")
    folder = Path(text).expanduser()
    return str((folder if folder.is_absolute() else Path.cwd() / folder).resolve())


def finish(tr: Translation, overrides: list[str] | None = None, lenient: bool = False, check: bool = True,
           strict: bool = False):
    """The validated TrainConfig (with `--set` overrides applied last); with `check`, the data is checked too
    (dataset, records, columns, chat template) so nothing is left to fail inside a job. A key that would change
    what is trained and cannot be honoured is refused unless `lenient` (then it is listed and the run goes on
    without it); `strict` refuses the listed-only keys (evaluation, caching) as well."""
    from ..train.config import from_dict

    refused = [k for k, _, _ in tr.unsupported] if strict else ([] if lenient else tr.blocking)
    if refused:
        raise AirlockError(f"{len(refused)} setting(s) would change what is trained and cannot be honoured here: "
                           f"{', '.join(refused)}" if not strict else
                           f"{len(refused)} setting(s) cannot be honoured: {', '.join(refused)}",
                           where=str(tr.source), code="lf.unsupported",
                           fix="remove them (the reasons are listed above), or run with --lenient to train without "
                               "them" if not strict else "remove them, or drop --strict")
    config, where = tr.config, f"{tr.source} (translated from LLaMA-Factory)"
    if overrides:
        config, where = schema.merge(config, schema.parse_overrides(overrides)), where[:-1] + ", with --set)"
    cfg = from_dict(config, where=where)
    if check:
        from ..data.preflight import check_data

        check_data(cfg.data, _model_dir(cfg), cfg.stage)
    return cfg


def _model_dir(cfg):
    """The base model's directory when it resolves here (the training preflight reports it when it does not)."""
    if cfg.adapter and not cfg.model:
        return None
    from ..train.common import resolve_base

    try:
        return resolve_base(cfg.model)[1]
    except AirlockError:
        return None


def to_train_config(tr: Translation):
    """The validated TrainConfig of a translation (the same checks `airlock train CONFIG` makes), data unchecked;
    what cannot be honoured is left out (it is listed in the translation)."""
    return finish(tr, lenient=True, check=False)


def load_train_config(path, lenient: bool = False, check: bool = True):
    """(TrainConfig, Translation) for a YAML, its data checked; a key that cannot be honoured is refused unless
    `lenient`."""
    tr = translate(path)
    return finish(tr, lenient=lenient, check=check), tr
