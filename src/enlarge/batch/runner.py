"""Runs a batch job: list the items, decide what each needs, drive an engine, keep the manifest, report.

For each input the runner decides, from the manifest and the files on disk:

- **skip** an item done earlier with the same parameters whose input and output both still hash as recorded;
- **do** anything else: new, interrupted, failed before, parameters changed, output missing or changed;
- an existing output that this job never wrote (no manifest row names it) follows `output.overwrite`: skip it,
  replace it, or report the item as failed.

The driver reads each input's bytes as an engine has room for them, marks the item `running`, and when the
outcome comes back writes the output (`write_by: driver`; with `worker`, it checks the worker's file by its hash)
and marks it `done` or `failed`. A crash (an exception, not a problem with the input) is retried up to
`run.retries` times; problems the user can fix (a corrupt input, an impossible size) are reported at once.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from enlarge.batch.local import LocalEngine, auto_workers
from enlarge.batch.manifest import DONE, FAILED, RUNNING, Manifest, Record
from enlarge.batch.spec import JobSpec
from enlarge.batch.work import Outcome, Task, WorkerConfig
from enlarge.batch.workspace import Workspace, manifest_path, open_workspace, sha256_bytes, sha256_file, write_output
from enlarge.errors import ConfigError, EnlargeError, OutputError
from enlarge.imageio import probe_image
from enlarge.paths import images_in
from enlarge.sizing import max_input_pixels
from enlarge.upscaler import Upscaler

DO, SKIP, FAIL = "do", "skip", "fail"
EXIT_SOME_FAILED = 2  # as `enlarge upscale`: at least one item could not be done
PARAMS_HASH_CHARS = 16
SECONDS_PER_MINUTE = 60
LIST_COMMENT = "#"
MAX_CRASH_CHARS = 300
NOT_OURS = "the output exists and this job did not write it"
ROUTED_DIGITS = 4  # decimals of an item's routed fraction in the report


@dataclass(frozen=True)
class Item:
    """One input and the output it becomes (both absolute)."""

    input: Path
    output: Path


@dataclass(frozen=True)
class Decision:
    """What the runner will do with an item, and why."""

    item: Item
    action: str
    reason: str


@dataclass
class Report:
    """What a run did (or, for a dry run, would do)."""

    engine: str
    threads: int
    dry_run: bool = False
    workers: int = 0
    plan: list[Decision] = field(default_factory=list)
    done: list[tuple[Item, Outcome]] = field(default_factory=list)
    skipped: list[Decision] = field(default_factory=list)
    failed: list[tuple[Item, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_SOME_FAILED if self.failed else 0

    @property
    def images_per_minute(self) -> float:
        return len(self.done) / self.seconds * SECONDS_PER_MINUTE if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """The report as text: the plan for a dry run; else counts, skip reasons and each failure."""
        if self.dry_run:
            counts = Counter(decision.action for decision in self.plan)
            rows = [f"{d.action:<4} {d.item.input} → {d.item.output} ({d.reason})" for d in self.plan]
            return [*rows, f"plan: {counts[DO]} to do, {counts[SKIP]} to skip, {counts[FAIL]} failing"]
        total = len(self.done) + len(self.skipped) + len(self.failed)
        lines = [(
            f"done {len(self.done)}, skipped {len(self.skipped)}, failed {len(self.failed)} of {total} "
            f"in {self.seconds:.1f} s ({self.images_per_minute:.1f} images/min; {self.engine}, "
            f"{self.workers} worker(s) × {self.threads} thread(s))"
        )]
        reasons = Counter(decision.reason for decision in self.skipped)
        lines += [f"skipped {count}: {reason}" for reason, count in reasons.items()]
        lines += [f"failed {item.input}: {reason}" for item, reason in self.failed]
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, one entry per item."""
        if self.dry_run:
            return {"plan": [_entry(d.item, action=d.action, reason=d.reason) for d in self.plan]}
        return {
            "done": [
                _entry(item, input_size=list(o.input_size or ()), output_size=list(o.output_size or ()),
                       model=o.method, seconds=round(o.seconds, 3), notes=list(o.notes), **_routed(o), **_choice(o))
                for item, o in self.done
            ],
            "skipped": [_entry(d.item, reason=d.reason) for d in self.skipped],
            "failed": [_entry(item, reason=reason) for item, reason in self.failed],
            "seconds": round(self.seconds, 3),
            "images_per_minute": round(self.images_per_minute, 1),
            "engine": self.engine,
            "workers": self.workers,
            "threads": self.threads,
        }


