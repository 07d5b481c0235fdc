"""TUI traps an operator met at 80x24 over SSH: a fast-typed path lost in the file picker, digits that switch
screens while typing into a select, a form that calls a missing model valid, screens cut off, chat that does not
load or focus what it was handed. Driven by Textual's Pilot; keys are sent in one burst, as fast as a paste.

    .venv/bin/python -m pytest tests/test_tui_operator.py -q
"""

from tui_helpers import drive, wait_for

from appliance.tui.screenshots import screen_text


def _keys(text: str) -> list[str]:
    return [{" ": "space", ".": "full_stop", "/": "slash", "-": "minus", "_": "underscore"}.get(c, c) for c in text]


def test_file_picker_keeps_a_path_typed_at_full_speed_and_opens_in_the_fields_directory(tmp_path):
    folder = tmp_path / "site data"
    folder.mkdir()
    for i in range(30):  # a tree with enough entries to still be loading while the keys arrive
        (folder / f"part-{i:02d}.jsonl").write_text("{}\n")
    target = folder / "part-17.jsonl"

    async def scenario(app, pilot):
        app.screen.query_one("#data-path").value = str(folder / "part-03.jsonl")
        app.screen.action_browse()
        await pilot.pause(0.2)
        picker = app.screen
        opened_in = picker.start
        field = picker.query_one("#picker-path")
        await pilot.press(*["backspace"] * len(field.value), *_keys(str(target)), "enter")
        await pilot.pause(0.3)
        return opened_in, app.screen.query_one("#data-path").value

    opened_in, chosen = drive(scenario, start="data")
    assert opened_in == folder, "the picker opens where the field points, not in the current directory"
    assert chosen == str(target)


def test_typing_into_a_select_picks_an_option_and_never_switches_screens():
    async def scenario(app, pilot):
        select = app.screen.query_one("#f-method")
        select.focus()
        await pilot.press("f", "2", "3", "q")  # 'f' picks full; digits and other letters stay in the select
        await pilot.pause(0.2)
        return app.current_mode, select.value

    mode, method = drive(scenario, start="train")
    assert (mode, method) == ("train", "full")


def test_train_form_is_not_valid_for_a_model_that_is_not_installed():
    async def scenario(app, pilot):
        form = app.screen.query_one("#train-form")
        form.set_values({"model": "airlock-embedded/smollm2-135m-instruct-typo"})
        app.screen.validate()
        await pilot.pause(0.2)
        return str(app.screen.query_one("#valid").render()), app.screen.config

    shown, config = drive(scenario, start="train")
    assert config is None and "problem" in shown and "nor in the local Hugging Face cache" in shown


def test_every_screen_fits_80x24_with_nothing_cut_off():
    from appliance.tui.app import SCREENS

    async def scenario(app, pilot):
        shown = {}
        for name, _, _, _ in SCREENS:
            app.action_show(name)
            # drawn once its footer is (a screen is built the first time it shows), and its first data is in
            await wait_for(pilot, lambda: "Quit" in "".join(screen_text(app)[-1:]), f"the {name} screen drawn")
            await pilot.pause(0.8)
            shown[name] = screen_text(app)
        return shown

    shown = drive(scenario)
    for name, lines in shown.items():
        assert len(lines) == 24 and all(len(line) <= 80 for line in lines), name
        footer = lines[-1]
        assert "Quit" in footer, f"{name}: the footer's last key is cut off: {footer!r}"
        assert not any(line.rstrip().endswith("…") for line in lines), f"{name}: a line is cut short"
    export = "\n".join(shown["export"])
    from appliance.export.quantize import FTYPES

    for qtype in FTYPES:  # every type on screen, its state in text
        assert f"] {qtype} " in export + " ", qtype
    assert "[x] q4_k_m" in export and "[ ] q8_0" in export
    data = "\n".join(shown["data"])
    assert "dataset_info key" in data and "catalog default" in data
    train = "\n".join(shown["train"])
    assert "valid" in train and "fits" in train, "the memory line is shown whole"


def test_home_and_models_list_what_is_installed_first(tiny_model):
    async def scenario(app, pilot):
        table = app.screen.query_one("#home-models")
        await wait_for(pilot, lambda: table.row_count > 0, "models listed")
        return [table.get_row_at(i)[2] for i in range(table.row_count)]

    installed = drive(scenario)
    assert installed == sorted(installed, key=lambda v: v != "yes") and installed[0] == "yes", installed


def test_chat_with_it_loads_focuses_the_prompt_and_starts_a_new_conversation(tiny_model):
    async def scenario(app, pilot):
        screen = app.screen
        pane = screen.query_one("#pane-0")
        await pane.add_turn("an earlier question to another model")
        app.action_show("chat", model=str(tiny_model))  # what "Chat with it" on Models/Jobs sends
        await wait_for(pilot, lambda: pane.chat is not None, "the handed model loaded")
        await pilot.pause(0.3)
        return app.focused.id if app.focused else None, len(pane.query("Static.user")), screen.query_one(
            "#model").value

    focused, earlier_turns, model = drive(scenario, start="chat")
    assert (focused, earlier_turns, model) == ("prompt", 0, str(tiny_model))


def test_focus_is_shown_by_shape_not_only_colour():
    async def scenario(app, pilot):
        choices = app.screen.query_one("#types")
        choices.focus()
        await pilot.pause(0.1)
        focused = choices.render()
        app.screen.query_one("#source").focus()
        await pilot.pause(0.1)
        return focused, choices.render()

    focused, blurred = drive(scenario, start="export")
    assert any("reverse" in str(span.style) for span in focused.spans), "the cursor item is drawn reversed"
    assert not any("reverse" in str(span.style) for span in blurred.spans)
