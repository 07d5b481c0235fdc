"""The `distributed:` section of a training config: how many processes train together, where they meet, and how
the model is split across them. Light to import (no torch); the launcher is appliance/train/distributed.py.

    distributed:                 # 2 hosts x 8 GPUs; each host runs `airlock train CONFIG --node-rank N`
      nproc_per_node: 8
      nnodes: 2
      master_addr: 10.0.0.1
      strategy: fsdp
      fsdp: {sharding: full_shard}
      allow: [10.0.0.0/24]

Each key's help is in its field (docs/config.md lists them); validate() checks every key, and settings of a
strategy that is not chosen are an error.
"""

from dataclasses import dataclass, fields
from typing import Literal

from ..errors import AirlockError
from ..schema import setting

STRATEGIES = ("ddp", "fsdp", "deepspeed")
DEEPSPEED_PRESETS = ("zero2", "zero3")
DEFAULT_MULTINODE_PORT = 29500  # torchrun's default, so a site's firewall rule for it applies


@dataclass
class FsdpSettings:
    """PyTorch's FSDP2 (strategy fsdp): how weights, gradients and optimizer states are split across the ranks.
    Each key's help is in its field's metadata (schema.setting; docs/config.md)."""

    sharding: Literal["full_shard", "shard_grad_op"] = setting(
        "full_shard", "full_shard splits weights too (least memory); shard_grad_op grads+optimizer",
        detail="full_shard is like ZeRO-3 (weights gathered again for the backward pass); shard_grad_op, like "
               "ZeRO-2, keeps the gathered weights from the forward pass to the backward (faster, more memory).")
    offload_params: bool = setting(False, "keep FSDP shards in CPU memory: fits more, runs slower")
    wrap: list[str] = setting(help="layer classes sharded as units (empty = the model's decoder layers)",
                              default_factory=list)
    activation_checkpointing: bool = setting(
        False, "recompute activations in the backward pass: less memory, ~1/3 more compute")


@dataclass
class DistributedConfig:
    """Several processes training one model: how many on each host, how many hosts, where they meet, how the
    model is split. Each key's help is in its field's metadata (schema.setting; docs/config.md)."""

    nproc_per_node: int = setting(1, "processes (ranks) on this host: one per GPU (on CPU they share the cores)")
    nnodes: int = setting(1, "hosts in the run (each runs the same config with its own node_rank)")
    node_rank: int = setting(0, "this host's number, 0..nnodes-1; 0 is the host at master_addr")
    master_addr: str = setting("127.0.0.1", "address of the node-rank-0 host, where the ranks meet (rendezvous)")
    master_port: int | None = setting(None, "rendezvous port (empty = a free one on one host, 29500 across hosts)")
    backend: Literal["auto", "gloo", "nccl"] = setting("auto", "collective backend; auto = nccl on GPUs, gloo on CPU")
    strategy: Literal["ddp", "fsdp", "deepspeed"] = setting(
        "ddp", "ddp: a full copy per rank (fastest); fsdp, deepspeed: split it to fit more",
        detail="fsdp and deepspeed split weights, gradients and optimizer states across the ranks; "
               "settings of a strategy that is not chosen are an error, never ignored.")
    fsdp: FsdpSettings = setting(help="FSDP settings (strategy fsdp only)", default_factory=FsdpSettings)
    deepspeed: str = setting(
        "", "zero2, zero3 or a DeepSpeed JSON file (strategy deepspeed only; empty = zero2)",
        detail="DeepSpeed needs CUDA GPUs.")
    timeout_s: int = setting(600, "seconds a rank waits for the others before the run fails (never a hang)",
                             detail="At least 10; the default leaves room for a slow checkpoint.")
    allow: list[str] = setting(
        help="site addresses/networks the ranks may reach besides master_addr (offline guard)", default_factory=list,
        detail="Addresses, CIDR networks or host names of the site's other hosts.")

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def port(self) -> int | None:
        """The rendezvous port: the configured one, 29500 across hosts, None (pick a free one) on one host."""
        return self.master_port or (DEFAULT_MULTINODE_PORT if self.nnodes > 1 else None)

    def validate(self) -> None:
        for name in ("nproc_per_node", "nnodes"):
            if getattr(self, name) < 1:
                raise AirlockError(f"distributed.{name} must be at least 1, got {getattr(self, name)}",
                                   where=f"distributed.{name}")
        if not 0 <= self.node_rank < self.nnodes:
            raise AirlockError(f"distributed.node_rank {self.node_rank} is outside 0..{self.nnodes - 1}",
                               where="distributed.node_rank", fix="number the hosts 0 to nnodes-1; 0 is the host "
                               "at master_addr")
        if self.master_port is not None and not 0 < self.master_port < 65536:
            raise AirlockError(f"distributed.master_port {self.master_port} is not a TCP port",
                               where="distributed.master_port")
        if self.timeout_s < 10:
            raise AirlockError(f"distributed.timeout_s {self.timeout_s} is too short to be safe", fix="at least 10 "
                               "(the default 600 leaves room for a slow checkpoint)", where="distributed.timeout_s")
        if self.nnodes > 1 and self.master_addr.startswith(("127.", "localhost", "::1")):
            raise AirlockError(f"with nnodes {self.nnodes}, master_addr {self.master_addr} cannot be reached from "
                               "the other hosts", where="distributed.master_addr",
                               fix="give the address of the node-rank-0 host on the site's network")
        if self.strategy != "fsdp" and self.fsdp != FsdpSettings():
            changed = [f.name for f in fields(FsdpSettings) if getattr(self.fsdp, f.name) !=
                       getattr(FsdpSettings(), f.name)]
            raise AirlockError(f"distributed.fsdp ({', '.join(changed)}) is set but strategy is {self.strategy}",
                               where="distributed.fsdp", fix="set distributed.strategy: fsdp, or remove fsdp")
        if self.deepspeed and self.strategy != "deepspeed":
            raise AirlockError(f"distributed.deepspeed is set but strategy is {self.strategy}",
                               where="distributed.deepspeed", fix="set distributed.strategy: deepspeed")
        if self.strategy == "deepspeed" and self.deepspeed and self.deepspeed not in DEEPSPEED_PRESETS \
                and not self.deepspeed.endswith(".json"):
            raise AirlockError(f"distributed.deepspeed {self.deepspeed!r} is neither a preset nor a JSON file",
                               where="distributed.deepspeed", fix="zero2, zero3, or the path of a DeepSpeed JSON "
                               "config")
        _check_allow(self.allow)


def _check_allow(entries: list[str]) -> None:
    import ipaddress

    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if not entry or any(c in entry for c in "/ *"):
                raise AirlockError(f"distributed.allow entry {entry!r} is not an address, network or host name",
                                   where="distributed.allow", fix="e.g. 10.0.0.2, 10.0.0.0/24 or gpu-node-2")