class Engine(Protocol):
    """What the runner needs of an engine (LocalEngine, RayEngine)."""

    workers: int

    def has_room(self) -> bool: ...

    def busy(self) -> bool: ...

    def submit(self, task: Task, token: Any) -> None: ...

    def next_done(self) -> tuple[Any, Outcome | BaseException]: ...

    def close(self) -> None: ...


def run_job(job: JobSpec, *, dry_run: bool = False, progress: bool = False) -> Report:
    """Run (or, with `dry_run`, only plan) `job`; `progress` shows a bar with rate and ETA on stderr."""
    start = time.perf_counter()
    upscaler = Upscaler(  # fails fast: an unknown model, or adaptive for one that cannot route
        job.model.name, tile=job.model.tile, precision=job.model.precision, adaptive=job.model.adaptive
    )
    params = params_hash(job, upscaler)
    report = Report(engine=job.run.engine, threads=job.run.threads, dry_run=dry_run)
    folder = job.output.folder.absolute()
    if dry_run:
        records = Manifest.read(manifest_path(folder))
        report.plan = decide(job, plan_items(job, records), records, params)
        return report
    with open_workspace(folder) as workspace:
        records = workspace.manifest.records()
        report.plan = decide(job, plan_items(job, records), records, params)
        report.skipped = [d for d in report.plan if d.action == SKIP]
        report.failed = [(d.item, d.reason) for d in report.plan if d.action == FAIL]
        todo = [d.item for d in report.plan if d.action == DO]
        if todo:
            _execute(job, workspace, todo, params, report, progress)
    report.seconds = time.perf_counter() - start
    return report


def params_hash(job: JobSpec, upscaler: Upscaler) -> str:
    """A short hash of everything that decides an output's bytes: the job's settings and the model's identity."""
    descriptor = upscaler.model.descriptor
    weights = Path(descriptor.source) if descriptor.has_weights else None
    identity = {
        "job": job.parameters(),
        "model": descriptor.name,
        "arch": descriptor.arch,
        "config": descriptor.config,
        "precision": upscaler.precision,
        "weights": sha256_file(weights) if weights is not None and weights.is_file() else None,
    }
    if upscaler.routes:  # the default model: its twins' weights decide the bytes of compressed JPEGs
        identity["twins"] = {
            clean: [route.twin.descriptor.name, route.below_quality, sha256_file(Path(route.twin.descriptor.source))]
            for clean, route in upscaler.routes.items()
        }
    text = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:PARAMS_HASH_CHARS]


def plan_items(job: JobSpec, records: dict[str, Record]) -> list[Item]:
    """Each input with its output; this job's own outputs (past or planned) are never taken as inputs."""
    folder = job.output.folder.absolute()
    pairs = [(source, folder / job.output_name(source)) for source in _sources(job)]
    outputs = {target for _, target in pairs} | {folder / name for name in records}
    items: list[Item] = []
    seen: dict[Path, Path] = {}
    for source, target in pairs:
        if source == target:
            raise ConfigError(f"output.naming would write {target} over its own input; change it or the folder")
        if source in outputs:
            continue
        if target in seen:
            raise ConfigError(f"{seen[target]} and {source} would both be written to {target}; change output.naming")
        seen[target] = source
        items.append(Item(source, target))
    return items


