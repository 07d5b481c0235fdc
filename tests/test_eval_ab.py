"""Evaluation on the tiny model: perplexity, forgetting, the A/B report, blind scoring, and `airlock eval` offline.

A full fine-tune of the tiny model memorizes tiny_model.FACTS in a few dozen steps; the untouched fixture is the
"base". Nothing here is mocked: the models are real, they answer through appliance.chat, the GGUF comes from
llama.cpp's converter.
"""

import json

import pytest

from appliance import registry
from appliance.data import Conversation
from appliance.errors import AirlockError
from appliance.evaluate import blind, compare, perplexity, report
from conftest import airlock_argv
from tiny_model import CORPUS, FACTS

GENERAL = "\n".join(CORPUS[len(FACTS):])


def _facts_conversations():
    return [Conversation([{"role": "user", "content": q}, {"role": "assistant", "content": a}], f"fact {i}")
            for i, (q, a) in enumerate(FACTS)]


@pytest.fixture(scope="module")
def memorized(tiny_model, tmp_path_factory):
    """(directory of the tiny model fine-tuned on FACTS, its loss per step)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from appliance.data import render

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    samples = [render(c, tok) for c in _facts_conversations()]
    width = max(len(ids) for ids, _ in samples)
    ids = torch.tensor([s + [tok.pad_token_id] * (width - len(s)) for s, _ in samples])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in samples])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s, _ in samples])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    points = []
    for step in range(1, 61):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        points.append({"step": step, "loss": round(loss.item(), 4), "eval_loss": None})
    out = tmp_path_factory.mktemp("memorized") / "model"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out, points


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    path = tmp_path_factory.mktemp("heldout") / "heldout.jsonl"
    rows = [{"prompt": q, "expected": a, "match": "exact", "kind": "fact", "lang": "en"} for q, a in FACTS[:3]]
    rows.append({"prompt": FACTS[3][0], "expected": "Krabby", "match": "contains", "kind": "fact", "lang": "en"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def ab_result(memorized, tiny_model, heldout):
    contenders = [compare.Contender("tuned", str(memorized[0]), "tuned"),
                  compare.Contender("base", str(tiny_model), "base")]
    result = compare.run(contenders, compare.load_heldout(heldout), max_tokens=16, general_text=GENERAL,
                         log=lambda *a: None)
    result["training"] = {"job": "memorize", "points": memorized[1]}
    return result


def test_memorized_text_has_lower_perplexity_and_forgetting_is_reported(memorized, tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tuned = AutoModelForCausalLM.from_pretrained(memorized[0])
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    t = perplexity.conversation_perplexity(tuned, tok, _facts_conversations())
    b = perplexity.conversation_perplexity(base, tok, _facts_conversations())
    assert t["perplexity"] < 1.5 < 100 < b["perplexity"]  # memorized vs random weights (vocab 512)
    assert t["tokens"] == b["tokens"] > len(FACTS)  # the same masked answer tokens were scored
    # the loss is the mean over the tokens training learns: the memorizing run's final loss agrees
    assert t["loss"] == pytest.approx(memorized[1][-1]["loss"], abs=0.05)
    forgot = perplexity.forgetting(base, tok, tuned, tok, GENERAL)
    assert set(forgot) == {"before", "after", "change", "verdict"}
    assert forgot["before"] > 1 and forgot["after"] > 1 and forgot["verdict"] in ("ok", "mild", "severe")


def test_ab_report_has_both_models_answers_and_metrics(ab_result, tmp_path):
    s = ab_result["summary"]
    assert s["tuned"]["pass_rate"] == 1.0 and s["tuned"]["exact_match"] == 0.75
    assert s["base"]["pass_rate"] < 0.5 and s["tuned"]["rougeL"] > s["base"]["rougeL"]
    assert s["tuned"]["reference_perplexity"] < s["base"]["reference_perplexity"]
    assert "forgetting" in ab_result and ab_result["forgetting"]["before"] == s["base"]["general_perplexity"]
    first = ab_result["examples"][0]
    assert first["answers"]["tuned"]["text"] == FACTS[0][1]

    out = report.write_report(ab_result, tmp_path / "report")
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # staged: nothing left beside it
    md = (out / "report.md").read_text()
    assert FACTS[0][1] in md and first["answers"]["base"]["text"].split("\n")[0][:20] in md
    assert "| tuned | " in md and "| base | " in md and "Forgetting check" in md
    page = (out / "report.html").read_text()
    assert "<svg" in page and 'class="loss"' in page and "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert json.loads((out / "report.json").read_text())["summary"]["tuned"]["pass_rate"] == 1.0


def test_blind_round_trip_is_deterministic(ab_result, tmp_path):
    one, two = blind.shuffle(ab_result, seed=7), blind.shuffle(ab_result, seed=7)
    assert one == two
    orders = {tuple(k.values()) for k in one[1].values()}
    assert len(orders) == 2  # with this seed both orders occur: position does not give the model away

    blind.write(ab_result, tmp_path, seed=7)
    sheet = (tmp_path / "blind" / "sheet.md").read_text()
    assert "tuned" not in sheet and "base" not in sheet and "**A:**" in sheet

    # A "person" who gives 5 to answers that state the reference and 1 otherwise, entered at the prompt.
    items = json.loads((tmp_path / "blind" / "sheet.json").read_text())["items"]
    answers = []
    for item in items:
        for a in item["answers"]:
            good = item["reference"].lower() in a["text"].lower()
            answers += ["9", "5" if good else "1"] + ["4"] * 4 + ["ok"]  # "9" is refused and asked again
    feed = iter(answers)
    said = []
    blind.enter_scores(tmp_path, ask=lambda _: next(feed), say=said.append)
    assert any("not a whole number from 1 to 5" in s for s in said)

    result = blind.unblind(tmp_path)
    assert result["human"]["tuned"]["relevance"] == 5.0 and result["human"]["base"]["relevance"] == 1.0
    assert result["human"]["tuned"]["overall"] > result["human"]["base"]["overall"]
    assert result["examples"][0]["answers"]["tuned"]["human"]["note"] == "ok"
    report.write_report(result, tmp_path)
    assert "Human scores" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "blind" / "scores.csv").is_file() and (tmp_path / "sealed" / "key.json").is_file()

    scores = tmp_path / "blind" / "scores.csv"
    lines = scores.read_text().splitlines()
    scores.write_text("\n".join(lines[:1] + [lines[1].replace(",5,", ",seven,", 1).replace(",1,", ",seven,", 1)]
                                + lines[2:]) + "\n")
    with pytest.raises(AirlockError, match="scores.csv:2: relevance"):
        blind.unblind(tmp_path)


def test_eval_command_offline_with_base_and_gguf(memorized, tiny_model, heldout, run_offline, tmp_path):
    from appliance.export.gguf import convert_model

    gguf = convert_model(memorized[0], tmp_path / "tuned-f16.gguf", "f16")
    out = tmp_path / "eval"
    proc = run_offline(airlock_argv("eval", memorized[0], "--data", heldout, "--base", tiny_model, "--gguf", gguf,
                                    "--report", out, "--max-new-tokens", "16", "--threads", "2"))
    assert "tuned-f16" in proc.stdout
    result = json.loads((out / "report.json").read_text())
    assert [m["label"] for m in result["models"]] == ["tuned", "base", "tuned-f16"]
    assert result["summary"]["tuned"]["pass_rate"] == 1.0
    # the f16 export answers (nearly) as the HF model does: f16 rounding may cost this over-fitted tiny model a
    # word (measured: "The fryer hot." for "The fryer is too hot."), so allow one of four to differ
    same = sum(e["answers"]["tuned"]["text"] == e["answers"]["tuned-f16"]["text"] for e in result["examples"])
    assert same >= 3 and result["summary"]["tuned-f16"]["pass_rate"] >= 0.75
    assert result["summary"]["tuned-f16"]["general_perplexity"] == pytest.approx(
        result["summary"]["tuned"]["general_perplexity"], rel=0.25)
    # memorizing five answers wrecks the tiny model's general text: the forgetting check says so
    assert result["forgetting"]["verdict"] == "severe" and "severe" in proc.stdout
    assert (out / "report.html").is_file() and any(
        e["kind"] == "eval" and e["path"] == str(out) for e in registry.artifacts().values())
    bad = run_offline(airlock_argv("eval", memorized[0], "--data", tmp_path / "missing.jsonl"), check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "missing.jsonl" in bad.stderr
