"""`airlock llamafactory translate FILE.yaml [--out CONFIG.yaml] [--lenient | --strict]`: run LLaMA-Factory configs here.

A training YAML: prints what each key became, which keys are not needed here and which are not supported (with
reasons), then checks the data it names (dataset_info.json entries, every record, columns, chat template); --out
writes the Airlock training config (`airlock train CONFIG.yaml` runs it). A merge/export, prediction, benchmark
or inference YAML: prints the airlock command(s) that do its job, or what it is when there is no equivalent.
`airlock llamafactory docs` prints the compatibility page (docs/llamafactory.md). See appliance/llamafactory/.
"""


def register(sub) -> None:
    p = sub.add_parser("llamafactory", help="translate LLaMA-Factory YAML (training, merge, eval) into Airlock's",
                       description="Work with LLaMA-Factory files. Datasets in its dataset_info.json format are "
                       "read directly by `airlock train` and `airlock data check`.")
    actions = p.add_subparsers(title="actions", metavar="ACTION")
    tr = actions.add_parser("translate", help="show (and write) the Airlock config or command for a LLaMA-Factory YAML")
    tr.add_argument("file", help="a LLaMA-Factory YAML (e.g. examples/train_lora/llama3_lora_sft.yaml, "
                                 "examples/merge_lora/llama3_lora_sft.yaml)")
    tr.add_argument("--out", metavar="CONFIG.yaml", help="write the translated Airlock training config here")
    tr.add_argument("--lenient", action="store_true",
                    help="translate even when a setting that changes training cannot be honoured (it is listed)")
    tr.add_argument("--strict", action="store_true",
                    help="refuse also the settings that change no trained weight (evaluation, caching)")
    tr.set_defaults(func=translate_cmd, offline=True)
    docs = actions.add_parser("docs", help="print the compatibility page: every key and column, and its fate")
    docs.set_defaults(func=docs_cmd, offline=True)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def translate_cmd(args) -> int:
    from pathlib import Path

    from .. import schema
    from ..atomic import write_text
    from ..errors import AirlockError
    from ..llamafactory import config_yaml, finish, kind_of, render, render_task, translate, translate_task

    if kind_of(schema.load_file(Path(args.file))) != "train":
        print(render_task(translate_task(args.file)))
        if args.out:
            raise AirlockError("--out writes a training config; this YAML does not train", where="--out",
                               fix="run the command printed above")
        return 0
    tr = translate(args.file)
    print(render(tr))
    finish(tr, lenient=args.lenient, strict=args.strict)  # validated and its data checked before anything is written
    if args.out:
        write_text(Path(args.out), config_yaml(tr, Path(args.out)))
        print(f"\nwrote {args.out}; run it with: airlock train {args.out}" + (f" --name {tr.name}" if tr.name else ""))
    return 0


def docs_cmd(args) -> int:
    from ..llamafactory.docs import compatibility_page

    print(compatibility_page(), end="")
    return 0
