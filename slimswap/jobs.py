"""Batch swaps as a queue of jobs stored as JSON files, one file a job.

Why files: an interrupted batch (Ctrl-C, a killed process, a power cut) resumes from what the
files say, without redoing finished items; each output is written atomically by the pipeline,
so a crash in one item never touches the others' outputs; and `job list` / `job retry` work
from another shell. The queue folder (`<out_dir>/.slimswap-jobs/` by default) holds
`<id>.json` per job and a lock file, so two runs never work on one queue at once.

A job's id is a hash of its (source, target, output) paths, so planning the same batch again
finds the existing jobs instead of adding new ones. Each job carries the swap settings it
was queued with, so `job retry` reruns it exactly as planned.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import logging
import os
import string
import time
import traceback
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from slimswap.errors import UserError
from slimswap.face.analyser import FaceAnalyser
from slimswap.files import atomic_write, remove_stale_temps
from slimswap.options import JobSettings
from slimswap.pipeline import swap_file
from slimswap.swap.base import Swapper

log = logging.getLogger(__name__)

JOBS_DIRNAME = ".slimswap-jobs"
STATUSES = ("queued", "running", "done", "failed")
PLACEHOLDERS = ("source", "target", "index", "ext")
MAX_ATTEMPTS = 2  # a job found "running" this many times killed its process each time


@dataclass
class Job:
    id: str
    index: int  # 1-based position in the batch it was planned in
    source: str
    target: str
    output: str
    settings: JobSettings
    status: str = "queued"
    reason: str = ""  # why it failed (one line, for people)
    detail: str = ""  # traceback of an unexpected error (for bug reports)
    attempts: int = 0
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    seconds: float | None = None

    def to_json(self) -> dict:
        return {**asdict(self), "settings": self.settings.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> Job:
        data = dict(data)
        data["settings"] = JobSettings.from_json(data.get("settings", {}))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def job_id(source: Path, target: Path, output: Path) -> str:
    key = "\0".join(str(p.resolve()) for p in (source, target, output))
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def _job_files(folder: Path) -> list[Path]:
    """`<id>.json` files; hidden ones are temporaries of a write in progress (or killed)."""
    return [p for p in folder.glob("*.json") if not p.name.startswith(".")]


class JobQueue:
    """The jobs folder: `<id>.json` files, written atomically, and a lock for the runner."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @classmethod
    def find(cls, path: Path) -> JobQueue:
        """The queue for an output folder (or the jobs folder itself)."""
        path = Path(path)
        for candidate in (path / JOBS_DIRNAME, path):
            if candidate.is_dir() and any(_job_files(candidate)):
                return cls(candidate)
        raise UserError(
            f"no batch jobs in {path}; start a batch with `slimswap batch ... -o {path}`"
        )

    def path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def save(self, job: Job) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path(job.id)) as tmp:
            tmp.write_text(json.dumps(job.to_json(), indent=1) + "\n")

    def load(self, job_id: str) -> Job:
        path = self.path(job_id)
        try:
            return Job.from_json(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as err:
            raise UserError(
                f"cannot read job file {path} ({err}); delete it and run the batch again"
            ) from None

    def jobs(self) -> list[Job]:
        if not self.folder.is_dir():
            return []
        return sorted(
            (self.load(p.stem) for p in _job_files(self.folder)), key=lambda j: (j.index, j.id)
        )

    def select(self, ids: list[str]) -> list[Job]:
        """Jobs by id or unique id prefix."""
        jobs = self.jobs()
        out = []
        for wanted in ids:
            hits = [j for j in jobs if j.id.startswith(wanted)]
            if len(hits) != 1:
                what = "no job" if not hits else f"{len(hits)} jobs"
                raise UserError(
                    f"{what} in {self.folder} with id {wanted!r}; see `slimswap job list`"
                )
            out.append(hits[0])
        return out

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Only one runner per queue: a second `batch`/`retry` on it fails at once."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(
                    f"another slimswap run is working on {self.folder}; wait for it to finish"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


# ------------------------------------------------------------------ planning


def expand(patterns: list[str], what: str) -> list[Path]:
    """Files matching any of the glob patterns (or plain paths), sorted, without repeats."""
    found: dict[str, Path] = {}
    for pattern in patterns:
        hits = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        files = [Path(h) for h in hits if Path(h).is_file()]
        if not files:
            raise UserError(f"no {what} files match {pattern!r}")
        for f in files:
            found.setdefault(str(f.resolve()), f)
    return list(found.values())


def check_name_pattern(pattern: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    except ValueError as err:
        raise UserError(f"bad --name pattern {pattern!r}: {err}") from None
    unknown = sorted(n for n in names if n not in PLACEHOLDERS)
    if unknown:
        allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        raise UserError(f"--name pattern {pattern!r} uses unknown {{{unknown[0]}}}; use {allowed}")


def output_name(pattern: str, source: Path, target: Path, index: int) -> str:
    """`{source}`/`{target}`: file names without extension; `{index}`: 1-based job number
    (format specs work: `{index:04d}`); `{ext}`: the target's extension, dot included."""
    try:
        return pattern.format(
            source=source.stem, target=target.stem, index=index, ext=target.suffix.lower()
        )
    except (ValueError, IndexError, KeyError) as err:
        raise UserError(f"bad --name pattern {pattern!r}: {err}") from None


def plan_batch(
    sources: list[str],
    targets: list[str],
    out_dir: Path,
    name: str,
    settings: JobSettings,
    exclude: Collection[str] = (),
) -> list[Job]:
    """Every (source, target) pair as a job, in a stable order (sources outer, sorted)."""
    check_name_pattern(name)
    source_files = [p for p in expand(sources, "source") if str(p.resolve()) not in exclude]
    target_files = [p for p in expand(targets, "target") if str(p.resolve()) not in exclude]
    if not source_files or not target_files:
        raise UserError("the source and target patterns match only this batch's own outputs")
    jobs: list[Job] = []
    seen: dict[str, tuple[Path, Path]] = {}
    for i, (src, tgt) in enumerate(((s, t) for s in source_files for t in target_files), start=1):
        out = Path(out_dir) / output_name(name, src, tgt, i)
        key = str(out.resolve())
        if key in seen:
            a, b = seen[key]
            raise UserError(
                f"--name {name!r} gives {out} for both ({a.name}, {b.name}) and ({src.name}, {tgt.name}); "
                "add {source} and {target} (or {index}) to it"
            )
        seen[key] = (src, tgt)
        jobs.append(
            Job(
                id=job_id(src, tgt, out),
                index=i,
                source=str(src),
                target=str(tgt),
                output=str(out),
                settings=settings,
            )
        )
    return jobs


def enqueue(queue: JobQueue, planned: list[Job]) -> tuple[int, int]:
    """Store the planned jobs that the queue does not have yet; returns (added, already there)."""
    known = {j.id for j in queue.jobs()}
    added = 0
    for job in planned:
        if job.id not in known:
            queue.save(job)
            added += 1
    return added, len(planned) - added


# ------------------------------------------------------------------ running


@dataclass
class QueueSummary:
    done: int = 0
    failed: int = 0
    skipped: int = 0  # already done before this run
    seconds: float = 0.0


SwapperLoader = Callable[[str, str], Swapper]


def _default_loader(mode: str, device: str) -> Swapper:
    from slimswap.swap.registry import load_swapper

    return load_swapper(mode, device)


def recover_interrupted(queue: JobQueue) -> list[Job]:
    """Jobs left "running" by a run that died: done if their output was completed (the
    pipeline renames it into place only when whole), else queued again; failed after
    MAX_ATTEMPTS deaths so one poisonous input cannot stall the batch forever. The dead
    run's temporary output file (it had no chance to delete it) goes either way."""
    changed = []
    for job in queue.jobs():
        if job.status != "running":
            continue
        out = Path(job.output)
        remove_stale_temps(out)  # the dead run's half-written output
        if out.is_file() and job.started is not None and out.stat().st_mtime >= job.started - 1:
            job.status, job.reason, job.finished = (
                "done",
                "finished before the run was interrupted",
                out.stat().st_mtime,
            )
        elif job.attempts >= MAX_ATTEMPTS:
            job.status = "failed"
            job.reason = f"the process died while swapping this item ({job.attempts} times); `slimswap job retry {job.id}`"
        else:
            job.status, job.reason = "queued", "interrupted; queued again"
        queue.save(job)
        changed.append(job)
    return changed


def queued_models(queue: JobQueue) -> set[tuple[str, str]]:
    """(mode, device) of every job that a run would start (queued, or left running)."""
    return {
        (j.settings.mode, j.settings.device)
        for j in queue.jobs()
        if j.status in ("queued", "running")
    }


def run_queue(
    queue: JobQueue,
    on_job: Callable[[Job], None] | None = None,
    load: SwapperLoader = _default_loader,
    analyser: FaceAnalyser | None = None,
    swappers: dict[tuple[str, str], Swapper] | None = None,
) -> QueueSummary:
    """Run every queued job in order; done and failed jobs are left as they are.

    swappers: already loaded swappers by (mode, device); the others are loaded with `load`
    when a job first needs them (a model that cannot load fails that job, with the reason).
    """
    start = time.perf_counter()
    summary = QueueSummary()
    swappers = dict(swappers or {})
    analysers: dict[tuple[int, str], FaceAnalyser] = {}
    with queue.lock():
        recover_interrupted(queue)
        for job in queue.jobs():
            if job.status != "queued":
                summary.skipped += job.status == "done"
                summary.failed += job.status == "failed"
                continue
            _run_one(queue, job, swappers, analysers, load, analyser)
            summary.done += job.status == "done"
            summary.failed += job.status == "failed"
            if on_job is not None:
                on_job(job)
    summary.seconds = time.perf_counter() - start
    return summary


def _run_one(
    queue: JobQueue,
    job: Job,
    swappers: dict,
    analysers: dict,
    load: SwapperLoader,
    analyser: FaceAnalyser | None,
) -> None:
    job.status, job.reason, job.detail = "running", "", ""
    job.attempts += 1
    job.started, job.finished, job.seconds = time.time(), None, None
    queue.save(job)
    t = time.perf_counter()
    try:
        settings = job.settings
        settings.check()
        key = (settings.mode, settings.device)
        if key not in swappers:
            swappers[key] = load(settings.mode, settings.device)
        face_analyser = analyser or analysers.setdefault(
            (settings.upsample, settings.detector),
            FaceAnalyser(upsample=settings.upsample, detector=settings.detector),
        )
        Path(job.output).parent.mkdir(parents=True, exist_ok=True)
        swap_file(
            Path(job.source),
            Path(job.target),
            Path(job.output),
            swappers[key],
            settings.options(),
            face_analyser,
        )
        job.status = "done"
    except UserError as err:
        job.status, job.reason = "failed", str(err)
    except (KeyboardInterrupt, SystemExit):
        job.status, job.reason = "queued", "interrupted; queued again"
        job.attempts -= 1
        queue.save(job)
        raise
    except Exception as err:  # a bug on one input must not stop the batch; keep the traceback
        log.exception("job %s crashed", job.id)
        job.status, job.reason = (
            "failed",
            f"unexpected error {type(err).__name__}: {err} (traceback in the job file)",
        )
        job.detail = traceback.format_exc()
    job.finished = time.time()
    job.seconds = round(time.perf_counter() - t, 3)
    queue.save(job)


def retry(queue: JobQueue, ids: list[str] | None = None) -> list[Job]:
    """Queue failed jobs again (all of them, or the ones named); returns them."""
    jobs = queue.select(ids) if ids else [j for j in queue.jobs() if j.status == "failed"]
    for job in jobs:
        if job.status in ("done", "running"):
            raise UserError(
                f"job {job.id} is {job.status}; only failed or queued jobs can be retried"
            )
    for job in jobs:
        job.status, job.reason, job.detail, job.attempts = "queued", "", "", 0
        queue.save(job)
    return jobs


def batch_outputs(queue: JobQueue) -> set[str]:
    """Resolved output paths of the queue's jobs, so a re-run never takes them as inputs."""
    return {str(Path(j.output).resolve()) for j in queue.jobs()}
