"""`fcrm verify`: verdicts in input order, unusable rows quarantined with a reason, counts add up."""

import json
import subprocess
import sys

import pytest

from fcrm_ray.cli import main as cli_main
from fcrm_ray.data.verify_file import VerifyConfig, main, verify_file

TOOLS = [{"name": "f", "description": "", "parameters": {"type": "dict", "properties": {
    "a": {"type": "integer"}, "s": {"type": "string"}}, "required": ["a"]}}]
OPENAI_TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
    "a": {"type": "integer"}}, "required": ["a"]}}}]
REF = [{"f": {"a": [1], "s": ["x", ""]}}]


def _rows():
    return [
        {"id": "ok-text", "tools": TOOLS, "reference": REF, "candidate": '[f(a=1, s="X")]'},
        {"id": "ok-struct", "tools": TOOLS, "reference": REF, "candidate": [{"name": "f", "arguments": {"a": 1}}]},
        {"id": "ok-json-strings", "tools": json.dumps(OPENAI_TOOLS), "reference": json.dumps([{"f": {"a": [1]}}]),
         "candidate": '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'},
        {"id": "wrong-value", "tools": TOOLS, "reference": REF, "candidate": '[f(a=2)]'},
        {"id": "wrong-type", "tools": TOOLS, "reference": REF, "candidate": '[f(a="1")]'},
        {"id": "bad-format", "tools": TOOLS, "reference": REF, "candidate": "I cannot help"},
        {"id": "null-candidate", "tools": TOOLS, "reference": REF, "candidate": None},
        {"id": 7, "tools": TOOLS, "reference": REF, "candidate": "[g(a=1)]"},
    ]


BAD = [
    ('{"id": "no-cand", "tools": [], "reference": []}', "missing field `candidate`"),
    ('{"id": "bad-tools", "tools": [{"description": "x"}], "reference": [], "candidate": "[]"}', "bad `tools`"),
    ('{"id": "bad-ref", "tools": [], "reference": [{"f": 1, "g": 2}], "candidate": "[]"}', "bad `reference`"),
    ('{"id": "bad-ref-json", "tools": [], "reference": "[{", "candidate": "[]"}', "bad `reference`"),
    ('{"id": ["x"], "tools": [], "reference": [], "candidate": "[]"}', "field `id`"),
    ("[1, 2]", "not an object"),
    ("{not json", "not_json"),
]


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    lines = [json.dumps(r) for r in _rows()] + [b for b, _ in BAD] + [""]  # trailing blank line: not a row
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_verify_file_verdicts_and_quarantine(data_file, tmp_path):
    out = tmp_path / "out" / "verdicts.jsonl"
    stats = verify_file(data_file, out, tmp_path / "q.jsonl")
    assert (stats.rows_in, stats.verified, stats.quarantined) == (len(_rows()) + len(BAD), len(_rows()), len(BAD))
    got = {r["id"]: r for r in _read(out)}
    assert [r["id"] for r in _read(out)] == [r["id"] for r in _rows()]  # input order
    assert all(set(r) == {"id", "correct", "error_type", "detail"} for r in got.values())
    assert got["ok-text"]["correct"] and got["ok-text"]["error_type"] is None
    assert got["ok-struct"]["correct"] and got["ok-json-strings"]["correct"]
    assert got["wrong-value"]["error_type"] == "incorrect_parameter_value"
    assert got["wrong-type"]["error_type"] == "incorrect_parameter_type"
    assert got["bad-format"]["error_type"] == "incorrect_output_format"
    assert got["null-candidate"]["error_type"] == "incorrect_output_format"
    assert got[7]["error_type"] == "incorrect_function_name"
    assert stats.correct == 3
    q = _read(tmp_path / "q.jsonl")
    assert len(q) == len(BAD)
    for rec, (_, reason) in zip(q, BAD):
        assert reason in rec["reason"], rec
        assert rec["source"] == "fcrm verify"


def test_main_prints_counts_and_default_quarantine_path(data_file, tmp_path, capsys):
    out = tmp_path / "v.jsonl"
    assert main(["--data", str(data_file), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    n, k = len(_rows()) + len(BAD), len(BAD)
    assert f"in={n} verified={n - k} quarantined={k}" in printed
    assert "rows/s=" in printed
    qpath = tmp_path / "v.quarantine.jsonl"
    assert len(_read(qpath)) == k
    # a rerun overwrites instead of appending
    assert main(["--data", str(data_file), "--out", str(out)]) == 0
    assert len(_read(qpath)) == k and len(_read(out)) == n - k


def test_cli_dispatch_and_errors(data_file, tmp_path, capsys):
    out = tmp_path / "v.jsonl"
    assert cli_main(["verify", "--data", str(data_file), "--out", str(out), "--quarantine", str(tmp_path / "bad.jsonl")]) == 0
    assert (tmp_path / "bad.jsonl").exists()
    assert cli_main(["verify", "--data", str(tmp_path / "missing.jsonl"), "--out", str(out)]) == 2
    assert "data" in capsys.readouterr().err
    assert cli_main(["verify", "--data", str(data_file)]) == 2  # no --out


def test_config_file_and_overrides(data_file, tmp_path):
    cfg = tmp_path / "verify.yaml"
    cfg.write_text(f"data: {data_file}\nout: {tmp_path / 'from_cfg.jsonl'}\n")
    assert main(["--config", str(cfg)]) == 0
    assert (tmp_path / "from_cfg.jsonl").exists()
    assert VerifyConfig(out="a/b.jsonl").quarantine_path().name == "b.quarantine.jsonl"


def test_fcrm_verify_subprocess_does_not_import_torch_or_ray(data_file, tmp_path):
    code = ("import sys; from fcrm_ray.cli import main; rc = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules and 'ray' not in sys.modules, 'heavy import'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, "verify", "--data", str(data_file), "--out", str(tmp_path / "s.jsonl")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "quarantined=7" in r.stdout
