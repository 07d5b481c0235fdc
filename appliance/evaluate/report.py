"""Evaluation reports: report.json for machines, report.md for people, report.html (self-contained, inline SVG).

    write_report(result, Path("evals/my-run"))   # staged: the directory appears whole or not at all

The HTML draws the training loss curve (and eval loss, when there is one) of the tuned model's job as an SVG
written here: no plotting library, no external file, no script. Scores are stored as fractions and shown as %.
"""

import html
import json
import shutil
from pathlib import Path

from ..atomic import staged_dir

COLUMNS = (("bleu4", "BLEU-4"), ("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"),
           ("exact_match", "Exact"), ("pass_rate", "Pass"))
KEEP = ("blind", "sealed")  # a blind run's sheet, scores and key survive rewriting the report


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def summary_rows(result: dict) -> list[list[str]]:
    rows = []
    for model in result["models"]:
        s = result["summary"][model["label"]]
        rows.append([model["label"], *(_pct(s.get(k)) for k, _ in COLUMNS), _num(s.get("reference_perplexity")),
                     _num(s.get("general_perplexity"))])
    return rows


HEADER = ["model", *(name for _, name in COLUMNS), "PPL (reference)", "PPL (general text)"]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    cell = lambda t: str(t).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(cell, r)) + " |" for r in rows)]


def forgetting_line(f: dict) -> str:
    return (f"General-text perplexity {f['before']:.3g} (base) -> {f['after']:.3g} (tuned): "
            f"{100 * f['change']:+.1f}%, {f['verdict']}.")


def markdown(result: dict) -> str:
    lines = ["# Evaluation report", "", f"Created {result['created']}; greedy answers, at most "
             f"{result['max_tokens']} new tokens; Chinese segmented by {result['segmenter']}.", ""]
    lines += ["## Models", ""] + _md_table(["label", "role", "model"],
                                           [[m["label"], m["role"], m["ref"]] for m in result["models"]]) + [""]
    lines += ["## Scores", ""] + _md_table(HEADER, summary_rows(result)) + [""]
    lines += ["BLEU-4: sentence level, add-one smoothing on 2-4-grams; ROUGE: F1; Pass: the held-out row's own check "
              "(answer contains the expected phrase, or equals it).", ""]
    if result.get("forgetting"):
        lines += ["## Forgetting check", "", forgetting_line(result["forgetting"]), ""]
    if result.get("human"):
        criteria = [c for c in next(iter(result["human"].values()))]
        lines += ["## Human scores (blind, unblinded)", ""] + _md_table(
            ["model", *criteria], [[label, *(f"{v[c]:.2f}" for c in criteria)] for label, v in result["human"].items()])
        lines += [""]
    if (result.get("training") or {}).get("points"):
        t = result["training"]
        lines += ["## Training", "", f"Job {t['job']}: loss {t['points'][0]['loss']} at step {t['points'][0]['step']}"
                  f" -> {t['points'][-1]['loss']} at step {t['points'][-1]['step']} (curve in report.html).", ""]
    lines += ["## Answers side by side", ""]
    for n, row in enumerate(result["examples"], 1):
        lines += [f"### {n}. {row['prompt']}", "", f"Reference ({row['match']}): {row['reference']}", ""]
        lines += _md_table(["model", "answer", "pass", "BLEU-4", "ROUGE-L"],
                           [[label, a["text"], "yes" if a["pass"] else "no", _pct(a["bleu4"]), _pct(a["rougeL"])]
                            for label, a in row["answers"].items()]) + [""]
    return "\n".join(lines)


