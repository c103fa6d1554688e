"""``agentiam audit verify FILE``: each kind of tampering with an exported log.

The cases are the ones an export verifier must catch: an edited, a deleted, a
duplicated or a reordered event, a truncated tail, a forged tree head, a log
rolled back behind a tree head the auditor kept from earlier, and a forged export
whose hashes were all recomputed, with its heads dropped or with events appended
after its last head.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from agentiam.api.context import close_context, open_context
from agentiam.audit.chain import GENESIS_CHAIN_HASH, b64url, next_chain_hash
from agentiam.audit.errors import AuditError
from agentiam.audit.events import AuditEvent
from agentiam.audit.export_verifier import verify_export
from agentiam.audit.merkle import leaf_hash
from agentiam.cli.main import main
from agentiam.config import load_settings
from agentiam.jose import SigningKey, sign_jws

EVENTS = 10


@pytest.fixture
def data_dir(tmp_path: Path, cli_environment: None) -> Path:
    return tmp_path / "data"


def _record(data_dir: Path, count: int, *, sign: bool = True) -> str:
    """Append ``count`` events, sign a head over them and return its JWS."""
    ctx = open_context(load_settings(environ={}, overrides={"data_dir": data_dir}))
    ctx.audit.keyring = ctx.keyring

    async def run() -> str:
        start = ctx.audit.committed_size
        for number in range(start, start + count):
            await ctx.audit.record(
                AuditEvent("session.created", "allow", "issued", human=f"h-{number}")
            )
        return (await ctx.audit.sign_tree_head()).signature if sign else ""

    try:
        return asyncio.run(run())
    finally:
        close_context(ctx)


def _export(data_dir: Path, path: Path) -> list[dict[str, object]]:
    assert main(["audit", "export", str(path), "--data-dir", str(data_dir)]) == 0
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, lines: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _verify(data_dir: Path, path: Path, *trusted: str) -> int:
    extra = [arg for head in trusted for arg in ("--trusted-head", head)]
    return main(["audit", "verify", str(path), "--data-dir", str(data_dir), *extra])


@pytest.fixture
def exported(data_dir: Path, tmp_path: Path) -> tuple[Path, list[dict[str, object]]]:
    _record(data_dir, EVENTS)
    path = tmp_path / "audit.jsonl"
    return path, _export(data_dir, path)


def test_export_verify_accepts_untouched(data_dir, exported, capsys) -> None:
    path, _ = exported
    assert _verify(data_dir, path) == 0
    assert (
        "audit log verified: 10 events, 1 signed tree head" in capsys.readouterr().out
    )


def test_export_verify_finds_edited_event(data_dir, exported, capsys) -> None:
    path, lines = exported
    lines[4]["event"]["human"] = "mallory"  # type: ignore[index]
    _write(path, lines)
    assert _verify(data_dir, path) == 1
    err = capsys.readouterr().err
    assert "failed at position 3:" in err
    assert "event edited" in err


def test_export_verify_finds_deleted_event(data_dir, exported, capsys) -> None:
    path, lines = exported
    del lines[6]
    _write(path, lines)
    assert _verify(data_dir, path) == 1
    assert "position 5: expected seq 5, found seq 6" in capsys.readouterr().err


def test_export_verify_finds_reordered_events(data_dir, exported, capsys) -> None:
    path, lines = exported
    lines[3], lines[4] = lines[4], lines[3]
    lines[3]["seq"], lines[4]["seq"] = 2, 3
    _write(path, lines)
    assert _verify(data_dir, path) == 1
    err = capsys.readouterr().err
    assert "failed at position 2:" in err
    assert "reordered" in err


def test_export_verify_finds_truncated_tail(data_dir, exported, capsys) -> None:
    path, lines = exported
    _write(path, [*lines[:8], lines[-1]])
    assert _verify(data_dir, path) == 1
    err = capsys.readouterr().err
    assert "tree head 1 (size 10): the log has only 7 verified events" in err
    assert "truncated" in err


def test_export_verify_finds_forged_head(data_dir, exported, capsys) -> None:
    path, lines = exported
    head = dict(lines[-1])
    forger = SigningKey.generate("ES256")
    forged = SigningKey(str(head["kid"]), "ES256", forger.private_key)
    claims = {"ver": 1, "iss": "http://127.0.0.1:8800", "tree_size": 10,
              "root_hash": head["root_hash"], "timestamp": 1.0}  # fmt: skip
    head["signature"] = sign_jws(claims, forged, typ="tree-head+jwt")
    _write(path, [*lines[:-1], head])
    assert _verify(data_dir, path) == 1
    err = capsys.readouterr().err
    assert "tree head 1 (size 10): the signature is invalid (forged tree head)" in err


def _roll_back(data_dir: Path, size: int) -> None:
    """Cut the database back to ``size`` events and drop its tree heads."""
    with sqlite3.connect(next(data_dir.glob("*.db"))) as conn:
        for table in ("audit_events", "audit_event_tasks", "audit_event_actors"):
            conn.execute(f"DELETE FROM {table} WHERE seq >= ?", (size,))
        conn.execute("DELETE FROM audit_tree_heads")
        conn.execute("DELETE FROM audit_tree_nodes")


def test_export_verify_finds_rollback(data_dir, tmp_path, capsys) -> None:
    trusted = _record(data_dir, EVENTS)
    _roll_back(data_dir, 6)
    assert main(["audit", "sign-head", "--data-dir", str(data_dir)]) == 0
    path = tmp_path / "audit.jsonl"
    _export(data_dir, path)
    capsys.readouterr()

    # The cut log with its fresh head is consistent in itself; only the kept head
    # exposes it.
    assert _verify(data_dir, path) == 0
    assert _verify(data_dir, path, trusted) == 1
    err = capsys.readouterr().err
    assert "trusted tree head 1 (size 10): log rolled back" in err
    assert "the log has 6 verified events, fewer than" in err


def test_export_verify_finds_rewritten_history(data_dir, tmp_path, capsys) -> None:
    head_file = tmp_path / "head.jws"
    head_file.write_text(_record(data_dir, EVENTS))
    _roll_back(data_dir, 6)
    _record(data_dir, 6)
    path = tmp_path / "audit.jsonl"
    _export(data_dir, path)
    capsys.readouterr()

    assert _verify(data_dir, path) == 0
    assert _verify(data_dir, path, str(head_file)) == 1
    err = capsys.readouterr().err
    assert "trusted tree head 1 (size 10): log rolled back: the root recomputed" in err
    assert "the log of 12 events is inconsistent with the trusted head" in err


def test_database_verify_finds_rollback(data_dir, capsys) -> None:
    trusted = _record(data_dir, EVENTS)
    _roll_back(data_dir, 3)
    args = ["audit", "verify", "--data-dir", str(data_dir), "--trusted-head", trusted]
    assert main(args) == 1
    assert "log rolled back: the log has 3 verified events" in capsys.readouterr().err


def test_export_verify_trusted_head_extends(data_dir, tmp_path, capsys) -> None:
    trusted = _record(data_dir, 5)
    _record(data_dir, 5)
    path = tmp_path / "audit.jsonl"
    _export(data_dir, path)
    assert _verify(data_dir, path, trusted) == 0


def _rehash(lines: list[dict[str, object]]) -> list[dict[str, object]]:
    """Recompute every leaf and chain hash, as a forger with the scheme would."""
    chain = GENESIS_CHAIN_HASH
    for line in lines:
        if line["kind"] != "event":
            continue
        canonical = AuditEvent.from_dict(line["event"]).canonical()  # type: ignore[arg-type]
        leaf = leaf_hash(canonical)
        chain = next_chain_hash(chain, leaf)
        line["leaf_hash"], line["chain_hash"] = b64url(leaf), b64url(chain)
    return lines


def test_export_verify_finds_forged_export_without_heads(
    data_dir, exported, capsys
) -> None:
    path, lines = exported
    lines[4]["event"]["decision"] = "deny"  # type: ignore[index]
    _write(path, _rehash([line for line in lines if line["kind"] != "tree_head"]))
    assert _verify(data_dir, path) == 1
    err = capsys.readouterr().err
    assert (
        "failed at position 0: the export holds no verified signed tree head, "
        "so its 10 events from seq 0 are covered by none" in err
    )


def test_export_verify_finds_forged_tail(data_dir, exported, capsys) -> None:
    path, lines = exported
    head = lines[-1]
    forged = dict(lines[-2])
    forged["seq"] = 10
    forged["event"] = {**forged["event"], "human": "mallory"}  # type: ignore[dict-item]
    _write(path, _rehash([*lines[:-1], forged, head]))

    for trusted in ((), (str(head["signature"]),)):
        assert _verify(data_dir, path, *trusted) == 1
        err = capsys.readouterr().err
        assert (
            "failed at position 10: 1 event after seq 9 is covered by no "
            "signed tree head" in err
        )


def test_export_verify_names_swapped_events(data_dir, exported, capsys) -> None:
    path, lines = exported
    lines[3], lines[4] = lines[4], lines[3]
    _write(path, lines)
    assert _verify(data_dir, path) == 1
    assert (
        "position 2: expected seq 2, found seq 3; seq 2 comes later "
        "(events reordered)" in capsys.readouterr().err
    )


def test_export_verify_names_duplicated_event(data_dir, exported, capsys) -> None:
    path, lines = exported
    _write(path, [*lines[:5], lines[4], *lines[5:]])
    assert _verify(data_dir, path) == 1
    assert (
        "position 4: expected seq 4, found seq 3 again (event duplicated)"
        in capsys.readouterr().err
    )


def test_export_signs_head_over_unsigned_tail(data_dir, tmp_path, capsys) -> None:
    _record(data_dir, 4)
    _record(data_dir, 3, sign=False)
    path = tmp_path / "audit.jsonl"
    lines = _export(data_dir, path)
    assert [line["tree_size"] for line in lines if line["kind"] == "tree_head"] == [
        4,
        7,
    ]
    assert _verify(data_dir, path) == 0
    assert "7 events, 2 signed tree heads" in capsys.readouterr().out

    # The fresh head is stored, so a second export signs no other one.
    assert (
        len([line for line in _export(data_dir, path) if line["kind"] == "tree_head"])
        == 2
    )


def test_export_signs_no_head_over_broken_log(data_dir, tmp_path, capsys) -> None:
    _record(data_dir, 4)
    _record(data_dir, 3, sign=False)
    with sqlite3.connect(next(data_dir.glob("*.db"))) as conn:
        conn.execute("UPDATE audit_events SET chain_hash = zeroblob(32) WHERE seq = 5")
    path = tmp_path / "audit.jsonl"
    assert main(["audit", "export", str(path), "--data-dir", str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert "audit export failed: the log does not verify at position 5:" in err
    kinds = [json.loads(line)["kind"] for line in path.read_text().splitlines()]
    assert kinds.count("event") == 7
    assert kinds.count("tree_head") == 1


def test_database_verify_warns_of_unsigned_tail(data_dir, capsys) -> None:
    _record(data_dir, 4)
    _record(data_dir, 3, sign=False)
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0
    captured = capsys.readouterr()
    assert "audit log verified: 7 events, 1 signed tree head" in captured.out
    assert (
        "agentiam: warning: position 4: 3 events after seq 3 are covered by no "
        "signed tree head yet; 'agentiam audit sign-head' signs one now" in captured.err
    )


def _record_details(data_dir: Path, details: list[dict[str, object]]) -> None:
    """Append one event with each of ``details`` and sign a head over them."""
    ctx = open_context(load_settings(environ={}, overrides={"data_dir": data_dir}))
    ctx.audit.keyring = ctx.keyring

    async def run() -> None:
        for item in details:
            await ctx.audit.record(AuditEvent("decision", "allow", "ok", details=item))
        await ctx.audit.sign_tree_head()

    try:
        asyncio.run(run())
    finally:
        close_context(ctx)


# Numbers whose canonical text Python reads back as another value: integers
# from 2**53 up are read as doubles, and 1e-7 is written "1e-7", not "1e-07",
# so its line takes the strict parser.
LARGE_NUMBERS: list[dict[str, object]] = [
    {"k": 2**60},
    {"b": 2**53},
    {"n": -(2**53)},
    {"c": 1e16},
    {"m": 123456789012345680000.0},
    {"a": 1e-7, "k": 2**60},
    {"a": 1e-7, "b": 2**53},
]


def test_database_verify_accepts_large_numbers(data_dir, capsys) -> None:
    _record_details(data_dir, LARGE_NUMBERS)
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0
    assert "audit log verified: 7 events, 1 signed tree head" in (
        capsys.readouterr().out
    )


def test_export_verify_accepts_large_numbers(data_dir, tmp_path, capsys) -> None:
    _record_details(data_dir, LARGE_NUMBERS)
    path = tmp_path / "audit.jsonl"
    _export(data_dir, path)
    capsys.readouterr()
    assert _verify(data_dir, path) == 0
    assert "audit log verified: 7 events, 1 signed tree head" in (
        capsys.readouterr().out
    )


def _raw_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_export_verify_finds_edited_raw_event_line(data_dir, exported, capsys):
    path, _ = exported
    lines = _raw_lines(path)
    lines[5] = lines[5].replace('"human":"h-4"', '"human":"h-X"')
    path.write_text("".join(lines), encoding="utf-8")
    assert _verify(data_dir, path) == 1
    assert (
        "failed at position 4: the leaf hash does not match the stored event "
        "(event edited)" in capsys.readouterr().err
    )


def test_export_verify_finds_raw_duplicate_member(data_dir, exported, capsys):
    path, _ = exported
    lines = _raw_lines(path)
    lines[5] = lines[5].replace(
        '"decision":"allow"', '"decision":"allow","decision":"deny"'
    )
    path.write_text("".join(lines), encoding="utf-8")
    assert _verify(data_dir, path) == 1
    assert (
        "Export line 6 is invalid: JSON member 'decision' is duplicated"
        in capsys.readouterr().err
    )


def test_export_verify_accepts_crlf_lines(data_dir, exported, capsys) -> None:
    path, _ = exported
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert _verify(data_dir, path) == 0
    assert "audit log verified: 10 events, 1 signed tree head" in (
        capsys.readouterr().out
    )


def test_export_verify_names_invalid_utf8(data_dir, exported, capsys) -> None:
    path, _ = exported
    data = path.read_bytes()
    index = data.index(b'"h-4"') + 1
    path.write_bytes(data[:index] + b"\xff" + data[index:])
    assert _verify(data_dir, path) == 1
    err = capsys.readouterr().err
    assert "audit log verification failed: Export line 6 is not valid UTF-8: " in err
    assert "Traceback" not in err


def test_verify_export_names_invalid_utf8_line(exported) -> None:
    path, _ = exported
    lines = path.read_bytes().splitlines(keepends=True)
    lines[5] = lines[5].replace(b'"h-4"', b'"h-\xff"')
    with pytest.raises(AuditError, match=r"^Export line 6 is not valid UTF-8: "):
        verify_export(lines, lambda kid: None)


def test_verify_export_reads_bytes_lines(data_dir, exported) -> None:
    path, _ = exported
    ctx = open_context(load_settings(environ={}, overrides={"data_dir": data_dir}))
    try:
        report = verify_export(
            path.read_bytes().splitlines(keepends=True), ctx.keyring.lookup
        )
    finally:
        close_context(ctx)
    assert report.ok, report.problems


@pytest.mark.parametrize(
    ("member", "value"),
    [("timestamp", 1.0), ("version", 2), ("kid", "other-key")],
)
def test_export_verify_finds_edited_head_member(
    data_dir, exported, capsys, member, value
) -> None:
    path, lines = exported
    lines[-1][member] = value
    _write(path, lines)
    assert _verify(data_dir, path) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "agentiam: error: audit log verification failed at tree head 1 (size 10): "
        "the line's members do not match its signed tree head (line edited)"
    )


@pytest.mark.parametrize(
    ("member", "value", "message"),
    [
        ("tree_size", 10.5, "tree_size 10.5 is not an integer"),
        ("tree_size", "10", "tree_size '10' is not an integer"),
        ("tree_size", True, "tree_size True is not an integer"),
        ("timestamp", "1", "timestamp '1' is not a number"),
        ("version", 1.0, "version 1.0 is not an integer"),
        ("kid", 7, "kid 7 is not a string"),
    ],
)
def test_export_verify_rejects_head_member_type(
    data_dir, exported, capsys, member, value, message
) -> None:
    path, lines = exported
    lines[-1][member] = value
    _write(path, lines)
    assert _verify(data_dir, path) == 1
    assert f"Export line 12 is invalid: {message}" in capsys.readouterr().err


@pytest.mark.parametrize("line", [4, -1], ids=["event", "tree-head"])
def test_export_verify_rejects_unknown_member(data_dir, exported, capsys, line):
    path, lines = exported
    lines[line]["note"] = "approved"
    _write(path, lines)
    assert _verify(data_dir, path) == 1
    number = line + 1 if line >= 0 else len(lines)
    assert (
        f"Export line {number} is invalid: unknown member 'note'"
        in capsys.readouterr().err
    )


def test_export_verify_rejects_missing_member(data_dir, exported, capsys) -> None:
    path, lines = exported
    del lines[-1]["version"]
    _write(path, lines)
    assert _verify(data_dir, path) == 1
    assert (
        "Export line 12 is invalid: missing member 'version'" in capsys.readouterr().err
    )


def test_export_verify_accepts_reordered_heads(data_dir, tmp_path, capsys) -> None:
    # Each head is checked against the root recomputed at its own size, so
    # their order in the file carries nothing that a check could miss.
    _record(data_dir, 4)
    _record(data_dir, 6)
    path = tmp_path / "audit.jsonl"
    lines = _export(data_dir, path)
    _write(path, [*lines[:-2], lines[-1], lines[-2]])
    capsys.readouterr()
    assert _verify(data_dir, path) == 0
    assert "audit log verified: 10 events, 2 signed tree heads" in (
        capsys.readouterr().out
    )


def test_export_verify_finds_edit_with_later_heads_dropped(
    data_dir, tmp_path, capsys
) -> None:
    _record(data_dir, 4)
    _record(data_dir, 6)
    path = tmp_path / "audit.jsonl"
    lines = _export(data_dir, path)
    lines[7]["event"]["human"] = "mallory"  # type: ignore[index]
    _write(path, _rehash(lines[:-1]))
    assert _verify(data_dir, path) == 1
    assert (
        "failed at position 4: 6 events after seq 3 are covered by no signed "
        "tree head" in capsys.readouterr().err
    )


def _header_lines(path: Path, header: str) -> list[str]:
    """Return the lines of the export at ``path`` with line 1 replaced."""
    return [header + "\n", *path.read_text().splitlines(keepends=True)[1:]]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        pytest.param('{"kind":"header","version":true}',
                     "version True is not an integer", id="version-bool"),
        pytest.param('{"kind":"header","version":1.0}',
                     "version 1.0 is not an integer", id="version-float"),
        pytest.param('{"kind":"header","version":2}',
                     "version 2 is not supported; expected 1", id="version-2"),
        pytest.param('{"kind":"header","version":1,"version":1}',
                     "JSON member 'version' is duplicated", id="duplicate-member"),
        pytest.param('{"kind":"header","version":1,"x":NaN}',
                     "JSON constant 'NaN' is not allowed", id="nan"),
        pytest.param('{"kind":"header","version":1,"extra":1}',
                     "unknown member 'extra'", id="unknown-member"),
        pytest.param('{"kind":"header"}',
                     "missing member 'version'", id="missing-version"),
        pytest.param('{"version":1}', "missing member 'kind'", id="missing-kind"),
        pytest.param('{"kind":"event","version":1}',
                     "expected kind 'header', found 'event'", id="kind-event"),
        pytest.param("[1]", "expected a JSON object", id="array"),
        pytest.param("[" * 100_000 + "]" * 100_000,
                     "export line nests too deeply", id="deep-nesting"),
    ],
)  # fmt: skip
def test_verify_export_rejects_header(exported, header: str, message: str) -> None:
    path, _ = exported
    with pytest.raises(AuditError) as info:
        verify_export(_header_lines(path, header), lambda kid: None)
    assert str(info.value) == f"Export line 1 is invalid: {message}"


def test_export_verify_names_deep_header(data_dir, exported, capsys) -> None:
    path, _ = exported
    path.write_text("".join(_header_lines(path, "[" * 100_000 + "]" * 100_000)))
    assert _verify(data_dir, path) == 1
    assert capsys.readouterr().err == (
        "agentiam: error: audit log verification failed: Export line 1 is "
        "invalid: export line nests too deeply\n"
    )


@pytest.mark.parametrize(
    "lines",
    [['{"kind":"header","version":1}\n'], ['{"kind":"header","version":1}\n', "\n"]],
    ids=["header", "header-and-blank-line"],
)
def test_verify_export_header_only(lines: list[str]) -> None:
    with pytest.raises(AuditError) as info:
        verify_export(lines, lambda kid: None)
    assert str(info.value) == (
        "The export has a header line but no events and no tree heads; export "
        "the log again with 'agentiam audit export'."
    )


def test_verify_export_empty() -> None:
    with pytest.raises(AuditError) as info:
        verify_export([], lambda kid: None)
    assert str(info.value) == "The export is empty; expected a header line first."


def test_export_verify_counts_repeated_head_once(data_dir, tmp_path, capsys):
    _record(data_dir, 4)
    _record(data_dir, 6)
    path = tmp_path / "audit.jsonl"
    lines = _export(data_dir, path)
    _write(path, [*lines, lines[-1], lines[-2]])
    capsys.readouterr()
    assert _verify(data_dir, path) == 0
    assert capsys.readouterr().out == (
        "audit log verified: 10 events, 2 signed tree heads\n"
    )
