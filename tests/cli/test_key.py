from __future__ import annotations

import json

import pytest

from agentiam.api.context import close_context, open_context
from agentiam.cli.main import main
from agentiam.config import load_settings

NOUNS = (("key", "key"),)
KEK = "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy1mb3ItYWdlbnQ"


@pytest.fixture(autouse=True)
def kek(monkeypatch):
    monkeypatch.setenv("AGENTIAM_KEK", KEK)


def create_data_dir(path):
    """Create the data directory and its database, as a first start does."""
    close_context(open_context(load_settings(overrides={"data_dir": path})))
    return str(path)


def run(capsys, *argv):
    code = main(list(argv), nouns=NOUNS)
    out, err = capsys.readouterr()
    return code, out, err


def test_key_list_then_rotate(tmp_path, capsys):
    data = create_data_dir(tmp_path / "data")
    code, out, _ = run(capsys, "--output", "json", "key", "list", "--data-dir", data)
    assert code == 0
    [first] = json.loads(out)
    assert first["state"] == "active"
    assert first["alg"] == "ES256"

    code, out, _ = run(capsys, "key", "rotate", "--data-dir", data, "--output", "json")
    assert code == 0
    rotated = json.loads(out)
    assert rotated["state"] == "active"
    assert rotated["kid"] != first["kid"]

    code, out, _ = run(capsys, "key", "list", "--data-dir", data)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["KID", "ALG", "STATE"]
    assert {line.split()[2] for line in lines[1:]} == {"active", "retired"}


def test_usage_error_exit_2(capsys):
    code, _, err = run(capsys, "key", "explode")
    assert code == 2
    assert "invalid choice" in err


def test_bad_config_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AGENTIAM_PORT", "nope")
    code, out, err = run(capsys, "key", "list", "--data-dir", str(tmp_path))
    assert code == 1
    assert out == ""
    assert "invalid value 'nope' for setting 'port'" in err


def test_wrong_kek_exit_1(tmp_path, capsys, monkeypatch):
    data = create_data_dir(tmp_path / "data")
    assert run(capsys, "key", "list", "--data-dir", data)[0] == 0
    monkeypatch.setenv("AGENTIAM_KEK", "b" * 43)
    code, _, err = run(capsys, "key", "list", "--data-dir", data)
    assert code == 1
    assert "does not decrypt signing key" in err
