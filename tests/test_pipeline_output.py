"""What `fcrm pipeline` shows of a stage's output: our lines and result tables on the terminal,
everything in the stage's log, a status line on a TTY, the end of the log when a stage fails.
Fake stage output (lines as the stages and Ray print them) and tiny child processes; no Ray."""

from __future__ import annotations

import io
import sys
import time

from fcrm_ray.pipeline import StageOutput, Terminal, _stream, failure_tail

# (what a stage printed, what the terminal shows or None); lines as seen in real stage logs
LINES = [
    ("2026-12-07 20:44:57,328\tWARNING authentication_token_setup.py:85 -- Token authentication is enabled", None),
    ("2026-12-07 20:45:02,995\tINFO worker.py:2038 -- Started a local Ray instance.", None),
    ("[fcrm train] data: {\"train\": {\"read\": 64}}", "[fcrm train] data: {\"train\": {\"read\": 64}}"),
    ("\x1b[36m(TrainController pid=6363)\x1b[0m Requesting resources: {'CPU': 1.0} * 1", None),
    ("\x1b[36m(PlacementGroupCleaner pid=6393)\x1b[0m Failed to query Ray Train Controller actor state. "
     "State API may be temporarily unavailable. Continuing to monitor.", None),
    ("\x1b[36m(TrainController pid=6363)\x1b[0m [2026-12-07 20:45:28,179 E 6363 6390] core_worker.cc:2465: "
     "Actor with class name: 'PreemptionWatcher' and ID: '7b41' has constructor arguments", None),
    ("[2026-12-07 21:13:33,688 E 22103 22103] core_worker.cc:2465: Actor with class name: "
     "'MapWorker(MapBatches(HFGenerator))' and ID: 'bf79' has constructor arguments in the object store", None),
    ("\x1b[36m(RayTrainWorker pid=6425)\x1b[0m [fcrm train] step 1/6 loss 0.6931 elapsed 0:00 eta 0:00",
     "[fcrm train] step 1/6 loss 0.6931 elapsed 0:00 eta 0:00"),
    ("\x1b[36m(RayTrainWorker pid=6425)\x1b[0m [fcrm train] step 3 validation accuracy 0.4167 (12 pairs)"
     "\x1b[32m [repeated 2x across cluster]\x1b[0m", "[fcrm train] step 3 validation accuracy 0.4167 (12 pairs)"),
    ("\x1b[36m(DatasetManager pid=6500)\x1b[0m /x/ray/data/execution_options.py:436: RayDeprecationWarning: "
     "`ExecutionOptions.exclude_resources` is deprecated", None),
    ("\x1b[36m(DatasetManager pid=6500)\x1b[0m   self.exclude_resources = exclude_resources", None),
    ("/x/fcrm_ray/generate/backends.py:337: RayDeprecationWarning: `ray_remote_args` is deprecated", None),
    ("  return ds.map_batches(MutationGenerator(self.callable_cfg()), max_retries=-1, **kw)", None),
    ("[2026-12-07 21:13:32,559] [WARNING] [real_accelerator.py:213:get_accelerator] Setting accelerator to CPU.", None),
    ("Loading weights: 100%|██████████| 41/41 [00:00<00:00, 5720.20it/s]", None),
    ("Loading safetensors checkpoint shards: 100% Completed | 1/1 [00:01<00:00,  1.30s/it]", None),  # vLLM's bar
    ("(MapWorker(MapBatches(load_input_shards)->MapBatches(HFGenerator)) pid=22329) Loading weights: 0%|", None),
    ("[transformers] BertForSequenceClassification LOAD REPORT from: /m", None),
    ("", None),
    ("2026-12-07 21:13:54,126\tINFO logging_progress.py:225 -- Total Progress: 16/?", "Ray Data progress 16/?"),
    ("2026-12-07 21:14:04,189\tINFO logging_progress.py:225 -- Total Progress: 16/?", None),  # unchanged
    ("2026-12-07 21:14:04,190\tINFO logging_progress.py:231 -- MapBatches(HFGenerator): 0/1", None),
    ("┏━━━━━━━━━━━━━━━━━┳━━━━━━━━┓", "┏━━━━━━━━━━━━━━━━━┳━━━━━━━━┓"),
    ("│ pairs_out       │    165 │", "│ pairs_out       │    165 │"),
    ("counts add up", "counts add up"),
    ("fcrm train: error: config key `model.path` is required", "fcrm train: error: config key `model.path` is required"),
    ("Traceback (most recent call last):", "Traceback (most recent call last):"),
    ('  File "/x/fcrm_ray/train/run.py", line 181, in run_training', '  File "/x/fcrm_ray/train/run.py", line 181, in run_training'),
    ("ValueError: no rows", "ValueError: no rows"),
]


