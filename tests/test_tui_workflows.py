"""The TUI's work screens with the real backends on the tiny model, driven by Pilot at 80x24: a bad dataset's
problems, a training job started from the form (loss points arrive, stop, resume, completes), a GGUF export with
its fidelity figures, and chat with streamed answers from two models side by side (GGUF vs HF), saved and reopened.

    .venv/bin/python -m pytest tests/test_tui_workflows.py -q
"""

import json
from pathlib import Path

import pytest
from tui_helpers import drive, type_into, wait_for

from tiny_model import REPO_ID, facts_as_sharegpt


def test_data_screen_lists_every_problem_and_renders_a_sample(tmp_path, tiny_model):
    data = tmp_path / "bad.jsonl"
    good = facts_as_sharegpt()
    data.write_text(json.dumps(good[0]) + "\n" + "{broken json\n" + json.dumps({"conversations": [
        {"from": "human", "value": "hi"}]}) + "\n" + json.dumps(good[1]) + "\n")

    async def scenario(app, pilot):
        await type_into(pilot, app, "#tokenizer", REPO_ID)
        await type_into(pilot, app, "#data-path", str(data))
        await pilot.press("enter")
        table = app.screen.query_one("#problems")
        await wait_for(pilot, lambda: table.row_count >= 2, "the problems listed")
        rows = [table.get_row(k) for k in table.rows]
        table.focus()
        await pilot.press("down")
        await pilot.pause(0.2)
        detail = str(app.screen.query_one("#problem-detail").render())
        await wait_for(pilot, lambda: app.screen.samples, "the token statistics and the sample")
        cleaning = str(app.screen.query_one("#cleaning").render())
        assert "dedupe exact" in cleaning and "removes 0" in cleaning, cleaning
        return rows, detail, str(app.screen.query_one("#stats").render()), app.screen.samples[0]

    rows, detail, stats, sample = drive(scenario, start="data")
    records = {r[2] for r in rows}
    assert any("line 2" in r for r in records) and any("line 3" in r for r in records), rows
    assert all(r[1] == "bad.jsonl" for r in rows)
    assert "bad.jsonl: line 3" in detail
    assert "tokens" in stats and "trained" in stats
    source, pieces = sample
    assert any(trained for _, trained in pieces) and any(not trained for _, trained in pieces)
    assert "I am the Magic Conch." in "".join(text for text, trained in pieces if trained)


def test_train_form_starts_a_job_that_can_be_stopped_and_resumed(tmp_path, tiny_model):
    from appliance.jobs import list_jobs

    data = tmp_path / "facts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in facts_as_sharegpt() * 4))
    before = {j.id for j in list_jobs()}

    async def scenario(app, pilot):
        form = app.screen.query_one("#train-form")
        form.set_values({"method": "full", "learning_rate": "0.001", "max_steps": "300", "logging_steps": "2",
                         "save_steps": "100", "per_device_train_batch_size": "4", "data": {"cutoff_len": "64"}})
        await type_into(pilot, app, "#f-model", REPO_ID)
        await type_into(pilot, app, "#f-data-path", str(data))
        app.screen.query_one("#job-name", expect_type=None).value = "tui-train"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.current_mode == "jobs", "the Jobs screen after Start")
        jobs = app.screen
        chart = jobs.query_one("#loss-chart")
        await wait_for(pilot, lambda: chart.points >= 2, "loss points on the chart")
        points_running = chart.points
        job = next(j for j in list_jobs() if j.id not in before)
        await pilot.press("s", "n")  # stopping asks first; No leaves the job running
        await pilot.pause(0.5)
        assert job.status()["state"] == "running"
        await pilot.press("s", "y")
        await wait_for(pilot, lambda: job.status()["state"] == "stopped", "the job stopped")
        stopped_at = job.status()["step"]
        await pilot.press("R")
        await wait_for(pilot, lambda: job.status()["state"] == "completed", "the resumed job completed", polls=4000)
        await wait_for(pilot, lambda: "completed" in str(jobs.query_one("#job-status").render()), "shown completed")
        return job, points_running, stopped_at

    job, points_running, stopped_at = drive(scenario, start="train")
    assert points_running >= 2
    assert 0 < stopped_at < 300  # enough steps that the job is still running when it is stopped
    assert (job.path / "model" / "airlock_provenance.json").is_file()
    assert job.info["name"] == "tui-train"
    assert any("resuming from" in line for line in job.log_path.read_text().splitlines())


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    """The tiny model exported to GGUF through the Export screen; returns (result, log text, state text, job kinds)."""
    from appliance.jobs import list_jobs

    out = tmp_path_factory.mktemp("gguf")

    async def scenario(app, pilot):
        await type_into(pilot, app, "#source", REPO_ID)
        app.screen.query_one("#out").value = str(out)
        await pilot.press("ctrl+r")
        state = app.screen.query_one("#export-state")
        await wait_for(pilot, lambda: app.screen.result is not None or "export " in str(state.render())[:7],
                       "the export job ended", polls=4000)
        log = "\n".join(app.screen.query_one("#export-log").lines)
        kinds = [job.kind for job in list_jobs()]
        return app.screen.result, log, str(state.render()), kinds

    return drive(scenario, start="export")


