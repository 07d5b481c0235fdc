"""`airlock train CONFIG [--set key=value ...] [--detach] [--name NAME]` and `airlock train --resume JOB_ID`.

`airlock train --keys` lists every config key with its type, default and help (`--keys markdown` is
docs/config.md), read from the fields themselves (appliance/train/config_docs.py).

`airlock train --from-llamafactory FILE.yaml [--set ...] [--detach]` runs a LLaMA-Factory training YAML: it prints
the translation (appliance.llamafactory: translated / not needed / NOT SUPPORTED keys), checks the data it names,
then starts the job. A merge or prediction YAML is refused with the airlock command that does its job.

Every run is a job (see appliance.jobs): in the foreground the command follows the job's log and Ctrl-C stops it
with a checkpoint; with --detach it returns at once and the run survives the terminal.
"""

import argparse
import sys


class _KeyHelp(argparse.HelpFormatter):
    """Flags that stand for a config key show that key's own help (its field's metadata). It is read only when
    help is printed: importing the train package for every `airlock` command would slow them all down."""

    def _get_help_string(self, action):
        key = getattr(action, "config_key", None)
        if key is None:
            return super()._get_help_string(action)
        from ..schema import field_help
        from ..train import TrainConfig

        return f"{field_help(TrainConfig)[key]}; same as --set {key}".replace("%", "%%")


def register(sub) -> None:
    p = sub.add_parser("train", help="fine-tune a model (LoRA, QLoRA or full; SFT, DPO, KTO or pre-training) as a "
                       "job",
                       formatter_class=_KeyHelp,
                       description="Fine-tune a base model on a dataset. CONFIG is a YAML/JSON/TOML file, or "
                       "the name of a shipped config (sft_lora_default, sft_lora_demo, dpo_lora_demo); --set "
                       "overrides any key, e.g. --set learning_rate=1e-4 --set data.path=my.jsonl; --keys lists "
                       "them.")
    p.add_argument("config", nargs="?", help="training config file, or a shipped config's name")
    p.add_argument("--from-llamafactory", metavar="FILE.yaml",
                   help="run a LLaMA-Factory training YAML (its translation is printed first)")
    p.add_argument("--lenient", action="store_true",
                   help="with --from-llamafactory: train even when a setting that changes training cannot be "
                        "honoured (it is listed)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable; nested keys with dots; --keys lists them)")
    p.add_argument("--keys", nargs="?", const="text", choices=("text", "markdown"), metavar="FORMAT",
                   help="list every config key with its type, default and help, and exit "
                        "(markdown: the docs/config.md page)")
    p.add_argument("--detach", action="store_true", help="run in the background; follow with `airlock jobs logs -f`")
    p.add_argument("--name", help="a name for the job (its id starts with it)")
    p.add_argument("--resume", metavar="JOB", help="continue a stopped or crashed job from its last whole checkpoint")
    p.add_argument("--from-checkpoint", type=int, metavar="STEP", help="with --resume: from this step's checkpoint")
    p.add_argument("--plan", action="store_true", help="estimate the run's peak memory per rank from the "
                   "architecture alone (no weights loaded), say whether it fits, and exit")
    p.add_argument("--gpu-mem", type=float, metavar="GB", help="with --plan: plan for a GPU of this many GiB "
                   "(default: this host's GPU, or its RAM on a CPU host)")
    p.add_argument("--json", action="store_true", help="with --plan: machine-readable output")
    dist = p.add_argument_group("several processes or hosts (the config's distributed: section; see docs/distributed.md)")
    for flag, key, kind in DISTRIBUTED_FLAGS:
        action = dist.add_argument(flag, type=kind, metavar=key.split(".")[-1].upper(), help=key)
        action.config_key = key  # _KeyHelp shows the key's help
    p.set_defaults(func=run, offline=True)


# Flags for what differs between the hosts of one run (or is typed often); each is `--set distributed.KEY=VALUE`.
DISTRIBUTED_FLAGS = [
    ("--nproc-per-node", "distributed.nproc_per_node", int),
    ("--nnodes", "distributed.nnodes", int),
    ("--node-rank", "distributed.node_rank", int),
    ("--master-addr", "distributed.master_addr", str),
    ("--master-port", "distributed.master_port", int),
]


def _distributed_overrides(args) -> list[str]:
    return [f"{key}={getattr(args, flag[2:].replace('-', '_'))}" for flag, key, _ in DISTRIBUTED_FLAGS
            if getattr(args, flag[2:].replace("-", "_")) is not None]


