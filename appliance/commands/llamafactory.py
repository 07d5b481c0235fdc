"""`airlock llamafactory translate FILE.yaml [--out CONFIG.yaml] [--strict]`: run LLaMA-Factory configs here.

Prints what each key became, which keys are not needed here and which are not supported (with reasons); --out
writes the Airlock training config (`airlock train CONFIG.yaml` runs it). See appliance/llamafactory.py.
"""


def register(sub) -> None:
    p = sub.add_parser("llamafactory", help="translate LLaMA-Factory training YAML into an Airlock config",
                       description="Work with LLaMA-Factory files. Datasets in its dataset_info.json format are "
                       "read directly by `airlock train` and `airlock data check`.")
    actions = p.add_subparsers(title="actions", metavar="ACTION")
    tr = actions.add_parser("translate", help="show (and write) the Airlock config for a LLaMA-Factory YAML")
    tr.add_argument("file", help="a LLaMA-Factory training YAML (e.g. examples/train_lora/llama3_lora_sft.yaml)")
    tr.add_argument("--out", metavar="CONFIG.yaml", help="write the translated Airlock config here")
    tr.add_argument("--strict", action="store_true", help="fail if any setting cannot be carried over")
    tr.set_defaults(func=translate_cmd, offline=True)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def translate_cmd(args) -> int:
    from pathlib import Path

    from ..atomic import write_text
    from ..llamafactory import config_yaml, load_train_config, render

    cfg, tr = load_train_config(args.file, strict=args.strict)  # validated before anything is written
    print(render(tr))
    if args.out:
        write_text(Path(args.out), config_yaml(tr, Path(args.out)))
        print(f"\nwrote {args.out}; run it with: airlock train {args.out}" + (f" --name {tr.name}" if tr.name else ""))
    return 0
