"""The TUI's Serve and Keys screens, at 80x24 through Pilot: a key is created (its secret shown once), revoked
after a second press; a server job is started on the tiny model's GGUF, answers, and is stopped.

    .venv/bin/python -m pytest tests/test_tui_serve.py -q
"""

import httpx
from tui_helpers import drive, type_into, wait_for


def test_keys_screen_creates_shows_once_and_revokes(tmp_path, monkeypatch):
    from appliance.serve import keys

    monkeypatch.setenv("AIRLOCK_HOME", str(tmp_path))  # its own key store: a key elsewhere would close loopback

    async def scenario(app, pilot):
        await type_into(pilot, app, "#key-name", "tui-app")
        await type_into(pilot, app, "#key-rpm", "30")
        await pilot.press("ctrl+r")
        await pilot.pause(0.3)
        shown = str(app.screen.query_one("#key-secret").render())
        table = app.screen.query_one("#keys-table")
        table.focus()
        table.move_cursor(row=[str(k.value) for k in table.rows].index("tui-app"))
        await pilot.press("x")
        first = keys.load()["tui-app"].revoked
        await pilot.press("x")
        await pilot.pause(0.2)
        return shown, first, keys.load()["tui-app"]

    shown, after_one_press, key = drive(scenario, start="keys")
    assert "alk_tui-app_" in shown and "not stored" in shown
    assert after_one_press is None, "one press only asks"
    assert key.revoked and key.rpm == 30


def test_serve_screen_starts_and_stops_a_server(tiny_model, tmp_path):
    from conftest import airlock_argv  # noqa: F401  (the same test home as the CLI tests)
    from appliance.export.gguf import convert_model
    from test_serve_api import free_port

    gguf = convert_model(tiny_model, tmp_path / "tui-tiny.gguf", "f16")
    port = free_port()

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    async def scenario(app, pilot):
        await type_into(pilot, app, "#serve-model", str(gguf))
        await type_into(pilot, app, "#serve-port", str(port))
        await pilot.press("ctrl+r")
        table = app.screen.query_one("#servers")
        await wait_for(pilot, up, "the server to answer")
        await wait_for(pilot, lambda: table.row_count and "serving" not in str(table.get_row_at(0)) and
                       str(port) in str(table.get_row_at(0)[2]), "the server listed with its url")
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/completions", timeout=60,
                            json={"model": "tui-tiny", "prompt": "hello", "max_tokens": 3,
                                      "temperature": 0}).json()
        table.focus()
        await pilot.press("s")
        await wait_for(pilot, lambda: not up(), "the server to stop")
        await wait_for(pilot, lambda: table.row_count and table.get_row_at(0)[1] == "stopped", "shown stopped")
        return answer

    answer = drive(scenario, start="serve")
    assert answer.get("usage", {}).get("completion_tokens", 0) >= 1, answer
