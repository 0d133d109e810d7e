"""The test session stops what it leaves running (tests/conftest.py): a process started during a
session that is still alive at its end is terminated and listed, and processes that do not carry
the session's marker are left alone."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

CONFTEST = Path(__file__).with_name("conftest.py")


def test_a_process_left_running_is_stopped_and_listed(tmp_path):
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    pid_file = tmp_path / "pid"
    (tmp_path / "test_leak.py").write_text(
        "import subprocess, sys\n"
        "def test_leaks():\n"
        "    p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"    open({str(pid_file)!r}, 'w').write(str(p.pid))\n")
    outsider = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                                env={"PATH": "/usr/bin:/bin"})  # no session marker
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        leaked = int(pid_file.read_text())
        assert "stopped 1 process(es) this test session left running" in r.stdout, r.stdout
        assert f"{leaked} " in r.stdout
        time.sleep(0.5)
        assert not psutil.pid_exists(leaked) or psutil.Process(leaked).status() == psutil.STATUS_ZOMBIE
        assert outsider.poll() is None  # not this session's: left alone
    finally:
        outsider.kill()
        outsider.wait()


def test_the_session_exit_status_survives_the_early_exit(tmp_path):
    """conftest ends the process in pytest_unconfigure (os._exit): a failing test must still give
    pytest's failure code and its summary must be printed."""
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_fails.py").write_text(
        "def test_fails(tmp_path):\n"
        "    assert tmp_path.exists()\n"
        "    assert False, 'on purpose'\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_fails.py")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 failed" in r.stdout
