"""`airlock tui`: open the terminal app (a view over the same library functions as the other commands)."""

SCREENS = ["home", "data", "train", "jobs", "export", "chat", "models", "serve", "keys"]  # as appliance.tui.app


def register(sub) -> None:
    p = sub.add_parser("tui", help="open the terminal app (keyboard first; works over SSH at 80x24)")
    p.add_argument("--screen", choices=SCREENS, default="home", help="the screen to open on (default: home)")
    p.add_argument("--job", help="open the Jobs screen on this job id")
    p.set_defaults(func=run, offline=True)


def run(args) -> int:
    from ..tui.app import run as run_app

    return run_app("jobs" if args.job and args.screen == "home" else args.screen, args.job)