def test_terminal_shows_our_lines_and_tables_and_not_library_noise():
    view = StageOutput(tty=False)
    assert [view(raw) for raw, _ in LINES] == [want for _, want in LINES]


def test_on_a_tty_progress_goes_to_the_status_line_not_to_lines():
    view = StageOutput(tty=True)
    assert view("2026-12-07 21:13:54,126\tINFO logging_progress.py:225 -- Total Progress: 16/200") is None
    assert view.progress == "Ray Data progress 16/200"
    assert view("Writing model shards: 100%|██████████| 1/1 [00:00<00:00, 348.94it/s]") is None
    assert view.progress.startswith("Writing model shards: 100%")
    assert view("[fcrm train] step 2/6 loss 0.69") == "[fcrm train] step 2/6 loss 0.69"


def test_failure_tail_reaches_back_to_the_last_traceback(tmp_path):
    log = tmp_path / "stage.log"
    lines = [f"line {i}" for i in range(100)]
    lines[50:53] = ["Traceback (most recent call last):", '  File "x.py", line 1', "ValueError: boom"]
    log.write_text("\n".join(lines) + "\n")
    assert failure_tail(log)[:3] == lines[50:53] and failure_tail(log)[-1] == "line 99"
    log.write_text("\n".join(f"line {i}" for i in range(100)) + "\n")
    assert failure_tail(log) == [f"line {i}" for i in range(75, 100)]


CHILD = r"""
import sys, time
print("2026-12-07 20:45:02,995\tINFO worker.py:2038 -- Started a local Ray instance.", file=sys.stderr)
print("(PlacementGroupCleaner pid=7) Failed to query Ray Train Controller actor state.", file=sys.stderr)
print("[fcrm train] step 1/2 loss 0.69 eta 0:01")
time.sleep(1.5)
print("[fcrm train] done")
"""


def test_stream_writes_everything_to_the_log_and_echoes_ours(tmp_path):
    log, shown, status = tmp_path / "train.log", [], []
    rc = _stream([sys.executable, "-c", CHILD], log, 60, shown.append, status.append, "train")
    assert rc == 0
    assert shown == ["[fcrm train] step 1/2 loss 0.69 eta 0:01", "[fcrm train] done"]
    text = log.read_text()
    assert "Started a local Ray instance" in text and "Failed to query" in text and "[fcrm train] done" in text
    # the status line ticked while the child was silent, and is cleared at the end
    assert any(s.startswith("  train 0:0") for s in status) and status[-1] == ""


def test_stream_stops_a_stage_that_prints_nothing_past_its_timeout(tmp_path):
    t0 = time.monotonic()
    rc = _stream([sys.executable, "-c", "import time; time.sleep(20)"], tmp_path / "x.log", 1, lambda _: None)
    assert rc == 124 and time.monotonic() - t0 < 15
    assert "killed after 1 s" in (tmp_path / "x.log").read_text()


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_terminal_keeps_the_status_line_below_new_lines():
    out = _Tty()
    term = Terminal(out)
    assert term.tty
    term.status("  train 0:05")
    term.echo("[fcrm train] step 1/2")
    term.status("")
    assert out.getvalue() == ("\r\x1b[K  train 0:05" + "\r\x1b[K[fcrm train] step 1/2\n  train 0:05" + "\r\x1b[K")
    assert not Terminal(io.StringIO()).tty


def test_a_stage_draws_its_tables_for_the_width_left_beside_its_prefix(tmp_path, monkeypatch):
    """rich in the stage sizes tables from COLUMNS: the terminal's width less "  [generate] "."""
    monkeypatch.setenv("COLUMNS", "100")
    shown: list[str] = []
    code = ("from rich.console import Console; from rich.table import Table; t = Table('a', 'b'); "
            "t.add_row('x' * 200, 'y'); Console().print(t)")
    assert _stream([sys.executable, "-c", code], tmp_path / "g.log", 60, shown.append, None, "generate") == 0
    assert shown and max(len(line) for line in shown) <= 100 - len("  [generate] ")