def loss_svg(points: list[dict], width: int = 640, height: int = 260) -> str:
    """An SVG line chart of loss (and eval_loss) against step."""
    series = {name: [(p["step"], p[name]) for p in points if p.get(name) is not None] for name in ("loss", "eval_loss")}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return ""
    left, right, top, bottom = 56, 16, 16, 40
    xs = [x for s in series.values() for x, _ in s]
    ys = [y for s in series.values() for _, y in s]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    sx = lambda x: left + (x - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    sy = lambda y: top + (y1 - y) / (y1 - y0) * (height - top - bottom)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="training loss curve" font-size="11" '
             f'font-family="sans-serif">',
             f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
             f'fill="none" stroke="#999"/>']
    for i in range(5):  # grid and tick labels
        y = y0 + (y1 - y0) * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.3g}</text>')
        x = x0 + (x1 - x0) * i / 4
        parts.append(f'<text x="{sx(x):.1f}" y="{height - bottom + 16}" text-anchor="middle">{x:.0f}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">step</text>')
    colours = {"loss": "#1f77b4", "eval_loss": "#ff7f0e"}
    for n, (name, pts) in enumerate(series.items()):
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline class="{name}" fill="none" stroke="{colours[name]}" stroke-width="2" '
                     f'points="{path}"/>')
        if len(pts) < 40:
            parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colours[name]}"/>' for x, y in pts]
        parts.append(f'<text x="{width - right - 8}" y="{top + 16 + 14 * n}" text-anchor="end" '
                     f'fill="{colours[name]}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f3f3f3}.pass{color:#170}.fail{color:#a11}.ref{color:#555}"""


def _html_table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_report(result: dict) -> str:
    e = lambda t: html.escape(str(t))  # noqa: E731
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Evaluation report</title><style>{CSS}</style>"
           "</head><body><h1>Evaluation report</h1>",
           f"<p>Created {e(result['created'])}; greedy answers, at most {result['max_tokens']} new tokens.</p>",
           "<h2>Models</h2>", _html_table(["label", "role", "model"],
                                          [[e(m["label"]), e(m["role"]), e(m["ref"])] for m in result["models"]]),
           "<h2>Scores</h2>", _html_table(HEADER, [[e(c) for c in r] for r in summary_rows(result)])]
    if result.get("forgetting"):
        out += ["<h2>Forgetting check</h2>", f"<p>{e(forgetting_line(result['forgetting']))}</p>"]
    if result.get("human"):
        criteria = list(next(iter(result["human"].values())))
        out += ["<h2>Human scores (blind, unblinded)</h2>", _html_table(
            ["model", *criteria], [[e(label), *(f"{v[c]:.2f}" for c in criteria)]
                                   for label, v in result["human"].items()])]
    training = result.get("training") or {}
    if training.get("points"):
        out += [f"<h2>Training loss (job {e(training['job'])})</h2>", loss_svg(training["points"])]
    out.append("<h2>Answers side by side</h2>")
    for n, row in enumerate(result["examples"], 1):
        out.append(f"<h3>{n}. {e(row['prompt'])}</h3><p class='ref'>Reference ({e(row['match'])}): "
                   f"{e(row['reference'])}</p>")
        out.append(_html_table(["model", "answer", "pass", "BLEU-4", "ROUGE-L"], [
            [e(label), e(a["text"]), f"<span class='{'pass' if a['pass'] else 'fail'}'>{'yes' if a['pass'] else 'no'}"
             "</span>", _pct(a["bleu4"]), _pct(a["rougeL"])] for label, a in row["answers"].items()]))
    out.append("</body></html>")
    return "\n".join(out)


def write_report(result: dict, report_dir: Path) -> Path:
    """report.json, report.md and report.html in `report_dir`, replaced as a whole (blind/ and sealed/ are kept)."""
    report_dir = Path(report_dir)
    with staged_dir(report_dir) as staging:
        for keep in KEEP:
            if (report_dir / keep).is_dir():
                shutil.copytree(report_dir / keep, staging / keep)
        (staging / "report.json").write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n",
                                             encoding="utf-8")
        (staging / "report.md").write_text(markdown(result), encoding="utf-8")
        (staging / "report.html").write_text(html_report(result), encoding="utf-8")
    return report_dir
