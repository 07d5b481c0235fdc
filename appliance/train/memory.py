"""The memory planner: a training run's peak memory per rank, estimated from the model's architecture alone
(transformers' config built on the meta device: no weights read), before anything loads.

    airlock train CONFIG --plan [--gpu-mem 24]     # the estimate, whether it fits, and what to change if not

The estimate adds up what a run keeps: the base weights (fp32 for full fine-tuning, the compute dtype for LoRA, NF4
4-bit with fp32 embeddings for QLoRA), the trained weights' gradients and AdamW's two moments, the activations
saved for backward (per token and layer, from the widths; with gradient checkpointing only each layer's input plus
one layer recomputed), the loss's logits (Airlock's loss projects a chunk of labelled rows at a time through a
frozen head), and the process itself (on a CPU: the Python stack; on a GPU: not counted by PyTorch, the CUDA
context, stated apart). Loading adds a transient peak on the host: the weights file mapped while the model is
built. FSDP and ZeRO-3 shard weights, gradients and moments across ranks; ZeRO-1/2 the moments (and gradients).

The factors below were calibrated against measured peak RSS on a CPU (`python -m bench.plan_memory`: twins of
several shapes, every method); README gives the table. On a GPU the same terms are the model for
torch.cuda.max_memory_allocated; the GPU acceptance script compares them where a GPU was lent.
"""

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AirlockError

GIB = 1 << 30
# Fitted to measured peak RSS on a CPU (bench/plan_memory.py, 9 runs of 6 shapes, fp32): the Python training stack
# once imported with its tokenizer and data (CPU_PROCESS), and the activations saved for backward per token and
# layer: ACT_H floats per hidden (or query, when wider) unit and ACT_I per MLP unit. On a CPU activations are fp32
# whatever the dtype (CPU autocast keeps norms, softmax and the loss in fp32); on a GPU they take the compute dtype.
CPU_PROCESS = 700 << 20
CUDA_CONTEXT = 600 << 20
ACT_H, ACT_I = 12.4, 5.0
HEAD_CHUNK = 128  # loss.HeadNLL's rows a chunk
NF4_BYTES = {True: 0.5 + 0.127 / 8, False: 0.5 + 0.5 / 8}  # per weight, with / without double quantization


@dataclass
class Architecture:
    """What the planner needs of a model, read from its config on the meta device."""

    name: str
    hidden: int
    layers: int
    intermediate: int
    vocab: int
    q_dim: int
    kv_dim: int
    params: int
    linears: dict[str, tuple[int, int]]  # qualified name -> (in, out) of every nn.Linear but the output head
    embed_params: int
    head_params: int  # 0 when tied to the embedding
    file_bytes: int = 0  # the weights on disk (0: unknown, e.g. a catalog model not installed)

    @property
    def linear_params(self) -> int:
        return sum(i * o for i, o in self.linears.values())


def architecture(model_ref: str) -> Architecture:
    """The architecture of a model reference: a local or cached model's config.json, else a catalog card's shape."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from .. import catalog
    from .common import resolve_base

    card, path, config = catalog.find(model_ref) if model_ref else catalog.default_card(), None, None
    try:
        path = resolve_base(model_ref)[1]
        config = AutoConfig.from_pretrained(path)
    except AirlockError:
        if card is None:
            raise
        from ..twin import twin_config

        config = twin_config(card)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return _measure(model, config, model_ref or card.id, path)


def _measure(model, config, name: str, path: Path | None) -> Architecture:
    import torch

    text = config.get_text_config()
    head = model.get_output_embeddings()
    embed = model.get_input_embeddings()
    linears = {n: (m.in_features, m.out_features) for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and m is not head}
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    tied = head is not None and head.weight is embed.weight
    files = sum(p.stat().st_size for p in Path(path).glob("*.safetensors")) if path else 0
    return Architecture(name, text.hidden_size, text.num_hidden_layers, text.intermediate_size, text.vocab_size,
                        heads * head_dim, text.num_key_value_heads * head_dim,
                        sum(p.numel() for p in model.parameters()), linears, embed.weight.numel(),
                        0 if tied or head is None else head.weight.numel(), files)


@dataclass
class MemoryPlan:
    device: str  # cuda | cpu
    ranks: int
    parts: dict[str, int]  # what the device holds at the step's peak, per rank
    peak: int  # per rank, on the device (on a CPU: the process's RAM)
    host: int  # host RAM per rank process, including the transient peak while loading
    capacity: int | None = None  # the device's memory, detected or given
    advice: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool | None:
        return None if self.capacity is None else self.peak <= self.capacity

    def to_dict(self) -> dict:
        return {"device": self.device, "ranks": self.ranks, "parts": self.parts, "peak": self.peak,
                "host": self.host, "capacity": self.capacity, "fits": self.fits, "advice": self.advice}


def _dtype_bytes(dtype: str) -> int:
    return 4 if dtype == "fp32" else 2


def _lora_params(cfg, arch: Architecture, card) -> int:
    from .common import lora_targets

    targets = lora_targets(cfg, card)
    chosen = [(i, o) for n, (i, o) in arch.linears.items()
              if targets == "all-linear" or n.rsplit(".", 1)[-1] in targets]
    return sum(cfg.lora_rank * (i + o) for i, o in chosen), chosen


def _activations(cfg, arch: Architecture, chosen: list, compute: int, device: str) -> int:
    """Bytes saved for backward in one micro-batch of cutoff_len-long samples. On a GPU peft's LoRA dropout keeps
    a dropped copy of each adapted layer's input (Airlock's CPU path keeps a bool mask instead, in the fit);
    checkpointing keeps one input per layer plus one layer's worth while it is recomputed."""
    tokens = cfg.per_device_train_batch_size * cfg.data.cutoff_len
    c = 4 if device == "cpu" else compute
    per_layer = c * (ACT_H * max(arch.hidden, arch.q_dim) + ACT_I * arch.intermediate)
    if device != "cpu" and chosen and cfg.lora_dropout:
        per_layer += c * sum(i for i, _ in chosen) / arch.layers
    if cfg.gradient_checkpointing:
        return int(tokens * (arch.hidden * c * arch.layers + per_layer))
    return int(tokens * per_layer * arch.layers)


