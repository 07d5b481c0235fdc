"""An export as a detached job: `airlock export gguf ... --detach` and the TUI's Export screen.

The export runs in its own process group (appliance.jobs), so it survives the terminal or the TUI that started
it; its log lines go to the job's log.txt, `airlock jobs stop` interrupts it (the pipeline deletes its temporary
files and leaves earlier exports untouched), and the result (files, fidelity) is written to result.json.
"""

from pathlib import Path

from ..atomic import check_writable, write_json
from ..errors import AirlockError
from ..sources import RESULT

OPTIONS = ("types", "out", "system", "lora", "pre_tokenizer", "fidelity", "threads")


def start(source: str, argv: list[str], *, name: str | None = None, **options):
    """Check what can be checked at once (the source resolves, the output is writable), then start the export as
    a detached job. Returns the job."""
    from ..jobs import create_job, start_detached
    from ..sources import resolve_source
    from .pipeline import default_out, parse_types

    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise AirlockError(f"unknown export option(s): {', '.join(sorted(unknown))}", fix=f"use {', '.join(OPTIONS)}")
    src = resolve_source(source)
    parse_types(options.get("types"))
    check_writable(Path(options.get("out") or default_out(src)), "export")
    config = {"source": source, **{k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}}
    job = create_job("export", config, argv, name or f"export-{src.name}", runner="appliance.export.job:run_job")
    start_detached(job)
    return job


def run_job(job) -> None:
    """The runner: the export pipeline with its log in log.txt and its result in result.json."""
    import signal

    from .pipeline import export_gguf

    cfg = job.config()
    # `jobs stop` (SIGTERM) unwinds like Ctrl-C: the pipeline deletes its temporary files on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    job.set_status(state="running", message=f"exporting {cfg['source']}")
    try:
        result = export_gguf(cfg["source"], cfg.get("types"), out=Path(cfg["out"]) if cfg.get("out") else None,
                             system=cfg.get("system"), lora=bool(cfg.get("lora")),
                             pre_tokenizer=cfg.get("pre_tokenizer"), fidelity=cfg.get("fidelity", True),
                             threads=cfg.get("threads"), log=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        from ..jobrunner import StopRequested

        raise StopRequested() from None
    summary = {"out_dir": str(result.out_dir), "files": {t: str(p) for t, p in result.files.items()},
               "fidelity": result.fidelity, "timings": result.timings}
    write_json(job.path / RESULT, summary)
    job.set_status(message=f"{len(result.files)} GGUF file(s) in {result.out_dir}", output=str(result.out_dir))
