"""Write docs/screenshots/*.svg: every screen of `airlock tui` at 80x24, drawn headless through Textual's Pilot.

    python -m appliance.tui.screenshots [OUT_DIR]      # default: docs/screenshots in the checkout

The pictures show whatever this host has (models, jobs, registry); run it on a demo home for tidy ones.
"""

import asyncio
import sys
from pathlib import Path

from .app import SCREENS, AirlockApp


def screen_text(app) -> list[str]:
    """The current screen as plain text lines, exactly as drawn (what a test reads to check nothing is cut off)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True,
                      legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text().splitlines()


async def _shoot(out: Path) -> list[Path]:
    written = []
    app = AirlockApp()
    async with app.run_test(size=(80, 24)) as pilot:
        for name, _, _, _ in SCREENS:
            app.action_show(name)
            await pilot.pause(1.5)  # let the screen's first refresh worker post its data
            if name == "train":  # show the sample data relative to the checkout, not this machine's absolute path
                app.screen.query_one("#train-form").set_values(
                    {"data": {"path": "appliance/sample_data/magic_conch.jsonl"}})
                await pilot.pause(0.3)
            written.append(Path(app.save_screenshot(f"tui-{name}.svg", str(out))))
    return written


def main() -> int:
    from ..paths import CHECKOUT

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else CHECKOUT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(_shoot(out)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