def decide(job: JobSpec, items: list[Item], records: dict[str, Record], params: str) -> list[Decision]:
    """What each item needs, from its manifest row (if any) and the files on disk."""
    return [_decide(item, records.get(item.output.name), params, job.output.overwrite) for item in items]


def _decide(item: Item, record: Record | None, params: str, overwrite: str) -> Decision:
    if record is not None and record.state == DONE and record.params == params and record.input == str(item.input):
        changed = _changed(item, record)
        return Decision(item, SKIP, "done earlier") if changed is None else Decision(item, DO, changed)
    if record is None and item.output.exists():
        if overwrite == "skip":
            return Decision(item, SKIP, f"{NOT_OURS} (overwrite: skip)")
        if overwrite == "error":
            return Decision(item, FAIL, f"{NOT_OURS}; set output.overwrite to overwrite or skip")
        return Decision(item, DO, f"{NOT_OURS} (overwrite: overwrite)")
    return Decision(item, DO, _why(record, params))


def _changed(item: Item, record: Record) -> str | None:
    """Why a done item must be redone (output or input no longer as recorded), None if it is intact."""
    try:
        if sha256_file(item.output) != record.output_sha256:
            return "output changed since it was written"
    except OSError:
        return "output missing"
    try:
        if sha256_file(item.input) != record.input_sha256:
            return "input changed since it was done"
    except OSError:
        return "input unreadable"
    return None


def _why(record: Record | None, params: str) -> str:
    if record is None:
        return "new"
    if record.params != params:
        return "parameters changed"
    if record.state == FAILED:
        return f"failed before: {record.error}"
    if record.state == RUNNING:
        return "interrupted"
    return "made from another input before"


def _sources(job: JobSpec) -> list[Path]:
    """The input files the spec names, absolute, in order, without repeats; ConfigError if there are none."""
    kind, location = job.input.kind, job.input.location
    if kind == "folder":
        folder = Path(location)
        if not folder.is_dir():
            raise ConfigError(f"input.folder {folder} is not a folder")
        found = images_in(folder)
    elif kind == "glob":
        found = sorted(Path(m) for m in glob.glob(location, recursive=True) if Path(m).is_file())
    else:
        found = _listed(Path(location))
    if not found:
        raise ConfigError(f"input.{kind} {location} names no images")
    return list(dict.fromkeys(path.absolute() for path in found))


def _listed(list_file: Path) -> list[Path]:
    """The paths in a list file (one a line; blank lines and # comments skipped), relative to its folder."""
    try:
        text = list_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"input.list {list_file} cannot be read: {exc}") from None
    lines = (line.strip() for line in text.splitlines())
    return [list_file.parent / Path(line).expanduser() for line in lines if line and not line.startswith(LIST_COMMENT)]


def _execute(job: JobSpec, workspace: Workspace, todo: list[Item], params: str, report: Report, progress: bool) -> None:
    """Stream `todo` through an engine, retrying crashes, recording every outcome as it arrives."""
    config = WorkerConfig(
        model=job.model.name,
        adaptive=job.model.adaptive,
        threads=job.run.threads,
        tile=job.model.tile,
        precision=job.model.precision,
        request=job.model.request,
        max_pixels=max_input_pixels(job.input.max_input_mp),
        quality=job.output.quality,
        background=job.output.color,
        tmp=workspace.tmp if job.output.write_by == "worker" else None,
        item_timeout_s=job.run.item_timeout_s,
    )
    engine = _engine(job, config, todo)
    report.workers = engine.workers
    pending = deque((item, 1) for item in todo)  # (item, attempt)
    bar = tqdm(total=len(todo), desc="batch", unit="img", file=sys.stderr, disable=not progress)
    try:
        while pending or engine.busy():
            while pending and engine.has_room():
                item, attempt = pending.popleft()
                task = _task(item, workspace, params, report)
                if task is None:
                    bar.update()
                    continue
                engine.submit(task, (item, attempt))
            if not engine.busy():
                continue
            (item, attempt), outcome = engine.next_done()
            if isinstance(outcome, BaseException) and attempt <= job.run.retries:
                pending.append((item, attempt + 1))
                continue
            if isinstance(outcome, BaseException):
                _fail(item, f"crashed {attempt} time(s), last: {_one_line(outcome)}", workspace, params, report)
            elif outcome.error is not None:
                _fail(item, outcome.error, workspace, params, report)
            else:
                _publish(item, outcome, workspace, params, report)
            bar.update()
    finally:
        bar.close()
        engine.close()