def run(args) -> int:
    from ..errors import AirlockError
    from ..jobs import follow, start_detached
    from ..train import load_config, preflight, resume, start

    if args.keys:
        return _print_keys(args)
    if args.from_checkpoint is not None and not args.resume:
        raise AirlockError("--from-checkpoint goes with --resume JOB", fix="airlock train --resume JOB "
                           f"--from-checkpoint {args.from_checkpoint}")
    if args.lenient and not args.from_llamafactory:
        raise AirlockError("--lenient goes with --from-llamafactory FILE.yaml", where="--lenient",
                           fix="remove --lenient (an Airlock config has no settings it cannot honour)")
    args.overrides = [*args.overrides, *_distributed_overrides(args)]
    if args.resume:
        if args.config or args.overrides or args.from_llamafactory:
            raise AirlockError("--resume continues a job with its own config; it takes no CONFIG, --set or "
                               "--from-llamafactory", fix=f"airlock train --resume {args.resume}")
        job = resume(args.resume, args.from_checkpoint)
    else:
        name = args.name
        if args.from_llamafactory:
            if args.config:
                raise AirlockError("give either CONFIG or --from-llamafactory FILE.yaml, not both",
                                   fix=f"airlock train --from-llamafactory {args.from_llamafactory}")
            cfg, name, preprocess_only = _from_llamafactory(args.from_llamafactory, args.overrides, args.lenient)
            if preprocess_only:
                from ..train.preprocess import tokenize_only

                return tokenize_only(cfg, preprocess_only)
            name = args.name or name
        elif not args.config:
            raise AirlockError("no config given", fix="airlock train sft_lora_default --set data.path=YOUR_DATA.jsonl")
        else:
            cfg = load_config(args.config, args.overrides)
        if args.plan:
            return _plan(cfg, args)
        preflight(cfg)  # fail in a second, before a job exists
        job = start(cfg, ["airlock", *sys.argv[1:]], name)
    log_start = job.log_path.stat().st_size if job.log_path.is_file() else 0  # a resume shows only the new part
    pid = start_detached(job)
    print(f"job {job.id} started (pid {pid}); directory {job.path}", flush=True)
    if args.detach:
        print(f"follow: airlock jobs logs -f {job.id}\nstop:   airlock jobs stop {job.id}")
        return 0
    status = follow(job, start=log_start)
    if status["state"] == "completed":
        print(f"job {job.id} completed: {job.path / status.get('output', '')}")
        return 0
    if status["state"] == "stopped":  # stopped is not done: a script must not read it as success
        print(f"job {job.id} stopped: {status.get('message', '')}\ncontinue: airlock train --resume {job.id}")
        return 130
    raise AirlockError(f"job {job.id} {status['state']}: {status.get('message', '')}",
                       fix=f"see {job.log_path}; fix the cause, then `airlock train --resume {job.id}`")


def _plan(cfg, args) -> int:
    import json

    from ..train.memory import plan_for, render

    plan, arch = plan_for(cfg, args.gpu_mem)
    print(json.dumps({"model": arch.name, "parameters": arch.params, **plan.to_dict()}, indent=1) if args.json
          else render(plan, arch, cfg))
    return 0 if plan.fits is not False else 1


def _print_keys(args) -> int:
    from ..errors import AirlockError
    from ..train.config_docs import config_page, keys_text

    given = [flag for flag, value in (("CONFIG", args.config), ("--set", args.overrides), ("--resume", args.resume),
                                      ("--from-llamafactory", args.from_llamafactory)) if value]
    given += [flag for flag, *_ in DISTRIBUTED_FLAGS if getattr(args, flag[2:].replace("-", "_")) is not None]
    if given:  # a list of keys that looked like it applied to a config would mislead
        raise AirlockError(f"--keys lists the config keys; it takes no {', '.join(given)}",
                           fix="airlock train --keys")
    print(config_page() if args.keys == "markdown" else keys_text(), end="")
    return 0


def _from_llamafactory(path: str, overrides: list[str], lenient: bool = False):
    """(TrainConfig, job name from output_dir) for a LLaMA-Factory YAML, its translation printed; --set applies last.
    A merge/export/prediction YAML is refused with the command that does its job; the data is checked here, so a
    config mistake never becomes a failed job."""
    from ..llamafactory import finish, render, translate

    tr = translate(path)
    print(render(tr) + "\n", flush=True)
    return finish(tr, overrides, lenient=lenient), tr.name, tr.preprocess_only
