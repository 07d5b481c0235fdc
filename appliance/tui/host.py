"""Facts about this host for display: GPUs (NVML when pynvml is installed), CPU and RAM (psutil), disk free.

Used by the Home screen and the Train screen's memory estimate. Nothing here changes any state.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3


@dataclass
class Gpu:
    index: int
    name: str
    used_gb: float
    total_gb: float
    utilization: int | None  # percent


def gpus() -> list[Gpu]:
    """Every NVIDIA GPU NVML can see; [] when pynvml is absent or there is no driver (then the host is CPU-only)."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver, no device: NVMLError subclasses
        return []
    found = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                util = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            except Exception:  # not supported on some devices (MIG slices)
                util = None
            found.append(Gpu(i, name.decode() if isinstance(name, bytes) else str(name),
                             mem.used / GIB, mem.total / GIB, util))
    finally:
        pynvml.nvmlShutdown()
    return found


@dataclass
class Cpu:
    cores: int
    percent: float
    ram_used_gb: float
    ram_total_gb: float


def cpu() -> Cpu:
    import psutil

    vm = psutil.virtual_memory()
    return Cpu(psutil.cpu_count() or 1, psutil.cpu_percent(interval=None), (vm.total - vm.available) / GIB,
               vm.total / GIB)


def disk_free(path: Path) -> tuple[float, float]:
    """(free GiB, total GiB) of the file system holding `path` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    return usage.free / GIB, usage.total / GIB


def installed_models() -> list[str]:
    """Repo ids with a snapshot in the local Hugging Face cache (models--org--name/snapshots/*)."""
    from ..paths import hf_cache

    root = hf_cache()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.glob("models--*")):
        snapshots = folder / "snapshots"
        if snapshots.is_dir() and any(snapshots.iterdir()):
            found.append(folder.name[len("models--"):].replace("--", "/"))
    return found
