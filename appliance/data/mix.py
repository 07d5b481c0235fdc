"""Several datasets into one training list, the way LLaMA-Factory does it: sample and cap each, then mix.

    from appliance.data.mix import mix
    conversations, report = mix(loaded.conversations, cfg, loaded.num_samples)

Per dataset (a dataset_info.json key; a plain file is one dataset), in LLaMA-Factory's order:
1. num_samples (a dataset_info.json entry key): draw N records, each once before any repeats, seeded by
   data.seed (LLaMA-Factory draws from numpy's global generator: the same rule, other draws);
2. max_samples: keep the first N (LLaMA-Factory truncates each dataset, not the mixture).
Then mix_strategy:
- concat: the datasets one after the other (the default);
- interleave_under: one record from each in turn until the shortest is used up (equal shares, the rest unused),
  or with interleave_probs a dataset drawn at random for every record until one dataset is used up;
- interleave_over: the same until every dataset has been used once, the shorter ones starting over (oversampling).
These are the stopping rules of Hugging Face's interleave_datasets, which LLaMA-Factory calls; the random draws
use numpy's default_rng(data.seed) as that function does.
"""

import random

from . import clean
from .config import DataConfig


def mix(conversations: list, cfg: DataConfig, num_samples: dict[str, int] | None = None) -> tuple[list, dict]:
    """(the mixed list, counts): removed_max_samples (all datasets), and per dataset what was read and kept."""
    groups: dict[str, list] = {}
    for conv in conversations:  # first appearance = the order of data.dataset (files are read in that order)
        groups.setdefault(getattr(conv, "dataset", ""), []).append(conv)
    shaped, per, removed = [], {}, 0
    for name, convs in groups.items():
        read = len(convs)
        if num_samples and num_samples.get(name):
            convs = draw(convs, num_samples[name], random.Random(f"{cfg.seed}:{name}"))
        convs, dropped = clean.take(convs, cfg.max_samples)
        removed += dropped
        per[name or "(file)"] = {"records": read, "kept": len(convs)}
        shaped.append(convs)
    if len(shaped) <= 1 or cfg.mix_strategy == "concat":
        mixed = [c for convs in shaped for c in convs]
    else:
        mixed = interleave(shaped, cfg.interleave_probs, cfg.seed, until_all=cfg.mix_strategy == "interleave_over")
    return mixed, {"removed_max_samples": removed, "mix_strategy": cfg.mix_strategy, "datasets": per,
                   "mixed": len(mixed)}


def draw(items: list, n: int, rng: random.Random) -> list:
    """n items: a shuffled pass over all of them first, then random repeats when n is larger."""
    order = rng.sample(range(len(items)), min(n, len(items)))
    order += [rng.randrange(len(items)) for _ in range(n - len(order))]
    return [items[i] for i in order]


def interleave(groups: list[list], probs: list[float], seed: int, until_all: bool) -> list:
    """Records taken from `groups` in turn (no probs) or drawn by `probs`, until one (or every) group is used up."""
    groups = [g for g in groups if g]
    lengths = [len(g) for g in groups]
    if not probs:
        rounds = max(lengths) if until_all else min(lengths)
        return [groups[d][i % lengths[d]] for i in range(rounds) for d in range(len(groups))]
    import numpy as np

    p = np.asarray(probs, dtype=float) / sum(probs)
    # A dataset with probability 0 is never drawn: it cannot be used up, so it does not count for stopping.
    active = [d for d in range(len(groups)) if p[d] > 0]
    stop = all if until_all else any
    rng = np.random.default_rng(seed)
    position, used_up, out = [0] * len(groups), [False] * len(groups), []
    while not stop(used_up[d] for d in active):
        for d in rng.choice(len(groups), size=1000, p=p):
            if stop(used_up[d] for d in active):
                break
            out.append(groups[d][position[d]])
            position[d] += 1
            if position[d] >= lengths[d]:
                used_up[d], position[d] = True, 0
    return out
