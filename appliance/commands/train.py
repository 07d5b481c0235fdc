"""`airlock train CONFIG [--set key=value ...] [--detach] [--name NAME]` and `airlock train --resume JOB_ID`.

Every run is a job (see appliance.jobs): in the foreground the command follows the job's log and Ctrl-C stops it
with a checkpoint; with --detach it returns at once and the run survives the terminal.
"""

import sys


def register(sub) -> None:
    p = sub.add_parser("train", help="fine-tune a model (LoRA, QLoRA or full SFT) as a job",
                       description="Fine-tune a base model on a dataset. CONFIG is a YAML/JSON/TOML file "
                       "(see appliance/configs/); --set overrides any key, e.g. --set learning_rate=1e-4 "
                       "--set data.cutoff_len=512.")
    p.add_argument("config", nargs="?", help="training config file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable; nested keys with dots)")
    p.add_argument("--detach", action="store_true", help="run in the background; follow with `airlock jobs logs -f`")
    p.add_argument("--name", help="a name for the job (its id starts with it)")
    p.add_argument("--resume", metavar="JOB", help="continue a stopped or crashed job from its last checkpoint")
    p.set_defaults(func=run, offline=True)


def run(args) -> int:
    from ..errors import AirlockError
    from ..jobs import follow, start_detached
    from ..train import load_config, resume, start

    if args.resume:
        if args.config or args.overrides:
            raise AirlockError("--resume continues a job with its own config; it takes no CONFIG or --set",
                               fix=f"airlock train --resume {args.resume}")
        job = resume(args.resume)
    else:
        if not args.config:
            raise AirlockError("no config given", fix="airlock train appliance/configs/sft_lora_default.yaml")
        cfg = load_config(args.config, args.overrides)
        # Fail in a second, before a job exists, on what can be checked without the training stack's weight.
        from ..train.recipe import resolve_base
        from ..train.resources import check_dtype

        resolve_base(cfg.model)
        check_dtype(cfg.dtype, cfg.method)
        job = start(cfg, ["airlock", *sys.argv[1:]], args.name)
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
    if status["state"] == "stopped":
        print(f"job {job.id} stopped: {status.get('message', '')}")
        return 0
    raise AirlockError(f"job {job.id} {status['state']}: {status.get('message', '')}",
                       fix=f"see {job.log_path}; fix the cause, then `airlock train --resume {job.id}`")
