"""What this host can train with: the device, whether a compute dtype works on it, how many CPU threads to use.

Checked before any weights load, so `fp16` on a CPU host fails in a second with a fix, not after minutes.
"""

from ..errors import AirlockError


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_dtype(dtype: str, method: str, where: str = "dtype") -> str:
    """Refuse a compute dtype the hardware cannot run; returns the device the run will use."""
    import torch

    dev = device()
    if dtype == "fp16" and dev == "cpu":
        raise AirlockError("fp16 needs a GPU and this host has none (PyTorch sees no CUDA device)", where=where,
                           fix="use dtype: bf16 (mixed precision on CPU) or fp32")
    if dtype == "bf16" and dev == "cuda" and not torch.cuda.is_bf16_supported():
        raise AirlockError(f"this GPU ({torch.cuda.get_device_name(0)}) cannot compute in bf16", where=where,
                           fix="use dtype: fp16 or fp32")
    if method == "qlora":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise AirlockError(f"QLoRA needs bitsandbytes, which does not import here: {exc}", where="method",
                               fix="use method: lora, or install the bundled bitsandbytes wheel") from None
    return dev


def torch_dtype(dtype: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]


def set_threads(num_threads: int | None) -> int:
    """Use the CPUs this process may actually use (affinity and cgroup quota, see appliance.cpus), shared evenly by
    the ranks of a distributed run on this host, unless told otherwise; say so when other Airlock jobs already
    share them."""
    import torch

    from .. import cpus
    from .ranks import local_world_size

    n = num_threads or max(1, cpus.available() // local_world_size())
    torch.set_num_threads(n)
    warning = cpus.busy_warning("this training run")
    if warning:
        print(warning, flush=True)
    return n


def checkpoint_bytes(model) -> int:
    """What one checkpoint of `model` takes: its trainable weights, and Adam's two moments for each (fp32)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable * 4 * 3 + (1 << 20)  # + trainer state, RNG, scheduler and config files


def check_disk(model, cfg, out_dir) -> None:
    """Refuse to start when the job's disk cannot hold its checkpoints (save_total_limit of them, plus the one
    being written) and the final save; the sizes are exact for the model as loaded."""
    import shutil

    need = checkpoint_bytes(model) * ((cfg.save_total_limit or 1) + 2)
    free = shutil.disk_usage(out_dir).free
    if free < need:
        raise AirlockError(f"this job needs about {need / 2**20:.0f} MiB for its checkpoints and result, and "
                           f"{free / 2**20:.0f} MiB are free", where=str(out_dir),
                           fix="free some space, or lower save_total_limit (--set save_total_limit=1)")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
