"""`airlock jobs list|show JOB|logs JOB [-f]|stop JOB|rm JOB`: look at and control jobs (training, export, install)."""

import json

from .. import sources


def register(sub) -> None:
    p = sub.add_parser("jobs", help="list, inspect, follow, stop and remove jobs")
    jsub = p.add_subparsers(title="actions", metavar="ACTION", required=True)
    a = jsub.add_parser("list", help="all jobs with their state")
    a.add_argument("--kind", help="only jobs of this kind (train, export, ...)")
    a.set_defaults(func=list_, offline=True)
    a = jsub.add_parser("show", help="a job's details, status and latest metrics")
    a.add_argument("job", help="job id, unique id prefix or name")
    a.add_argument("--json", action="store_true", help="machine-readable output")
    a.set_defaults(func=show, offline=True)
    a = jsub.add_parser("logs", help="a job's log (-f follows it until the job ends)")
    a.add_argument("job")
    a.add_argument("-f", "--follow", action="store_true", help="keep printing until the job finishes")
    a.add_argument("-n", "--lines", type=int, default=40, help="lines of the log to show (default 40)")
    a.set_defaults(func=logs, offline=True)
    a = jsub.add_parser("stop", help="stop a running job (it saves a checkpoint first; resumable)")
    a.add_argument("job")
    a.add_argument("--grace", type=float, default=120.0, help="seconds to wait before SIGKILL (default 120)")
    a.set_defaults(func=stop, offline=True)
    a = jsub.add_parser("rm", help="delete jobs that are not running (a job with outputs needs --with-outputs)")
    a.add_argument("job", nargs="+", help="job ids, unique id prefixes or names")
    a.add_argument("--with-outputs", action="store_true",
                   help="also delete the adapters, merged models or GGUF files the jobs hold")
    a.set_defaults(func=rm, offline=True)


def list_(args) -> int:
    from ..jobs import list_jobs

    jobs = list_jobs(args.kind)
    if not jobs:
        print("no jobs")
        return 0
    from ..jobs import ACTIVE
    from ..tui.jobview import fmt_seconds

    print(f"{'JOB':44} {'KIND':8} {'STATE':10} {'STEP':>11} {'ETA':>7}  UPDATED")
    for job in jobs:
        st = job.status()
        step = f"{st.get('step') or 0}/{st.get('max_steps') or '?'}"
        eta = fmt_seconds(st.get("eta_s")) if st["state"] in ACTIVE else "-"
        print(f"{job.id:44} {job.kind:8} {st['state']:10} {step:>11} {eta:>7}  {st.get('updated') or ''}")
    return 0


def show(args) -> int:
    from ..jobs import find_job

    job = find_job(args.job)
    metrics = job.metrics()
    details = {**job.info, "path": str(job.path), "status": job.status(),
               "checkpoints": sorted((p.name for p in sources.checkpoints_dir(job.path).glob("checkpoint-*")),
                                     key=lambda n: int(n.rsplit("-", 1)[1])),
               "last_metrics": metrics[-1] if metrics else None,
               "outputs": [p.name for p in sources.outputs_of(job.path)]}
    if args.json:
        print(json.dumps(details, indent=2, default=str))
        return 0
    st = details["status"]
    print(f"job      {job.id} ({job.kind}, name {details.get('name')})\npath     {job.path}\n"
          f"state    {st['state']}  step {st.get('step')}/{st.get('max_steps')}  pid {st.get('pid')}\n"
          f"message  {st.get('message')}\nupdated  {st.get('updated')}\n"
          f"checkpts {', '.join(details['checkpoints']) or '-'}\noutputs  {', '.join(details['outputs']) or '-'}\n"
          f"command  {' '.join(details.get('argv', []))}")
    if metrics:
        print(f"metrics  {json.dumps(metrics[-1])}")
    return 0


def logs(args) -> int:
    from ..jobs import find_job, follow

    job = find_job(args.job)
    print(job.log_tail(args.lines))
    if args.follow:
        size = job.log_path.stat().st_size if job.log_path.is_file() else 0
        # Ctrl-C here only stops following; `airlock jobs stop` stops the job.
        follow(job, stop_on_interrupt=False, start=size)
    return 0


def stop(args) -> int:
    from ..jobs import find_job, stop as stop_job

    job = find_job(args.job)
    st = stop_job(job, grace_s=args.grace)
    print(f"job {job.id}: {st['state']} - {st.get('message', '')}")
    return 0


def rm(args) -> int:
    from ..job_removal import remove
    from ..jobs import find_job

    found = [find_job(ref) for ref in args.job]  # every name resolves before anything is deleted
    for job in found:
        removed = remove(job, with_outputs=args.with_outputs)
        extra = f"; outputs {', '.join(removed['outputs'])}" if removed["outputs"] else ""
        extra += f"; withdrawn from the registry: {', '.join(removed['artifacts'])}" if removed["artifacts"] else ""
        print(f"removed job {job.id} ({removed['kind']}, {removed['state']}){extra}")
    return 0
