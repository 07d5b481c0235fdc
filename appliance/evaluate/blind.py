"""Blind A/B scoring by a person: answers shuffled under neutral letters, scores saved, then unblinded.

    airlock eval MODEL --data HELDOUT --base BASE --blind --report DIR   # writes DIR/blind/ and DIR/sealed/
    airlock eval --score DIR        # enter scores at the terminal (or fill DIR/blind/scores.csv in a spreadsheet)
    airlock eval --unblind DIR      # map letters back to models; the report gains the human scores

DIR/blind/sheet.md shows each prompt with its answers as A, B, ... in a per-prompt random order (seeded, so the
same seed gives the same sheet). DIR/blind/scores.csv has one row per answer and a 1-5 column per criterion.
The key (letter -> model) and the full results stay in DIR/sealed/ until unblinding.
"""

import csv
import io
import json
import random
import string
from pathlib import Path

from ..atomic import write_json, write_text
from ..errors import AirlockError

# The usual human-evaluation checklist: relevance, accuracy, completeness, professional terms, safety.
CRITERIA = ("relevance", "accuracy", "completeness", "professionalism", "safety")
SCALE = (1, 5)


def shuffle(result: dict, seed: int) -> tuple[list[dict], dict]:
    """(sheet rows, key): per example, the models' answers under letters in a seeded random order."""
    rng = random.Random(seed)
    labels = [m["label"] for m in result["models"]]
    sheet, key = [], {}
    for row in result["examples"]:
        order = labels[:]
        rng.shuffle(order)
        letters = string.ascii_uppercase[:len(order)]
        key[row["id"]] = dict(zip(letters, order))
        sheet.append({"id": row["id"], "prompt": row["prompt"], "reference": row["reference"],
                      "answers": [{"letter": letter, "text": row["answers"][label]["text"]}
                                  for letter, label in zip(letters, order)]})
    return sheet, key


def sheet_markdown(sheet: list[dict], criteria=CRITERIA) -> str:
    lines = ["# Blind evaluation sheet", "",
             f"Score every answer from {SCALE[0]} (poor) to {SCALE[1]} (excellent) on: {', '.join(criteria)}.",
             "Which model wrote which answer is hidden; the order changes from prompt to prompt.",
             "Enter the scores with `airlock eval --score DIR`, or fill in blind/scores.csv.", ""]
    for n, item in enumerate(sheet, 1):
        lines += [f"## {n}. {item['prompt']}", "", f"*Reference:* {item['reference']}", ""]
        for answer in item["answers"]:
            lines += [f"**{answer['letter']}:** {answer['text'] or '(empty answer)'}", ""]
    return "\n".join(lines)


def write(result: dict, report_dir: Path, seed: int, criteria=CRITERIA) -> dict:
    """Write the sheet, an empty score file and the sealed key + results under `report_dir` (a staging dir)."""
    sheet, key = shuffle(result, seed)
    blind, sealed = Path(report_dir) / "blind", Path(report_dir) / "sealed"
    blind.mkdir(parents=True, exist_ok=True)
    sealed.mkdir(parents=True, exist_ok=True)
    write_text(blind / "sheet.md", sheet_markdown(sheet, criteria))
    write_json(blind / "sheet.json", {"seed": seed, "criteria": list(criteria), "items": sheet})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "answer", *criteria, "note"])
    for item in sheet:
        for answer in item["answers"]:
            writer.writerow([item["id"], answer["letter"], *[""] * len(criteria), ""])
    write_text(blind / "scores.csv", out.getvalue())
    write_json(sealed / "key.json", {"seed": seed, "key": key})
    write_json(sealed / "result.json", result)
    return {"sheet": blind / "sheet.md", "scores": blind / "scores.csv", "key": sealed / "key.json"}


def _score_cell(value: str, where: str) -> int:
    try:
        score = int(value.strip())
    except ValueError:
        score = None
    if score is None or not SCALE[0] <= score <= SCALE[1]:
        raise AirlockError(f"score {value!r} is not a whole number from {SCALE[0]} to {SCALE[1]}", where=where,
                           fix=f"enter {SCALE[0]}-{SCALE[1]} (or run `airlock eval --score DIR`)")
    return score


def read_scores(report_dir: Path) -> dict:
    """{(id, letter): {criterion: score, "note": str}} from blind/scores.csv; every cell must be filled."""
    path = Path(report_dir) / "blind" / "scores.csv"
    if not path.is_file():
        raise AirlockError("no score file", where=str(path), fix="run the blind evaluation first (`airlock eval --blind`)")
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
    criteria = [c for c in (reader.fieldnames or []) if c not in ("id", "answer", "note")]
    scores = {}
    for line, row in enumerate(reader, 2):
        scores[(row["id"], row["answer"])] = {
            **{c: _score_cell(row.get(c) or "", f"{path}:{line}: {c}") for c in criteria},
            "note": row.get("note") or ""}
    return scores


def enter_scores(report_dir: Path, ask=input, say=print) -> Path:
    """Ask for every score at the terminal, answer by answer, and save blind/scores.csv (atomically, at the end)."""
    sheet = json.loads((Path(report_dir) / "blind" / "sheet.json").read_text(encoding="utf-8"))
    criteria = sheet["criteria"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "answer", *criteria, "note"])
    for n, item in enumerate(sheet["items"], 1):
        say(f"\n[{n}/{len(sheet['items'])}] {item['prompt']}\n  reference: {item['reference']}")
        for answer in item["answers"]:
            say(f"\n  {answer['letter']}: {answer['text'] or '(empty answer)'}")
            row = []
            for criterion in criteria:
                while True:
                    raw = ask(f"    {criterion} ({SCALE[0]}-{SCALE[1]}): ")
                    try:
                        row.append(_score_cell(raw, criterion))
                        break
                    except AirlockError as exc:
                        say(f"    {exc.message}")
            writer.writerow([item["id"], answer["letter"], *row, ask("    note (optional): ").strip()])
    return write_text(Path(report_dir) / "blind" / "scores.csv", out.getvalue())


def unblind(report_dir: Path) -> dict:
    """The sealed result with the human scores mapped back to models: result["human"] per model and per answer."""
    report_dir = Path(report_dir)
    result = json.loads((report_dir / "sealed" / "result.json").read_text(encoding="utf-8"))
    key = json.loads((report_dir / "sealed" / "key.json").read_text(encoding="utf-8"))["key"]
    scores = read_scores(report_dir)
    missing = [f"{i}/{letter}" for i, letters in key.items() for letter in letters if (i, letter) not in scores]
    if missing:
        raise AirlockError(f"{len(missing)} answer(s) have no scores (first: {missing[0]})",
                           where=str(report_dir / "blind" / "scores.csv"), fix="score every answer, then unblind")
    totals: dict[str, dict[str, list[int]]] = {}
    for row in result["examples"]:
        for letter, label in key[row["id"]].items():
            given = scores[(row["id"], letter)]
            row["answers"][label]["human"] = given
            for criterion, value in given.items():
                if criterion != "note":
                    totals.setdefault(label, {}).setdefault(criterion, []).append(value)
    human = {}
    for label, per in totals.items():
        means = {c: sum(v) / len(v) for c, v in per.items()}
        means["overall"] = sum(means.values()) / len(means)
        human[label] = means
    result["human"] = human
    result["blind"] = {"seed": json.loads((report_dir / "sealed" / "key.json").read_text())["seed"], "key": key}
    return result
