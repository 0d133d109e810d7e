import os
import sys
import time
import uuid

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Every process this test session starts (local Ray clusters, their workers, CLI subprocesses)
# inherits this marker; at the end of the session any of them still alive is stopped and listed
# (Ray Train's controller process has been seen hanging at exit after a clean ray.shutdown(), its
# core worker already shut down). Processes of other sessions or users never carry it.
SESSION_MARKER = "FCRM_TEST_SESSION"
os.environ[SESSION_MARKER] = uuid.uuid4().hex
_LEFTOVERS: list[str] = []


def session_leftovers() -> list:
    """Processes other than this one that carry this session's marker."""
    import psutil

    mine, out = os.environ[SESSION_MARKER], []
    for p in psutil.process_iter(["pid"]):
        if p.pid == os.getpid():
            continue
        try:
            if p.environ().get(SESSION_MARKER) == mine:
                out.append(p)
        except (psutil.Error, OSError):
            continue  # gone, or another user's process
    return out


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session, exitstatus):
    import psutil

    _EXIT_STATUS.append(int(exitstatus))

    def alive(p) -> bool:
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:  # exited between the two calls
            return False

    deadline = time.time() + 10  # Ray's own shutdown may still be finishing
    procs = session_leftovers()
    while procs and time.time() < deadline:
        time.sleep(1)
        procs = [p for p in procs if alive(p)]
    for p in procs:
        try:
            _LEFTOVERS.append(f"{p.pid} {' '.join(p.cmdline())[:80] or p.name()}")
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=5)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


def pytest_terminal_summary(terminalreporter):
    if _LEFTOVERS:
        terminalreporter.write_sep("-", f"stopped {len(_LEFTOVERS)} process(es) this test session left running")
        for line in _LEFTOVERS:
            terminalreporter.write_line(line)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """End the test process here, with the session's exit status, instead of through interpreter
    finalisation. After all 760 tests had passed and the summary was printed, one CI run died with
    SIGSEGV (exit 139) while Python tore down native state that many in-process ray.init/shutdown
    cycles, torch and DeepSpeed leave behind (cf. ray-project/ray#31145: background threads holding
    a shut-down core worker). Nothing the tests check happens after this point; the outcome is
    already fixed, so a crash in teardown must not turn a pass into a failure, nor a failure into a
    different code. faulthandler stays on until then so a crash before it still prints stacks."""
    if not _EXIT_STATUS:  # sessionfinish never ran (e.g. a usage error): leave the normal exit
        return
    import faulthandler

    faulthandler.enable(file=sys.__stderr__, all_threads=True)
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(_EXIT_STATUS[-1])


@pytest.fixture(scope="session")
def bfcl_dir():
    from fcrm_ray.paths import bfcl_data_dir

    return bfcl_data_dir()


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    """A tiny random-init BERT reward model saved with save_pretrained (one per test module)."""
    from fcrm_ray.models import build_tiny_bert_rm

    return str(build_tiny_bert_rm(tmp_path_factory.mktemp("rm") / "tiny-bert-rm"))
