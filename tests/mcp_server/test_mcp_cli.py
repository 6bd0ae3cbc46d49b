"""``dwf mcp`` / ``python -m mcp_server``: options and the errors it reports before serving."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp_support import WORKFLOWS

from mcp_server.cli import build_parser, main


def test_the_defaults_match_the_documentation() -> None:
    args = build_parser().parse_args(["flows/"])
    assert (args.transport, args.host, args.port, args.wait) == ("stdio", "127.0.0.1", 8000, 25.0)
    assert (args.name, args.tool_prefix, args.store, args.token) == ("dwf", "run_", None, None)
    assert args.services == args.allowed_origin == args.allowed_host == []
    assert not (args.no_tools or args.no_elicitation or args.no_recover)


def test_repeatable_options_collect_every_value() -> None:
    args = build_parser().parse_args(
        ["a.yml", "b/", "--services", "s1.py", "--services", "s2.py", "--allowed-origin", "x",
         "--allowed-origin", "y", "--transport", "http", "--port", "0", "--wait", "3.5"]
    )  # fmt: skip
    assert args.paths == ["a.yml", "b/"]
    assert args.services == ["s1.py", "s2.py"]
    assert args.allowed_origin == ["x", "y"]
    assert (args.transport, args.port, args.wait) == ("http", 0, 3.5)


def test_a_missing_path_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "nowhere.yml")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "nowhere.yml' does not exist" in captured.err


def test_two_files_with_one_workflow_id_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a.yml", "b.yml"):
        (tmp_path / name).write_text("id: same\nname: Same\nsteps:\n  - {id: e, type: end}\n")
    assert main([str(tmp_path)]) == 2
    assert "two files declare workflow id 'same'" in capsys.readouterr().err


def test_a_bad_store_url_is_reported_before_serving(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", "mysql://nope", str(WORKFLOWS)]) == 2
    assert "unknown store URL 'mysql://nope'" in capsys.readouterr().err


def test_a_negative_wait_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--wait", "-1", str(WORKFLOWS)]) == 2
    assert "--wait must be >= 0" in capsys.readouterr().err


def test_a_services_file_that_fails_to_import_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "services.py"
    broken.write_text("raise ImportError('no such SDK')\n")
    assert main(["--services", str(broken), str(WORKFLOWS)]) == 2
    assert "failed to import: ImportError: no such SDK" in capsys.readouterr().err