def _logits(cfg, arch: Architecture, trained_head: bool) -> int:
    """The loss's peak: a frozen head runs HEAD_CHUNK rows at a time; a trained one (full) all labelled rows."""
    rows = cfg.per_device_train_batch_size * cfg.data.cutoff_len if trained_head else HEAD_CHUNK
    return rows * arch.vocab * 4 * 3


def _sharding(cfg, ranks: int) -> tuple[float, float, float]:
    """Fractions of (weights, gradients, optimizer moments) each rank holds: DDP everything; ZeRO-2-like sharding
    (fsdp shard_grad_op, deepspeed zero2) splits gradients and moments; ZeRO-3-like (fsdp full_shard, deepspeed
    zero3) the weights too."""
    d = cfg.distributed
    if ranks <= 1 or d.strategy == "ddp":
        return 1.0, 1.0, 1.0
    stage3 = (d.strategy == "fsdp" and d.fsdp.sharding == "full_shard") or \
        (d.strategy == "deepspeed" and d.deepspeed == "zero3")
    return (1 / ranks if stage3 else 1.0), 1 / ranks, 1 / ranks


def estimate(cfg, arch: Architecture, device: str, card=None, capacity: int | None = None) -> MemoryPlan:
    compute = _dtype_bytes(cfg.dtype)
    ranks = cfg.distributed.world_size if cfg.distributed.enabled else 1
    w_frac, g_frac, o_frac = _sharding(cfg, ranks)
    if cfg.method == "full":
        weights, trainable, chosen = arch.params * 4, arch.params, []
    else:
        trainable, chosen = _lora_params(cfg, arch, card)
        if cfg.method == "qlora":
            quantized = arch.linear_params
            weights = int(quantized * NF4_BYTES[bool(cfg.double_quantization)]
                          + (arch.params - quantized) * 4)  # embeddings, head and norms in fp32
        else:
            weights = arch.params * compute
    parts = {"weights": int(weights * w_frac), "gradients": int(trainable * 4 * g_frac),
             "optimizer": int(trainable * 8 * o_frac),
             "activations": int(_activations(cfg, arch, chosen, compute, device)),
             "logits": _logits(cfg, arch, cfg.method == "full")}
    if device == "cpu" and cfg.method == "qlora":
        parts["dequantized"] = arch.linear_params * 4  # bitsandbytes' CPU path keeps each layer's fp32 weights
    if device == "cpu":
        parts["process"] = CPU_PROCESS
    peak = sum(parts.values())
    # Loading: the weights file is mapped while the model is built from it (on a GPU the copy lands on the device).
    load = (CPU_PROCESS if device == "cpu" else CPU_PROCESS // 2) + arch.file_bytes + (
        parts["weights"] if device == "cpu" else 0)
    host = max(peak if device == "cpu" else CPU_PROCESS, load)
    plan = MemoryPlan(device, ranks, parts, peak, host, capacity)
    plan.advice = advice(cfg, plan) if plan.fits is False else []
    return plan


