"""`fcrm pipeline`: the whole chain, stage after stage, each stage its own `fcrm` command.

    fcrm pipeline --config configs/pipeline/cpu.yaml out=runs/pipeline train.overrides='[train.max_steps=20]'

Stages (in this order; `stages:` picks a subset, e.g. to re-run evaluation only):

    bench      fcrm bench build      BFCL -> FC-RewardBench-style pairs; its `test` split (BFCL's
                                     non-live categories) is the held-out benchmark
    generate   fcrm generate         synthetic preference pairs (mutation / hf / vllm generators)
    train      fcrm train            Bradley-Terry RM on the train splits of `bench` and `generate`
                                     (BFCL's live categories); tested on `bench`'s held-out split
    pairwise   fcrm eval pairwise    the RM on the benchmark's test split
    bon        fcrm eval bon         Best-of-N on candidate pools built from BFCL (`--build-pools`)
    serve      fcrm serve            start the reward service, score one request over HTTP, stop it
    filter     fcrm filter           filter a labelled sample corpus (`filter.sample_corpus`) drawn
                                     from the benchmark's held-out (test split) examples only
    report     (fcrm report)         one HTML/Markdown report over all of it, stage timings included

Every stage runs as a child process (`python -m fcrm_ray.cli ...`) with its whole stdout/stderr
written to `<out>/logs/<stage>.log`; the terminal shows what is ours (`StageOutput`: `[fcrm ...]`
progress lines, result tables, summaries), and on a TTY one updating line per stage with its
elapsed time and latest progress. A failing stage is obvious: the pipeline stops, names the
stage, its exit code and its log, shows the log's last lines, and exits non-zero. Under `ray job
submit`, `RAY_ADDRESS` is set and every child connects to the same cluster. The wiring between stages (where each reads and
writes) is fixed here under `out`; each stage's own config and overrides come from the
pipeline config. `<out>/pipeline.json` records each stage's command, status and seconds, and
`fcrm report` shows it.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fcrm_ray.config import ConfigError, parse_config_args

STAGES = ("bench", "generate", "train", "pairwise", "bon", "serve", "filter", "report")


@dataclass
class StageConfig:
    config: str = ""  # the stage's own YAML ("" = the stage's defaults)
    overrides: list[str] = field(default_factory=list)  # key=value for that stage
    timeout_s: int = 3600


@dataclass
class BonStageConfig(StageConfig):
    pool_overrides: list[str] = field(default_factory=list)  # for `fcrm eval bon --build-pools`


@dataclass
class ServeStageConfig(StageConfig):
    startup_timeout_s: int = 180


@dataclass
class FilterStageConfig(StageConfig):
    """The labelled sample corpus the filter stage runs on is drawn from the benchmark's held-out
    (test split) examples only (`sample_corpus.heldout_sample` with the bench stage's `splits`):
    the RM was trained on the train split, so a corpus from it would flatter the filter."""

    corpus_categories: list[str] = field(default_factory=list)  # empty = every category with test examples
    corpus_examples: int = 60  # BFCL examples -> 1 correct + `corpus_wrong_per_example` wrong rows each
    corpus_wrong_per_example: int = 2
    seed: int = 0

    def validate(self) -> None:
        if self.corpus_examples < 1 or self.corpus_wrong_per_example < 0:
            raise ConfigError("config keys `filter.corpus_examples` >= 1, `filter.corpus_wrong_per_example` >= 0")


@dataclass
class PipelineConfig:
    out: str = "runs/pipeline"
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    title: str = "fcrm-ray pipeline"
    bench: StageConfig = field(default_factory=StageConfig)
    generate: StageConfig = field(default_factory=StageConfig)
    train: StageConfig = field(default_factory=StageConfig)
    pairwise: StageConfig = field(default_factory=StageConfig)
    bon: BonStageConfig = field(default_factory=BonStageConfig)
    serve: ServeStageConfig = field(default_factory=ServeStageConfig)
    filter: FilterStageConfig = field(default_factory=FilterStageConfig)

    def validate(self) -> None:
        bad = [s for s in self.stages if s not in STAGES]
        if bad:
            raise ConfigError(f"config key `stages`: unknown stage {bad[0]!r}; expected some of {list(STAGES)}")
        if not self.stages:
            raise ConfigError("config key `stages` is empty")
        for name in STAGES:
            c = getattr(self, name, None)
            if c is not None and c.config and not Path(c.config).is_file():
                raise ConfigError(f"config key `{name}.config`: no such file: {c.config}")


class StageFailed(RuntimeError):
    def __init__(self, stage: str, rc: int, log: Path):
        super().__init__(f"stage `{stage}` failed with exit code {rc}; see {log}")
        self.stage, self.rc, self.log = stage, rc, log


# ----------------------------------------------------------------------------------------------
# Paths: where each stage writes (and the next one reads)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    out: Path

    bench = property(lambda s: s.out / "bench")
    generate = property(lambda s: s.out / "generate")
    rm = property(lambda s: s.out / "rm")
    checkpoints = property(lambda s: s.out / "checkpoints")
    pairwise = property(lambda s: s.out / "eval" / "pairwise")
    bon_pools = property(lambda s: s.out / "eval" / "bon-pools.jsonl")
    bon = property(lambda s: s.out / "eval" / "bon")
    serve = property(lambda s: s.out / "serve")
    corpus = property(lambda s: s.out / "corpus")
    corpus_labels = property(lambda s: s.out / "corpus-labels.jsonl")
    filter = property(lambda s: s.out / "filter")
    report = property(lambda s: s.out / "report")
    logs = property(lambda s: s.out / "logs")


def _fcrm(*words: str) -> list[str]:
    return [sys.executable, "-m", "fcrm_ray.cli", *words]


def _with_config(c: StageConfig) -> list[str]:
    return ["--config", c.config] if c.config else []


def stage_commands(cfg: PipelineConfig, lay: Layout) -> dict[str, list[list[str]]]:
    """The command lines of each stage (`serve` is started and probed by `run_serve_check`)."""
    return {
        "bench": [_fcrm("bench", "build") + _with_config(cfg.bench) + ["--out", str(lay.bench), *cfg.bench.overrides]],
        "generate": [_fcrm("generate") + _with_config(cfg.generate) + ["--out", str(lay.generate), *cfg.generate.overrides]],
        "train": [_fcrm("train") + _with_config(cfg.train) + [
            "--out", str(lay.rm), f"data.train_path={lay.bench}", f"data.extra_train_paths=[{lay.generate}]",
            f"data.test_path={lay.bench}",
            f"ckpt.storage_path={lay.checkpoints}", *cfg.train.overrides]],
        "pairwise": [_fcrm("eval", "pairwise") + _with_config(cfg.pairwise) + [
            "--model", str(lay.rm), "--data", str(lay.bench), "--out", str(lay.pairwise), *cfg.pairwise.overrides]],
        "bon": [
            _fcrm("eval", "bon") + _with_config(cfg.bon) + ["--build-pools", "--out", str(lay.bon_pools), *cfg.bon.pool_overrides],
            _fcrm("eval", "bon") + _with_config(cfg.bon) + [
                "--model", str(lay.rm), "--candidates", str(lay.bon_pools), "--out", str(lay.bon), *cfg.bon.overrides]],
        "serve": [_fcrm("serve") + _with_config(cfg.serve) + [f"models.fcrm-rm.path={lay.rm}", *cfg.serve.overrides]],
        "filter": [_fcrm("filter") + _with_config(cfg.filter) + [
            f"input.path={lay.corpus}", "--out", str(lay.filter), f"model.path={lay.rm}", *cfg.filter.overrides]],
        "report": [_fcrm("report", str(lay.out), "--out", str(lay.report), "--title", cfg.title)],  # run in-process
    }


# ----------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Ray prefixes what its workers print with "(ActorName pid=N[, ip=...]) " (names may nest parens:
# "MapWorker(MapBatches(HFGenerator))") and may append " [repeated 3x across cluster]".
_RAY_WORKER = re.compile(r"^\(.*? pid=\d+(?:, ip=[^)\s]+)?\)\s?")
_RAY_REPEATED = re.compile(r"\s*\[repeated \d+x across cluster\]$")
_RAY_DATA_PROGRESS = re.compile(r"-- Total Progress: (.+)$")
_TQDM = re.compile(r"\d+%(?:\|| Completed \|)")  # tqdm, and vLLM's "Loading safetensors checkpoint shards: 0% Completed |"
# Library lines by their format: Python logging as Ray formats it ("2026-12-07 20:44:57,328\tINFO
# worker.py:2038 -- ..."), glog-style C++ and DeepSpeed lines ("[2026-12-07 21:13:33,688 E 22103
# 22103] core_worker.cc:2465: ...", "[2026-... ] [WARNING] [real_accelerator.py:213:...]"),
# and transformers' own prefix; Python warnings ("path.py:436: RayDeprecationWarning: ...").
_LIBRARY = re.compile(r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+\s+[A-Z]+\s"
                      r"|\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+[\] ]"
                      r"|\[transformers\])")
_PY_WARNING = re.compile(r"^\S.*\.py:\d+: \w*Warning: ")


class StageOutput:
    """Sorts the lines a stage prints into what the terminal shows and what only its log keeps.

    Ours: lines starting `[fcrm` or `fcrm ` (our progress and messages, from the stage or from its
    Ray workers, shown without Ray's worker prefix) and the stage's other plain lines (result
    tables, summaries, its own tracebacks). The log only: everything else a Ray worker prints
    (Ray Train, DeepSpeed, Ray Data, transformers inside workers), lines in the formats of library
    loggers (Ray, glog-style C++, DeepSpeed, transformers), Python warnings with their source line,
    progress bars and blank lines. Progress (Ray Data's "Total Progress", tqdm bars) feeds
    `progress`, the text of the stage's status line; without a TTY, Ray Data's progress is shown as
    a plain line when it changes, so the output of a long stage without lines of its own moves."""

    def __init__(self, tty: bool = False):
        self.tty = tty
        self.progress = ""
        self.progress_at = 0.0  # time.monotonic() of the last progress line
        self._after_warning = False

    def __call__(self, raw: str) -> str | None:
        """The line to show for `raw` (one line of the stage's output), or None."""
        line = _ANSI.sub("", raw).rstrip()
        after_warning, self._after_warning = self._after_warning, False
        worker = _RAY_WORKER.match(line)
        if worker:
            line = _RAY_REPEATED.sub("", line[worker.end():])
        if line.startswith(("[fcrm", "fcrm ")):
            return line
        if m := _RAY_DATA_PROGRESS.search(line):
            changed = self.progress != (progress := f"Ray Data progress {m.group(1)}")
            self.progress, self.progress_at = progress, time.monotonic()
            return progress if changed and not (self.tty or worker) else None
        if _TQDM.search(line):
            self.progress, self.progress_at = line.strip(), time.monotonic()
            return None
        if _PY_WARNING.match(line):
            self._after_warning = True  # Python prints the warning's source line next, indented
            return None
        if worker or not line.strip() or _LIBRARY.match(line) or (after_warning and line[:1].isspace()):
            return None
        return line


def failure_tail(log: Path, n: int = 25, reach: int = 120) -> list[str]:
    """The last lines of a failed stage's log: the last `n`, or from its last traceback if that
    starts earlier, within the last `reach` lines (Ray's shutdown lines often follow the error)."""
    lines = log.read_text(errors="replace").splitlines()
    start = max(0, len(lines) - n)
    for i in range(len(lines) - 1, max(-1, len(lines) - reach - 1), -1):
        if "Traceback" in lines[i]:
            start = min(start, i)
            break
    return lines[start:]


class Terminal:
    """Where the pipeline's lines go: plain lines, plus on a TTY one status line kept at the bottom
    (redrawn under each new line, cleared when the stage ends)."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._status = ""

    def echo(self, line: str) -> None:
        if self._status:
            self.stream.write("\r\x1b[K")
        self.stream.write(line + "\n" + self._status)
        self.stream.flush()

    def status(self, text: str) -> None:
        """Show `text` as the status line ("" clears it)."""
        self._status = text[:max(10, shutil.get_terminal_size().columns - 1)]
        self.stream.write("\r\x1b[K" + self._status)
        self.stream.flush()


def _hms(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def _stream(cmd: list[str], log: Path, timeout_s: int, echo: Callable[[str], None],
            status: Callable[[str], None] | None = None, label: str = "") -> int:
    """Run `cmd`, writing its merged output to `log` and what `StageOutput` keeps to `echo`;
    `status` (a TTY) gets `label`, the elapsed time and the latest progress about once a second.
    Kill it after `timeout_s`, also when it prints nothing."""
    view = StageOutput(tty=status is not None)
    # the child's stdout is a pipe: without this, Python block-buffers it and progress arrives late.
    # Its tables (rich) are drawn for the terminal's width less the "  [stage] " prefix, else they wrap.
    width = shutil.get_terminal_size().columns - len(f"  [{label}] ")
    env = {**os.environ, "COLUMNS": str(max(60, width)), "PYTHONUNBUFFERED": "1"}
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                start_new_session=True, env=env)
        lines: queue.Queue = queue.Queue()

        def read() -> None:  # a thread, so that a silent stage still gets its status line and timeout
            for x in proc.stdout:  # type: ignore[union-attr]
                lines.put(x)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        try:
            while True:
                try:
                    line = lines.get(timeout=1.0)
                except queue.Empty:
                    line = ""
                if line is None:
                    break
                if line:
                    fh.write(line)
                    if (shown := view(line.rstrip("\n"))) is not None:
                        echo(shown)
                if status is not None:
                    now = time.monotonic()
                    # Ray Data logs its progress every 10 s; an older one (a finished bar) would mislead
                    fresh = view.progress if now - view.progress_at < 15 else ""
                    status(f"  {label} {_hms(now - t0)}" + (f" · {fresh}" if fresh else ""))
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(cmd, timeout_s)
            return proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            fh.write(f"\n[fcrm pipeline] killed after {timeout_s} s\n")
            return 124
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            if status is not None:
                status("")


def _kill_group(proc: subprocess.Popen, grace_s: float = 20.0, first: int = signal.SIGTERM) -> None:
    """Stop a child and everything it started: `first` to the child (SIGINT lets `fcrm serve`
    run its `serve.shutdown()`, which matters on a shared cluster where the app would outlive
    it), then SIGTERM and SIGKILL to its whole process group."""
    steps = [(first, grace_s, False)] + ([(signal.SIGTERM, grace_s, True)] if first != signal.SIGTERM else []) \
        + [(signal.SIGKILL, 10.0, True)]
    for sig, wait, group in steps:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_serve_check(cfg: PipelineConfig, lay: Layout, cmd: list[str], log: Path) -> dict:
    """Start `fcrm serve` on a free loopback port, wait until `/healthz` answers, score one BFCL
    example's correct call and verified mutations of it over HTTP (`serve/smoke.py`), then stop
    the service."""
    from fcrm_ray.serve import smoke

    port = _free_port()
    cmd = cmd + [f"port={port}", "host=127.0.0.1"]
    lay.serve.mkdir(parents=True, exist_ok=True)
    fh = open(log, "a", encoding="utf-8")
    fh.write(f"$ {' '.join(cmd)}\n")
    fh.flush()
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if not smoke.wait_healthy(url, cfg.serve.startup_timeout_s, alive=lambda: proc.poll() is None):
            exited = proc.poll() is not None
            raise StageFailed("serve", (proc.returncode or 1) if exited else 124, log)
        result = smoke.check(url)
        (lay.serve / "check.json").write_text(json.dumps(result, indent=2))
        return result
    finally:
        _kill_group(proc, 60.0, first=signal.SIGINT)
        fh.write(f"\n[fcrm pipeline] service stopped (exit {proc.returncode})\n")
        fh.close()


def bench_splits(cfg: PipelineConfig):
    """The split definition of the pipeline's benchmark (bench stage config + its overrides)."""
    from fcrm_ray.config import load_config
    from fcrm_ray.data.bench import BenchConfig

    return load_config(BenchConfig, cfg.bench.config or None, cfg.bench.overrides).splits


def write_filter_corpus(cfg: PipelineConfig, lay: Layout) -> dict:
    """The filter stage's labelled corpus, from held-out (test split) BFCL examples only."""
    from fcrm_ray.filter.sample_corpus import heldout_sample, write_sample_corpus

    f = cfg.filter
    examples = heldout_sample(f.corpus_examples, bench_splits(cfg), f.corpus_categories, seed=f.seed)
    counts = write_sample_corpus(lay.corpus, examples, seed=f.seed, wrong_per_example=f.corpus_wrong_per_example,
                                 labels_path=lay.corpus_labels)
    return {**counts, "examples": len(examples), "examples_asked": f.corpus_examples, "split": "test",
            "categories": sorted({ex.category for ex in examples})}


def _summaries(stage: str, lay: Layout) -> dict:
    """The headline numbers a stage left behind (for pipeline.json and the console)."""
    def load(p: Path) -> Any:
        return json.loads(p.read_text()) if p.is_file() else None

    if stage == "pairwise":
        m = load(lay.pairwise / "metrics.json") or {}
        return {"accuracy": m.get("accuracy"), "n": m.get("n"), "ci95": m.get("ci95")}
    if stage == "bon":  # accuracy at the largest n: the RM's pick vs the baselines
        curve = (load(lay.bon / "bon.json") or {}).get("curve") or {}
        if not curve:
            return {}
        n = max(curve, key=int)
        return {"n": int(n), "pools": curve[n].get("pools"),
                **{k: v["accuracy"] for k, v in curve[n].items() if isinstance(v, dict) and "accuracy" in v}}
    if stage == "train":
        e = load(lay.rm / "eval.json") or {}
        return {split: {"accuracy": (e.get(split) or {}).get("accuracy"), "n": (e.get(split) or {}).get("n")}
                for split in ("validation", "test", "test_obfuscated") if e.get(split)}
    if stage == "filter":
        from fcrm_ray.filter.sample_corpus import filter_precision

        s = load(lay.filter / "stats.json") or {}
        out = {k: s.get(k) for k in ("rows_in", "units_in", "kept", "dropped", "quarantined")}
        if lay.corpus_labels.is_file():
            out["labels"] = filter_precision(lay.filter, lay.corpus_labels)
        return out
    if stage == "generate":
        s = load(lay.generate / "stats.json") or {}
        return {k: s[k] for k in ("pairs", "examples_in", "seconds") if k in s}
    return {}


def run(cfg: PipelineConfig, echo: Callable[[str], None] = print, status: Callable[[str], None] | None = None) -> dict:
    """Run the configured stages in order; raises StageFailed at the first failing stage (after
    writing `pipeline.json` with what ran). `status`: a TTY's status line (`Terminal.status`)."""
    lay = Layout(Path(cfg.out))
    lay.logs.mkdir(parents=True, exist_ok=True)
    commands = stage_commands(cfg, lay)
    record: dict[str, Any] = {"out": str(lay.out), "stages": [], "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    t_all = time.perf_counter()

    def save() -> None:
        record["total_seconds"] = round(time.perf_counter() - t_all, 1)
        (lay.out / "pipeline.json").write_text(json.dumps(record, indent=2, default=str))

    for stage in [s for s in STAGES if s in cfg.stages]:
        log = lay.logs / f"{stage}.log"
        log.write_text("")
        echo(f"[fcrm pipeline] ── {stage} ── (log: {log})")
        entry: dict[str, Any] = {"stage": stage, "commands": [" ".join(c) for c in commands[stage]], "log": str(log)}
        record["stages"].append(entry)
        t0 = time.perf_counter()
        try:
            if stage == "serve":
                entry["result"] = run_serve_check(cfg, lay, commands["serve"][0], log)
            elif stage == "report":  # in-process, so it includes this run's timings (pipeline.json)
                from fcrm_ray.evaluate.report import build_report

                entry["status"] = "ok"  # as the report will show it
                save()
                entry["result"] = build_report([lay.out], lay.report, title=cfg.title)
            else:
                if stage == "filter":
                    entry["corpus"] = write_filter_corpus(cfg, lay)
                timeout = getattr(getattr(cfg, stage, None), "timeout_s", 3600)
                for cmd in commands[stage]:
                    rc = _stream(cmd, log, timeout, lambda line, s=stage: echo(f"  [{s}] {line}"), status, stage)
                    if rc != 0:
                        raise StageFailed(stage, rc, log)
                entry["result"] = _summaries(stage, lay)
            entry["status"] = "ok"
        except StageFailed as e:
            entry["status"] = f"failed (exit {e.rc})"
            raise
        finally:
            entry["seconds"] = round(time.perf_counter() - t0, 1)
            save()
        echo(f"[fcrm pipeline] {stage}: ok in {entry['seconds']:.0f} s")
    save()
    return record


def print_summary(record: dict, echo: Callable[[str], None] = print) -> None:
    echo("")
    echo(f"{'stage':<10} {'status':<18} {'seconds':>8}")
    for e in record["stages"]:
        echo(f"{e['stage']:<10} {e.get('status', '?'):<18} {e.get('seconds', 0):>8.1f}")
    echo(f"{'total':<10} {'':<18} {record.get('total_seconds', 0):>8.1f}")
    out = Path(record["out"])
    if (out / "report" / "report.html").is_file():
        echo(f"report: {out / 'report' / 'report.html'} (Markdown: {out / 'report' / 'report.md'})")


def main(argv: list[str] | None = None, prog: str = "fcrm pipeline", default_config: str | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description="Run the fcrm stages end to end.")
    parser.add_argument("--config", default=default_config, help="OmegaConf YAML file (configs/pipeline/*.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. out=runs/p1 stages=[train,pairwise]")
    cfg, _ = parse_config_args(PipelineConfig, argv, prog, parser=parser)
    term = Terminal()
    try:
        record = run(cfg, echo=term.echo, status=term.status if term.tty else None)
    except StageFailed as e:
        print(f"{prog}: error: {e}", file=sys.stderr, flush=True)
        try:
            print("\n".join(f"  | {line}" for line in failure_tail(e.log)), file=sys.stderr)
        except OSError:
            pass
        return 1
    print_summary(record, echo=term.echo)
    return 0


QUICKSTART_CONFIG = Path("configs/pipeline/cpu.yaml")


def quickstart(argv: list[str] | None = None, prog: str = "fcrm quickstart") -> int:
    """`fcrm quickstart`: the pipeline with the CPU config, run from the repository root."""
    config = QUICKSTART_CONFIG
    if not config.is_file():  # run from elsewhere: use the checkout this package was installed from
        repo_config = Path(__file__).resolve().parents[1] / QUICKSTART_CONFIG
        if not repo_config.is_file():
            raise ConfigError(f"{QUICKSTART_CONFIG} not found: run `fcrm quickstart` from the fcrm-ray checkout")
        os.chdir(repo_config.parents[2])  # stage configs are relative to the repository root
        config = QUICKSTART_CONFIG
    return main(argv, prog=prog, default_config=str(config))


if __name__ == "__main__":
    sys.exit(main())
