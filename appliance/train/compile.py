"""torch_compile: each decoder layer compiled by torch.compile (TorchInductor) before training.

Why layers and not the whole model: every decoder layer of a model runs the same code, so one compiled graph serves
them all (torch.compile treats the layer's weights as inputs), the compile is paid once per shape family rather
than per layer, and the embedding, LM head and loss (appliance/train/loss.py's chunked head) stay as they are.
Shapes are compiled as dynamic: padding-free rows change length every step.

What it buys is measured, not assumed. On a GPU it pays: on an H200 (bench/gpu/run.py, SmolLM2-135M LoRA bf16,
batch 8) 2035 non-pad tokens/s against 1268 uncompiled (1.60x), after a first step of 46 s that compiles. On a CPU
it does not: the CPU path is already hand-fused (dropout.py, lora_forward.py, swiglu.py, loss.py), the per-sample
attention splits each layer's graph in two, and on 2 cores compiled steps ran at 0.86-0.96x the uncompiled ones
(`python -m bench.train_measure --set torch_compile=...`, interleaved), after a first step of 20-60 s. A CPU run is therefore
told so when it starts. The price everywhere is that one-off compile (shorter once torch's on-disk compile cache
holds the graphs) and a C++ compiler on the host (g++, or the one named by $CXX; on a GPU, Triton also builds a
small C launcher with it). Under compilation the LoRA dropout mask is drawn by inductor's own generator
(dropout.py), so a compiled run is not bit-identical to an uncompiled one at the same seed.

    from appliance.train.compile import check_compiler, compile_layers
    check_compiler()           # preflight: an AirlockError naming torch_compile when no compiler is found
    compile_layers(model)      # before trainer.train(); returns how many layers were compiled
"""

from ..errors import AirlockError

FIX = "install a C++ compiler on this host (e.g. g++; or name one in $CXX), or set torch_compile: false"
# Graphs dynamo keeps per compiled code object before it falls back to running it uncompiled. Training compiles
# the layer for train mode, and an evaluation pass for eval mode; more room than the default 8 so that a model
# whose layers differ (e.g. sliding and full attention) keeps every variant compiled.
RECOMPILE_LIMIT = 64


def check_compiler() -> None:
    """Quick: a C++ compiler torch's inductor would use is found (no compile is run)."""
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception as exc:  # inductor raises its own InvalidCxxCompiler (and OSError from the search)
        raise AirlockError(f"torch_compile needs a C++ compiler and none was found: {exc}".strip(),
                           where="torch_compile", fix=FIX) from None


def _probe() -> None:
    """Compile and run one small function, so a host where compiling fails (no compiler, no Python headers) is
    told so by name before the model is touched, not by a traceback from inside the first training step."""
    import torch

    try:
        torch.compile(lambda x: torch.sin(x) * 2 + 1, dynamic=False)(torch.ones(4))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AirlockError(f"torch_compile cannot compile on this host: {first}", where="torch_compile",
                           fix=FIX) from None


def decoder_layers(model) -> list:
    """The model's decoder layers: transformers marks each with GradientCheckpointingLayer."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


def compile_layers(model) -> int:
    """Compile every decoder layer of `model` in place (its state dict and saved adapters are unchanged)."""
    import torch._dynamo

    layers = decoder_layers(model)
    if not layers:
        raise AirlockError(f"torch_compile: no decoder layers found in {type(model).__name__}", where="torch_compile",
                           fix="set torch_compile: false for this model")
    _probe()
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)