def _engine(job: JobSpec, config: WorkerConfig, todo: list[Item]) -> Engine:
    run = job.run
    if run.engine == "ray":
        try:
            from enlarge.batch.ray_engine import RayEngine
        except ModuleNotFoundError as exc:
            if exc.name != "ray":
                raise
            raise ConfigError("run.engine ray needs Ray: pip install 'enlarge[ray]'") from None
        return RayEngine(config, run.workers, run.threads, run.address, len(todo))
    workers = run.workers or auto_workers(run.threads, len(todo), _peak_output_pixels(job, todo))
    return LocalEngine(config, min(workers, len(todo)))


def _peak_output_pixels(job: JobSpec, items: list[Item]) -> int:
    """The largest render among the items, from their headers (unreadable ones are left to fail later)."""
    peak = 0
    for item in items:
        try:
            width, height, _ = probe_image(item.input)
            render = job.model.request.plan((width, height)).render_size
        except EnlargeError:
            continue
        peak = max(peak, render[0] * render[1])
    return peak


def _task(item: Item, workspace: Workspace, params: str, report: Report) -> Task | None:
    """Read the input and mark the item running; None (and the item failed) if the input cannot be read."""
    try:
        data = item.input.read_bytes()
    except OSError as exc:
        _fail(item, f"cannot read {item.input}: {exc.strerror or exc}", workspace, params, report)
        return None
    workspace.manifest.start(item.output.name, str(item.input), params, sha256_bytes(data))
    return Task(str(item.input), data, str(item.output))


def _publish(item: Item, outcome: Outcome, workspace: Workspace, params: str, report: Report) -> None:
    """Write the output (driver mode) or check the worker's file, then record the item done."""
    try:
        if outcome.data is not None:
            write_output(item.output, outcome.data, workspace.tmp)
        elif _hash_or_none(item.output) != outcome.sha256:
            raise OutputError(
                f"a worker wrote {item.output} but the driver does not see it; with write_by: worker every node "
                "must share the output folder at the same path (or use write_by: driver)"
            )
    except EnlargeError as exc:
        _fail(item, str(exc), workspace, params, report)
        return
    workspace.manifest.finish(
        item.output.name, str(outcome.sha256), list(outcome.notes), model=outcome.method, choice=outcome.choice
    )
    report.done.append((item, dataclasses.replace(outcome, data=None)))


def _fail(item: Item, reason: str, workspace: Workspace, params: str, report: Report) -> None:
    workspace.manifest.fail(item.output.name, str(item.input), params, reason)
    report.failed.append((item, reason))


def _hash_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _one_line(error: BaseException) -> str:
    """An exception as one short line (a Ray error's text carries a whole traceback)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text[:MAX_CRASH_CHARS]}"


def _entry(item: Item, **fields: Any) -> dict[str, Any]:
    return {"input": str(item.input), "output": str(item.output), **fields}


def _choice(outcome: Outcome) -> dict[str, str]:
    """`choice` (why the default model chose this model) for a report entry when one was made."""
    return {} if outcome.choice is None else {"choice": outcome.choice}


def _routed(outcome: Outcome) -> dict[str, float]:
    """`routed_fraction` for a report entry when the item ran adaptively, nothing otherwise."""
    if outcome.routed_fraction is None:
        return {}
    return {"routed_fraction": round(outcome.routed_fraction, ROUTED_DIGITS)}
