"""`airlock eval MODEL --data HELDOUT [--base BASE] [--gguf FILE ...] [--blind] [--report DIR]`: A/B evaluation.

    airlock eval my-job --data appliance/sample_data/heldout.jsonl --base HuggingFaceTB/SmolLM2-135M-Instruct \
        --gguf exports/my-job/my-job-q4_k_m.gguf --report evals/my-job
    airlock eval my-job --data heldout.jsonl --base BASE --blind --report evals/blind-1   # then:
    airlock eval --score evals/blind-1 ; airlock eval --unblind evals/blind-1

MODEL and BASE: a job id, adapter or model directory, or a repo id in the local cache; --gguf adds exports.
Writes report.json, report.md and report.html (loss curve included) and records the run in the registry.
"""

import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model on held-out prompts: metrics, A/B vs base and GGUF, blind scoring",
                       description="Every model answers the same held-out prompts greedily; the report shows the "
                       "answers side by side with BLEU-4, ROUGE-1/2/L, exact match, the held-out check, perplexity "
                       "and (with --base) the forgetting check on general text.")
    p.add_argument("model", nargs="?", help="the tuned model: job id, adapter/model directory or cached repo id")
    p.add_argument("--data", help="held-out file (prompt/expected JSONL, Alpaca or ShareGPT) or dataset_info.json dir")
    p.add_argument("--dataset", help="the key in dataset_info.json when --data is a directory")
    p.add_argument("--base", help="the base model to compare against (A/B)")
    p.add_argument("--gguf", action="append", default=[], metavar="FILE", help="a GGUF export to compare (repeatable)")
    p.add_argument("--blind", action="store_true", help="hide which model wrote which answer for human scoring")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed for --blind (same seed, same sheet)")
    p.add_argument("--report", metavar="DIR", help="report directory (default: <data dir>/evals/<model>-<time>)")
    p.add_argument("--general", metavar="FILE",
                   help="general text for perplexity / forgetting (default: the sample general_heldout.txt; "
                        "'none' to skip)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--limit", type=int, help="only the first N held-out examples")
    p.add_argument("--segmenter", choices=["jieba", "char"], default="jieba", help="how Chinese is split for metrics")
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--score", metavar="DIR", help="enter human scores for a blind run at the terminal")
    p.add_argument("--unblind", metavar="DIR", help="reveal a scored blind run and write its report")
    p.set_defaults(func=run, offline=True)


def _general_text(arg: str | None) -> str | None:
    from ..errors import AirlockError
    from ..paths import sample_data_dir

    if arg == "none":
        return None
    path = Path(arg) if arg else sample_data_dir() / "general_heldout.txt"
    if not path.is_file():
        if arg:
            raise AirlockError("general text file not found", where=str(path), fix="give a .txt file or 'none'")
        return None
    return path.read_text(encoding="utf-8")


def run(args) -> int:
    from .. import registry
    from ..atomic import check_writable, staged_dir
    from ..errors import AirlockError
    from ..evaluate import blind, compare, report
    from ..paths import home

    if args.score:
        path = blind.enter_scores(Path(args.score))
        print(f"scores saved to {path}; reveal with: airlock eval --unblind {args.score}")
        return 0
    if args.unblind:
        result = blind.unblind(Path(args.unblind))
        report.write_report(result, Path(args.unblind))
        registry.audit("eval.unblind", report=str(args.unblind))
        _print_summary(result)
        print(f"report: {Path(args.unblind) / 'report.html'}")
        return 0
    if not args.model or not args.data:
        raise AirlockError("MODEL and --data are required", fix="airlock eval MODEL --data HELDOUT.jsonl [--base BASE]")
    for gguf in args.gguf:
        if not gguf.endswith(".gguf") or not Path(gguf).is_file():
            raise AirlockError("not a GGUF file", where=gguf, fix="give the path of a .gguf export")
    examples = compare.load_heldout(args.data, args.dataset, args.limit)
    name = Path(str(args.model).rstrip("/")).name.replace("/", "--")
    out = Path(args.report) if args.report else home() / "evals" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_writable(out, "report")  # before minutes of generation, not after
    contenders = [compare.Contender("tuned", args.model, "tuned")]
    if args.base:
        contenders.append(compare.Contender("base", args.base, "base"))
    contenders += [compare.Contender(Path(g).stem, g, "gguf") for g in args.gguf]
    print(f"evaluating {len(contenders)} model(s) on {len(examples)} held-out examples")
    result = compare.run(contenders, examples, max_tokens=args.max_new_tokens, general_text=_general_text(args.general),
                         segmenter=args.segmenter, threads=args.threads)
    result["data"] = str(args.data)
    result["training"] = compare.training_curve(args.model)
    eval_id = f"eval-{out.name}"
    if args.blind:
        with staged_dir(out) as staging:
            files = blind.write(result, staging, args.seed)
        print(f"blind sheet: {out / files['sheet'].relative_to(staging)}\n"
              f"score with:  airlock eval --score {out}   (or fill {out / 'blind' / 'scores.csv'})\n"
              f"then:        airlock eval --unblind {out}")
    else:
        report.write_report(result, out)
        _print_summary(result)
        print(f"report: {out / 'report.html'} (also report.md, report.json)")
    summary = {k: round(v, 4) for k, v in result["summary"]["tuned"].items() if isinstance(v, float)}
    registry.record("eval", eval_id, out, parents=[_registry_parent(args.model)], data=str(args.data),
                    blind=args.blind, summary=summary)
    registry.audit("eval", model=args.model, base=args.base, gguf=args.gguf, report=str(out), blind=args.blind)
    return 0


def _registry_parent(model: str) -> str:
    """The registry id of the evaluated model: its job id when it came from a job, else the name as given."""
    from ..sources import resolve_source

    src = resolve_source(model)
    return (src.provenance or {}).get("job_id") or (src.job_dir.name if src.job_dir else model)


def _print_summary(result: dict) -> None:
    from ..evaluate.report import HEADER, forgetting_line, summary_rows

    rows = [HEADER] + summary_rows(result)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    if result.get("forgetting"):
        print(forgetting_line(result["forgetting"]))
    for label, means in (result.get("human") or {}).items():
        print(f"human ({label}): " + ", ".join(f"{k} {v:.2f}" for k, v in means.items()))
