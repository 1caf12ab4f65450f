"""`slimswap batch` and `slimswap job`: many swaps as a resumable queue of jobs, and the
queue's list and retry."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from slimswap.cli.common import console, fail, options_from
from slimswap.errors import UserError
from slimswap.options import JobSettings

job_app = typer.Typer(
    help="Inspect and retry the jobs of a `slimswap batch`.", no_args_is_help=True
)


def _print_job(job) -> None:
    if job.status == "done":
        console.print(
            f"[green]done[/]   {job.id}  {job.output}  ({job.seconds:.1f}s)", highlight=False
        )
    else:
        console.print(
            f"[red]failed[/] {job.id}  {Path(job.source).name} -> {Path(job.target).name}: {job.reason}",
            highlight=False,
        )


def _run_jobs(queue, swappers: dict | None = None) -> None:
    """Run the queue; the models its jobs need are loaded (and hash-checked) first, so a
    damaged model file stops the run with one line and exit code 2 before any job fails."""
    from slimswap.jobs import queued_models, run_queue
    from slimswap.swap.registry import load_swapper

    swappers = dict(swappers or {})
    for key in queued_models(queue) - set(swappers):
        swappers[key] = load_swapper(*key)
    summary = run_queue(queue, on_job=_print_job, swappers=swappers)
    console.print(
        f"{summary.done} done, {summary.failed} failed, {summary.skipped} already done before "
        f"in {summary.seconds:.1f}s; jobs in {queue.folder}",
        highlight=False,
    )
    if summary.failed:
        console.print(
            f"see why with `slimswap job list {queue.folder} --status failed`; retry with `slimswap job retry {queue.folder}`",
            highlight=False,
        )
        raise typer.Exit(1)


@options_from(JobSettings)
def batch(
    sources: list[str] = typer.Option(
        ...,
        "--source",
        "-s",
        help="Source face image or glob (quote it: 'faces/*.jpg'); repeatable.",
    ),
    targets: list[str] = typer.Option(
        ..., "--target", "-t", help="Target image/video or glob; repeatable."
    ),
    out_dir: Path = typer.Option(
        ...,
        "--out-dir",
        "-o",
        help="Folder for the outputs (created); the job queue goes in OUT_DIR/.slimswap-jobs.",
    ),
    name: str = typer.Option(
        "{source}_{target}{ext}",
        "--name",
        help="Output file name: {source}, {target} (stems), {index} (1-based, e.g. {index:04d}), {ext} (target's).",
    ),
    settings: JobSettings | None = None,
) -> None:
    """Swap every SOURCE into every TARGET as a resumable queue of jobs.

    Run it again to resume: finished items are not redone. Exit code 1 if any item failed
    (the others' outputs are kept), 2 if the batch could not start.
    """
    from slimswap.jobs import JOBS_DIRNAME, JobQueue, batch_outputs, enqueue, plan_batch
    from slimswap.swap.registry import load_swapper

    try:
        if settings.reference is not None:  # the job files outlive the current directory
            settings.reference = settings.reference.resolve()
        settings.check()
        from slimswap.provenance.credentials import load_credentials

        load_credentials(settings.c2pa_cert, settings.c2pa_key)  # a bad key fails now, not per job
        if out_dir.exists() and not out_dir.is_dir():
            raise UserError(f"--out-dir {out_dir} is a file; give a folder")
        queue = JobQueue(out_dir / JOBS_DIRNAME)
        planned = plan_batch(
            sources, targets, out_dir, name, settings, exclude=batch_outputs(queue)
        )
        swapper = load_swapper(settings.mode, settings.device)  # a bad model stops it here
        out_dir.mkdir(parents=True, exist_ok=True)
        added, known = enqueue(queue, planned)
        console.print(
            f"{len(planned)} jobs ({added} new, {known} from an earlier run) in {queue.folder}",
            highlight=False,
        )
        _run_jobs(queue, {(settings.mode, settings.device): swapper})
    except UserError as err:
        fail(str(err))


@job_app.command("list")
def job_list(
    folder: Path = typer.Argument(
        ..., help="The batch's output folder (or its .slimswap-jobs folder)."
    ),
    status: str | None = typer.Option(
        None, "--status", help="Only jobs with this status: queued, running, done, failed."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the jobs as JSON."),
) -> None:
    """List a batch's jobs with their status and, for failed ones, why."""
    from rich.table import Table

    from slimswap.jobs import STATUSES, JobQueue

    try:
        if status is not None and status not in STATUSES:
            raise UserError(f"--status must be one of {', '.join(STATUSES)}, got {status!r}")
        jobs = [j for j in JobQueue.find(folder).jobs() if status is None or j.status == status]
    except UserError as err:
        fail(str(err))
    if as_json:
        print(json.dumps([j.to_json() for j in jobs], indent=1))
        return
    table = Table(title=f"jobs in {folder}")
    for col in ("id", "#", "status", "source", "target", "output", "s", "reason"):
        table.add_column(col, overflow="fold")
    for j in jobs:
        colour = {"done": "green", "failed": "red", "running": "yellow"}.get(j.status, "")
        table.add_row(
            j.id,
            str(j.index),
            f"[{colour}]{j.status}[/]" if colour else j.status,
            Path(j.source).name,
            Path(j.target).name,
            Path(j.output).name,
            f"{j.seconds:.1f}" if j.seconds is not None else "",
            j.reason,
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)  # piped: no folding at 80
    counts = {s: sum(j.status == s for j in jobs) for s in STATUSES}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n))


@job_app.command("retry")
def job_retry(
    folder: Path = typer.Argument(
        ..., help="The batch's output folder (or its .slimswap-jobs folder)."
    ),
    ids: list[str] = typer.Argument(
        None, help="Job ids (or unique prefixes) to retry; default: every failed job."
    ),
) -> None:
    """Queue failed jobs again and run the queue (with each job's original settings)."""
    from slimswap.jobs import JobQueue, retry

    try:
        queue = JobQueue.find(folder)
        with queue.lock():
            again = retry(queue, ids or None)
        console.print(f"retrying {len(again)} job(s)", highlight=False)
        _run_jobs(queue)
    except UserError as err:
        fail(str(err))
