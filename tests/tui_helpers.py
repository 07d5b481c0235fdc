"""Helpers for driving `airlock tui` with Textual's Pilot in plain (sync) pytest tests."""

import asyncio

from appliance.tui.app import AirlockApp

SIZE = (80, 24)  # the smallest terminal the app promises to work in


def drive(scenario, start: str = "home", job: str | None = None):
    """Run `await scenario(app, pilot)` against a fresh app at 80x24; returns what the scenario returns."""

    async def main():
        app = AirlockApp(start, job)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            return await scenario(app, pilot)

    return asyncio.run(main())


async def wait_for(pilot, predicate, what: str, polls: int = 1200, every: float = 0.25):
    """Let the app run until predicate() is true; fails (naming `what`) if it never becomes true.

    The bound only stops a broken run from hanging forever; it is not a speed requirement.
    """
    for _ in range(polls):
        if predicate():
            return
        await pilot.pause(every)
    raise AssertionError(f"never happened: {what}")


async def type_into(pilot, app, selector: str, text: str) -> None:
    """Focus a field, clear it with the keyboard and type `text` key by key."""
    widget = app.screen.query_one(selector)
    widget.focus()
    await pilot.pause()
    await pilot.press("end", *["backspace"] * len(widget.value))
    await pilot.press(*[{" ": "space", ".": "full_stop", "/": "slash", "-": "minus", "_": "underscore"}.get(c, c)
                        for c in text])
    await pilot.pause()


def notifications(app) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]
