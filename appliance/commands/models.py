"""`airlock models catalog|list|show ID|rm ID [--force]|audit`: the catalog of base models, the artifacts this
host produced, their lineage, the audit log.

    airlock models catalog [--json]     # every supported base model: size, licence, gated, template, how to bundle it
    airlock models twin CATALOG_ID --out DIR [--layers N]   # that model's exact architecture, random weights
    airlock models list [--kind adapter] [--json]
    airlock models show JOB_ID          # base -> dataset -> adapter -> merged -> gguf, with key figures
    airlock models rm JOB_ID [--force] [--keep-files]
    airlock models audit [--tail 20] [--json]
"""

import json
from pathlib import Path

KEY_FACTS = ("stage", "method", "steps", "type", "size", "sha256", "pref_beta", "pref_loss", "base_revision",
             "dataset_sha256")


def register(sub) -> None:
    p = sub.add_parser("models", help="the catalog, twins, and the artifacts trained here (list, show, rm, audit)",
                       description="The registry of what this host produced (adapters, merged models, GGUF exports, "
                       "evaluations) with lineage, and the append-only audit log.")
    actions = p.add_subparsers(title="actions", metavar="ACTION", dest="action")
    cat = actions.add_parser("catalog", help="the supported base models and the spec lines that bundle each")
    cat.add_argument("--json", action="store_true", help="machine-readable output")
    cat.set_defaults(func=catalog_cmd, offline=True)
    tw = actions.add_parser("twin", help="a random-weight model with a catalog model's exact architecture",
                            description="Writes a model with the catalog model's widths (hidden size, heads, KV heads, "
                            "intermediate size, layers) and random weights, to test training, export and serving at "
                            "real size without its weights. Offline; the vocabulary follows the tokenizer.")
    tw.add_argument("id", help="catalog id (airlock models catalog)")
    tw.add_argument("--out", type=Path, required=True, help="directory to write (a local model directory)")
    tw.add_argument("--layers", type=int, help="fewer layers than the model has (the widths stay)")
    tw.add_argument("--tokenizer", type=Path, help="a model directory whose tokenizer to use (default: the "
                    "embedded model's)")
    tw.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    tw.add_argument("--seed", type=int, default=0)
    tw.set_defaults(func=twin_cmd, offline=True)
    ls = actions.add_parser("list", help="every artifact in the registry")
    ls.add_argument("--kind", help="only this kind (adapter, model, merged, gguf, eval, ...)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=list_cmd, offline=True)
    show = actions.add_parser("show", help="one artifact with its lineage and key figures")
    show.add_argument("id", help="artifact id (or a unique prefix)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=show_cmd, offline=True)
    rm = actions.add_parser("rm", help="remove an artifact (refuses to orphan dependents unless --force)")
    rm.add_argument("id")
    rm.add_argument("--force", action="store_true", help="remove even though dependents will lose their parent")
    rm.add_argument("--keep-files", action="store_true", help="forget the record but keep the files on disk")
    rm.set_defaults(func=rm_cmd, offline=True)
    audit = actions.add_parser("audit", help="the append-only audit log (who did what, when)")
    audit.add_argument("--tail", type=int, default=0, help="only the last N entries")
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(func=audit_cmd, offline=True)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def _human_size(n) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def figures(entry: dict) -> str:
    """The few facts worth a glance, as k=v."""
    facts = entry.get("facts") or {}
    shown = []
    for key in KEY_FACTS:
        value = facts.get(key)
        if value is None:
            continue
        if key == "size":
            value = _human_size(value)
        elif key in ("sha256", "dataset_sha256", "base_revision") and isinstance(value, str):
            value = value[:12]
        shown.append(f"{key}={value}")
    for key, value in facts.items():  # evaluation summaries and fidelity figures
        if isinstance(value, dict) and key in ("fidelity", "summary"):
            shown += [f"{k}={v:.3g}" for k, v in value.items() if isinstance(v, (int, float))][:4]
    return " ".join(shown)


def catalog_cmd(args) -> int:
    from ..catalog import describe, load_catalog

    rows = [describe(card) for card in load_catalog().values()]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    print(f"{'ID':<30} {'PARAMS':>6} {'WEIGHTS':>9} {'LICENCE':<14} {'GATED':<5} {'TEMPLATE':<9} TOOLS")
    for r in rows:
        print(f"{r['id']:<30} {r['parameters']:>6} {'~' + format(r['weights_gb'], '.1f'):>6} GB {r['license']:<14} "
              f"{'yes' if r['gated'] else 'no':<5} {r['chat_template']:<9} {'yes' if r['tool_calls'] else 'no'}")
    print("\nBundle one on the connected machine: add to the spec's models (a gated one also needs hub.token_file),")
    print("then `airlock bundle plan SPEC` sizes it and `airlock bundle create SPEC --out DIR` pins and packs it:")
    print("  models:\n    - id: qwen2.5-7b-instruct")
    return 0


def twin_cmd(args) -> int:
    from ..twin import build_twin

    build_twin(args.id, args.out, layers=args.layers, tokenizer_dir=args.tokenizer, dtype=args.dtype,
               seed=args.seed)
    return 0


def list_cmd(args) -> int:
    from ..registry import artifacts

    rows = sorted(artifacts().values(), key=lambda e: e["time"])
    if args.kind:
        rows = [r for r in rows if r["kind"] == args.kind]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("no artifacts recorded yet (train, merge or export something)")
        return 0
    width = max(len(r["id"]) for r in rows)
    print(f"{'ID':<{width}}  {'KIND':<14} {'RECORDED':<24} PARENTS")
    for r in rows:
        print(f"{r['id']:<{width}}  {r['kind']:<14} {r['time']:<24} {', '.join(r['parents']) or '-'}")
    return 0


def show_cmd(args) -> int:
    from pathlib import Path

    from ..lineage import lineage

    info = lineage(args.id)
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0
    me = info["artifact"]
    print(f"{me['kind']} {me['id']}")
    print(f"  path:     {me.get('path') or '-'}" + ("" if not me.get("path") or Path(me["path"]).exists()
                                                    else "  (missing on disk)"))
    print(f"  recorded: {me['time']}")
    if figures(me):
        print(f"  figures:  {figures(me)}")
    print("lineage:")
    nodes = info["ancestors"] + [me] + info["dependents"]
    width = max(len(n["id"]) for n in nodes)
    for node in nodes:
        mark = "*" if node is me else " "
        note = "(not recorded)" if node.get("recorded") is False else figures(node)
        print(f" {mark} {node['kind']:<14} {node['id']:<{width}}  {note}".rstrip())
    print("   " + " -> ".join(n["kind"] for n in nodes))
    return 0


def rm_cmd(args) -> int:
    from ..lineage import remove

    done = remove(args.id, force=args.force, keep_files=args.keep_files)
    print(f"removed {done['kind']} {done['id']}" + (" and its files" if done["files_deleted"] else " (files kept)"))
    if done["orphaned"]:
        print(f"warning: now without their parent: {', '.join(done['orphaned'])}")
    return 0


def audit_cmd(args) -> int:
    from ..registry import audit_log

    entries = audit_log()
    if args.tail:
        entries = entries[-args.tail:]
    if args.json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    if not entries:
        from ..paths import registry_dir

        print(f"the audit log is empty: nothing has been trained, exported or served on this host yet "
              f"({registry_dir() / 'audit.jsonl'})")
        return 0
    for e in entries:
        details = " ".join(f"{k}={v}" for k, v in e.items() if k not in ("time", "user", "host", "pid", "action"))
        print(f"{e['time']}  {e['user']}@{e['host']}  {e['action']}  {details}")
    return 0
