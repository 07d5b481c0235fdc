"""`airlock data check FILE|DIR`: validate a dataset and show what training would see."""


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect and validate datasets")
    dsub = p.add_subparsers(title="data commands", metavar="ACTION")
    c = dsub.add_parser("check", help="validate a dataset; counts, token lengths, duplicates, a rendered sample")
    c.add_argument("path", help="a .json/.jsonl/.csv/.parquet file, or a directory with a LLaMA-Factory dataset_info.json")
    c.add_argument("--format", default="auto", choices=["auto", "alpaca", "sharegpt"])
    c.add_argument("--dataset", help="key in dataset_info.json (when PATH is a directory)")
    c.add_argument("--model", help="tokenizer/chat template to render with (repo id in the local cache or a dir); "
                                   "default: the catalog's default model")
    c.add_argument("--cutoff-len", type=int, default=1024)
    c.add_argument("--train-on", default="assistant", choices=["assistant", "last", "all"])
    c.add_argument("--no-tokens", action="store_true", help="skip tokenization (no model needed)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.set_defaults(func=run_check, offline=True)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def run_check(args) -> int:
    import json

    from ..data.check import check

    report = check(args.path, args.format, args.dataset, model=args.model, cutoff_len=args.cutoff_len,
                   train_on=args.train_on, tokens=not args.no_tokens)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        print_report(report)
    return 0 if report.ok else 1


def print_report(report) -> None:
    import sys

    from rich.console import Console
    from rich.text import Text

    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for problem in report.problems:
        err.print(Text(problem.render(), style="red" if problem.severity == "error" else "yellow"))
    out.print(f"[bold]{report.path}[/]: format {report.format}, {report.records} records, "
              f"{report.conversations} conversations, {report.turns} turns")
    out.print(f"duplicates: {report.duplicates_exact} exact, {report.duplicates_normalized} normalized")
    if report.token_lengths:
        tl = report.token_lengths
        out.print(f"tokens ({report.tokenizer}): p50 {tl['p50']}, p90 {tl['p90']}, p99 {tl['p99']}, max {tl['max']}; "
                  f"{report.over_cutoff} conversation(s) over cutoff_len {report.cutoff_len}; "
                  f"{report.trained_tokens} trained tokens")
    elif report.token_note:
        out.print(report.token_note)
    if report.sample:
        out.print(f"sample ({report.sample_source}); trained text is marked "
                  + ("in green" if out.is_terminal else "«like this»") + ":")
        text = Text()
        for piece, trained in report.sample:
            if out.is_terminal:
                text.append(piece, style="bold green" if trained else "dim")
            else:
                text.append(f"«{piece}»" if trained else piece)
        out.print(text)
    verdict = "OK" if report.ok else f"{len(report.errors)} error(s)"
    out.print(f"{verdict}, {len(report.warnings)} warning(s)")
    sys.stdout.flush()
