"""The TUI's navigation, Home, Models and Train-form validation, driven by Textual's Pilot at 80x24.

    .venv/bin/python -m pytest tests/test_tui_screens.py -q
"""

from tui_helpers import drive, notifications, type_into, wait_for

from appliance.tui.app import SCREENS


def test_every_screen_opens_by_key_and_palette_lists_them():
    async def scenario(app, pilot):
        seen = {}
        for name, _, key, _ in SCREENS:
            app.screen.set_focus(None)  # keys 1-7 switch screens when no text field has focus
            await pilot.press(key)
            await pilot.pause(0.2)
            seen[name] = (app.current_mode, type(app.screen).__name__)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        return seen, titles

    seen, titles = drive(scenario)
    for name, _, _, spec in SCREENS:
        assert seen[name] == (name, spec.split(":")[1]), seen[name]
    assert {f"Go to {t}" for _, t, _, _ in SCREENS} <= set(titles)


def test_home_lists_host_models_and_jobs(tiny_model):
    from appliance.jobs import create_job

    job = create_job("train", {"data": {"path": "x"}}, ["airlock", "train"], "home-listed",
                     runner="appliance.train.recipe:run_job")

    async def scenario(app, pilot):
        table = app.screen.query_one("#home-jobs")
        await wait_for(pilot, lambda: job.id in [str(k.value) for k in table.rows], "the job listed on Home")
        host = str(app.screen.query_one("#host").render())
        models = app.screen.query_one("#home-models")
        repos = [models.get_row(k)[0] for k in models.rows]
        table.focus()
        table.move_cursor(row=[str(k.value) for k in table.rows].index(job.id))
        await pilot.press("enter")
        await pilot.pause(0.3)
        return host, repos, app.current_mode, app.screen.selected

    host, repos, mode, selected = drive(scenario)
    assert "CPU" in host or "GPU" in host
    assert "disk for jobs" in host
    assert "airlock-test/tiny-llama" in repos
    assert (mode, selected) == ("jobs", job.id)


def test_models_screen_shows_lineage():
    from appliance import registry

    registry.record("base", "org/base-x", None)
    registry.record("adapter", "job-lineage-1", "/nowhere/adapter", parents=["org/base-x", "dataset:abc"],
                    method="lora", steps=30)
    registry.record("gguf", "job-lineage-1-q4_k_m", "/nowhere/model.gguf", parents=["job-lineage-1"],
                    type="q4_k_m", size_mb=80)

    async def scenario(app, pilot):
        table = app.screen.query_one("#models-table")
        await wait_for(pilot, lambda: "job-lineage-1-q4_k_m" in [str(k.value) for k in table.rows], "the gguf row")
        table.focus()
        table.move_cursor(row=[str(k.value) for k in table.rows].index("job-lineage-1-q4_k_m"))
        await pilot.pause(0.2)
        return str(app.screen.query_one("#model-detail").render())

    detail = drive(scenario, start="models")
    lines = detail.splitlines()
    assert lines[0].startswith("job-lineage-1-q4_k_m")
    assert "<- job-lineage-1" in lines[1] and "<- org/base-x" in lines[2]  # gguf <- adapter <- base
    assert "type: q4_k_m" in detail


def test_train_form_validates_inline_with_the_cli_schema(tmp_path, tiny_model):
    async def scenario(app, pilot):
        await type_into(pilot, app, "#f-learning_rate", "abc")
        bad = str(app.screen.query_one("#err-f-learning_rate").render())
        valid_bad = str(app.screen.query_one("#valid").render())
        await type_into(pilot, app, "#f-learning_rate", "2")  # a number, but outside (0, 1): TrainConfig.validate
        range_bad = str(app.screen.query_one("#err-f-learning_rate").render())
        await type_into(pilot, app, "#f-learning_rate", "0.001")
        await type_into(pilot, app, "#f-data-path", str(tmp_path / "d.jsonl"))
        fixed = str(app.screen.query_one("#err-f-learning_rate").render())
        await pilot.press("ctrl+t")
        await pilot.pause(0.2)
        yaml_text = app.screen.query_one("#config-yaml").text
        app.screen.query_one("#save-path").value = str(tmp_path / "saved.yaml")
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        cli = str(app.screen.query_one("#cli").render())
        return bad, valid_bad, range_bad, fixed, yaml_text, cli

    bad, valid_bad, range_bad, fixed, yaml_text, cli = drive(scenario, start="train")
    assert "expected a number, got 'abc'" in bad
    assert "problem" in valid_bad
    assert "outside (0, 1)" in range_bad
    assert fixed == ""
    assert "learning_rate: 0.001" in yaml_text
    assert "airlock train" in cli and "saved.yaml" in cli
    # The saved file is what the CLI reads: the same schema gives the same config back.
    from appliance.train import load_config

    cfg = load_config(tmp_path / "saved.yaml")
    assert cfg.learning_rate == 0.001 and cfg.data.path == str(tmp_path / "d.jsonl")


def test_library_errors_become_notifications_not_tracebacks(tmp_path):
    from appliance.tui.app import log_path

    async def scenario(app, pilot):
        from appliance.errors import AirlockError

        app.fail(AirlockError("no such job", where="jobs", fix="see the list"), "resuming")
        try:
            raise ValueError("boom")
        except ValueError as exc:
            app.fail(exc, "testing")
        await pilot.pause(0.2)
        return notifications(app)

    notes = drive(scenario)
    assert any("no such job" in n and "fix: see the list" in n for n in notes)
    assert any("ValueError: boom" in n and "tui.log" in n for n in notes)
    assert "Traceback" in log_path().read_text()  # the details went to the log file