def advice(cfg, plan: MemoryPlan) -> list[str]:
    """What to change when the run does not fit, the biggest part first."""
    parts, tips = plan.parts, []
    order = sorted(parts, key=parts.get, reverse=True)
    for part in order:
        if part == "activations":
            if not cfg.gradient_checkpointing:
                tips.append("gradient_checkpointing: true (keeps one input per layer; about 0.7x the speed)")
            tips.append(f"a smaller per_device_train_batch_size (now {cfg.per_device_train_batch_size}) with "
                        "gradient_accumulation_steps to keep the batch, or a shorter data.cutoff_len "
                        f"(now {cfg.data.cutoff_len})")
        elif part in ("weights", "optimizer", "gradients") and cfg.method == "full":
            tips.append("method: lora (only the adapters are trained: no full gradients or moments)")
        elif part == "weights" and cfg.method == "lora":
            tips.append("method: qlora (the base in 4 bits)" + ("" if cfg.dtype != "fp32" else
                                                               ", or dtype: bf16 (a 16-bit base)"))
        elif part == "weights" and cfg.method == "qlora" and plan.ranks > 1:
            tips.append("distributed.strategy: fsdp (shards the weights across the GPUs)")
    if plan.ranks == 1 and cfg.method == "full":
        tips.append("several GPUs with distributed.strategy: fsdp (weights, gradients and moments sharded)")
    return list(dict.fromkeys(tips))[:4]


def device_capacity(gpu_mem_gb: float | None) -> tuple[str, int | None]:
    """(device, bytes it holds) of this host: the GPU's memory (or `gpu_mem_gb` as given), or on a CPU host the
    memory available to this process."""
    if gpu_mem_gb:
        return "cuda", int(gpu_mem_gb * GIB)
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.cuda.get_device_properties(0).total_memory
    import psutil

    return "cpu", psutil.virtual_memory().available


def human(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / 2**20:.0f} MiB"


def render(plan: MemoryPlan, arch: Architecture, cfg) -> str:
    where = "per GPU" if plan.device == "cuda" else "RAM (CPU run)"
    lines = [f"memory plan: {arch.name} ({arch.params / 1e9:.2f} B parameters), {cfg.method} {cfg.dtype}, batch "
             f"{cfg.per_device_train_batch_size} x {cfg.data.cutoff_len} tokens"
             + (", gradient checkpointing" if cfg.gradient_checkpointing else "")
             + (f", {plan.ranks} ranks ({cfg.distributed.strategy})" if plan.ranks > 1 else "")]
    lines += [f"  {part:<12} {human(size):>10}" for part, size in plan.parts.items()]
    lines.append(f"  {'peak':<12} {human(plan.peak):>10}  {where}"
                 + (f" (plus about {human(CUDA_CONTEXT)} of CUDA context)" if plan.device == "cuda" else ""))
    lines.append(f"  {'host RAM':<12} {human(plan.host):>10}  per rank, including loading")
    if plan.capacity is not None:
        verdict = "fits" if plan.fits else "does NOT fit"
        lines.append(f"  {verdict} in {human(plan.capacity)}" + (" (GPU)" if plan.device == "cuda" else
                                                                   " (available RAM)"))
    lines += [f"  to fit: {tip}" for tip in plan.advice]
    return "\n".join(lines)


def plan_for(cfg, gpu_mem_gb: float | None = None) -> tuple[MemoryPlan, Architecture]:
    from .. import catalog

    arch = architecture(cfg.model)
    device, capacity = device_capacity(gpu_mem_gb)
    card = catalog.find(cfg.model) if cfg.model else catalog.default_card()
    return estimate(cfg, arch, device, card, capacity), arch


def check_fits(cfg, gpu_mem_gb: float | None = None) -> None:
    """Preflight: refuse a GPU run whose estimate exceeds the GPU (this host's, or `gpu_mem_gb`), naming the
    estimate and what to change. A CPU run is not refused (the OS can page, slowly); `--plan` shows its figure."""
    plan, arch = plan_for(cfg, gpu_mem_gb)
    if plan.device == "cuda" and plan.fits is False:
        parts = ", ".join(f"{k} {human(v)}" for k, v in plan.parts.items())
        raise AirlockError(f"this run needs about {human(plan.peak)} per GPU ({parts}) and the GPU has "
                           f"{human(plan.capacity)}", where="config", code="plan.does_not_fit",
                           fix="; or ".join(plan.advice) or "use a GPU with more memory")