def test_export_screen_writes_gguf_and_shows_fidelity(exported):
    result, log, state, kinds = exported
    assert result is not None, log
    assert Path(result["files"]["q4_k_m"]).is_file()
    assert state.startswith("done") and "export" in kinds, "the export ran as a detached job"
    assert "fidelity:" in log and "q4_k_m" in log.split("fidelity:")[1]


def test_chat_streams_compares_two_models_stops_and_reopens(exported, tiny_model):
    result, _, _, _ = exported
    gguf = result["files"]["q4_k_m"]

    async def scenario(app, pilot):
        await type_into(pilot, app, "#model", str(gguf))
        app.screen.query_one("#model2").value = str(tiny_model)
        await pilot.press("ctrl+l")
        panes = list(app.screen.query("Pane"))
        await wait_for(pilot, lambda: all(p.chat is not None for p in panes), "both models loaded", polls=4000)
        app.screen.query_one("#max_tokens").value = "16"
        await type_into(pilot, app, "#prompt", "Who are you?")
        await pilot.press("enter")
        await pilot.pause(0.05)
        await wait_for(pilot, lambda: all(p.chat.history and not p.streaming for p in panes), "two answers")
        answers = [p.chat.history[-1]["content"] for p in panes]
        shown = [str(p.query("Markdown").last().source) for p in panes]
        # Esc stops a long answer early.
        app.screen.query_one("#max_tokens").value = "4000"
        await type_into(pilot, app, "#prompt", "Where do you work?")
        await pilot.press("enter")
        await wait_for(pilot, lambda: all(len(p.answer_text) > 0 for p in panes), "streaming started")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not any(p.streaming for p in panes), "generation stopped")
        stopped_tokens = [p.chat.session.count_tokens([{"role": "assistant", "content": p.answer_text}])
                          for p in panes]
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        return answers, shown, stopped_tokens

    answers, shown, stopped_tokens = drive(scenario, start="chat")
    assert all(a for a in answers) and answers == shown  # streamed into the Markdown widgets
    assert all(n < 4000 for n in stopped_tokens)
    from appliance.tui.screens.chat import chats_dir

    saved = sorted(chats_dir().glob("*.json"))
    assert len(saved) >= 2
    data = json.loads(saved[-1].read_text())
    assert [m["role"] for m in data["messages"] if m["role"] != "system"][:2] == ["user", "assistant"]

    async def reopen(app, pilot):
        await app.screen._reopen(saved[0])
        await pilot.pause(0.2)
        pane = app.screen.query_one("#pane-0")
        return [str(m.source) for m in pane.query("Markdown")]

    reopened = drive(reopen, start="chat")
    assert reopened[0] == json.loads(saved[0].read_text())["messages"][1]["content"]
