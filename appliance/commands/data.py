"""`airlock data check FILE|DIR`: validate a dataset before training and show what training will see.

Prints counts, the detected format, every problem (errors and warnings: a column training would leave out is
one, with the number of records carrying it), token-length percentiles with the model's tokenizer, how many conversations the cutoff affects, duplicates, and one rendered sample with the
trained tokens marked. Exit 0 when clean (warnings allowed), 1 when there are errors. --json prints the same
report as JSON (appliance.data.check.CheckReport.to_dict()). --stage reads the data as that training stage does:
pt as pre-training documents (.txt files, "text" records), kto with KTO's desirable/undesirable label.
"""

import sys

MAX_LISTED = 50
OPEN, CLOSE = "«", "»"  # marks trained text when the output is not a terminal


def register(sub) -> None:
    p = sub.add_parser("data", help="check datasets (Alpaca, ShareGPT, LLaMA-Factory dataset_info.json)")
    data_sub = p.add_subparsers(title="data commands", metavar="COMMAND")
    c = data_sub.add_parser("check", help="validate a dataset and report counts, problems, token lengths, a sample")
    c.add_argument("path", help="a .jsonl/.json/.csv/.parquet file (.txt with --stage pt), or a directory with "
                                "dataset_info.json")
    c.add_argument("--format", choices=["auto", "alpaca", "sharegpt"], default="auto",
                   help="record format (default: detect)")
    c.add_argument("--dataset", help="key in dataset_info.json (when PATH is a directory)")
    c.add_argument("--model", help="model (cached repo id or directory) whose tokenizer and chat template to use "
                                   "(default: the catalog's default model, if installed)")
    c.add_argument("--cutoff-len", type=int, default=1024, help="token cutoff to report against (default 1024)")
    c.add_argument("--train-on", choices=["assistant", "last", "all"], default="assistant",
                   help="which tokens are trained in the sample (default: assistant replies)")
    c.add_argument("--chat-template", default="", metavar="MODEL_ID|FILE.jinja",
                   help="render with this template instead of the model's own: a catalog model id or a Jinja file "
                        "(data.chat_template in a training config)")
    c.add_argument("--ignore-columns", default="", metavar="NAMES",
                   help="comma-separated columns training may leave out (data.ignore_columns): their warnings "
                        "become notes")
    c.add_argument("--stage", choices=["sft", "dpo", "kto", "pt"], default="sft",
                   help="read the data as this training stage does (default sft): pt = pre-training text (.txt, "
                        "\"text\" records), kto = conversations with a kto_tag label")
    c.add_argument("--skip-invalid-records", type=int, default=0, metavar="N",
                   help="leave out up to N broken records, as training with data.skip_invalid_records: N does")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.set_defaults(func=run_check, offline=True)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def run_check(args) -> int:
    from ..data.check import check

    ignore = [c.strip() for c in args.ignore_columns.split(",") if c.strip()]
    report = check(args.path, format=args.format, dataset=args.dataset, model=args.model,
                   cutoff_len=args.cutoff_len, train_on=args.train_on, chat_template=args.chat_template,
                   ignore_columns=ignore, stage=getattr(args, "stage", "sft"),  # callers' own Namespaces lack it
                   skip=getattr(args, "skip_invalid_records", 0))
    if args.json:
        import json

        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print_report(report)
    return 0 if report.ok else 1


def print_report(report, out=None) -> None:
    from rich.console import Console
    from rich.text import Text

    out = out or sys.stdout
    console = Console(file=out, highlight=False, soft_wrap=True)
    styled = out.isatty()
    say = console.print
    say(Text(f"dataset: {report.path}"))
    formats = ", ".join(f"{f} ({fmt})" for f, fmt in report.file_formats.items())
    say(Text(f"format: {report.format}" + (f"  [{formats}]" if len(report.file_formats) > 1 else "")))
    documents = report.format == "text"  # stage pt: documents, not conversations
    unit = "document(s)" if documents else "conversation(s)"
    if documents:
        say(f"records: {report.records}  documents: {report.conversations}")
    else:
        say(f"records: {report.records}  conversations: {report.conversations}  turns: {report.turns}")
    say(f"duplicates: {report.duplicates['exact']} exact, {report.duplicates['normalized']} after normalizing "
        "(removed only with dedupe=exact|normalized)")
    if report.token_stats:
        s = report.token_stats
        say(Text(f"tokens ({report.model}): p50 {s['p50']}  p90 {s['p90']}  p99 {s['p99']}  max {s['max']}  "
                 f"total {s['total']}  trained {report.trained_tokens}"))
        say(f"cutoff {report.cutoff_len}: {report.over_cutoff} {unit} longer ("
            + ("split into rows" if documents else "truncated") + ", or dropped with cutoff_policy=drop)")
    for note in report.notes:
        say(Text(f"note: {note}"))
    errors, warnings = report.errors, report.warnings
    for problem in (errors + warnings)[:MAX_LISTED]:
        say(Text(problem.render(), style=("red" if problem.severity == "error" else "yellow") if styled else ""))
    if len(errors) + len(warnings) > MAX_LISTED:
        say(f"... and {len(errors) + len(warnings) - MAX_LISTED} more (--json lists all)")
    if report.sample:
        legend = "bold green = trained, dim = masked" if styled else f"{OPEN}trained{CLOSE}, the rest is masked"
        say(Text(f"\nsample ({report.sample_source}; {legend}):"))
        sample = Text()
        for piece, trained in report.sample:
            if styled:
                sample.append(piece, style="bold green" if trained else "dim")
            else:
                sample.append(f"{OPEN}{piece}{CLOSE}" if trained else piece)
        say(sample)
    verdict = (f"{len(errors)} error(s), {len(warnings)} warning(s): fix the errors before training"
               if errors else f"ok ({len(warnings)} warning(s))")
    say(Text(f"\nresult: {verdict}", style=("bold red" if errors else "bold green") if styled else ""))
