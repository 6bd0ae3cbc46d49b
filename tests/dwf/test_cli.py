"""The ``dwf`` command: every subcommand and option; each bad input is one line and an exit code.

Most tests call :func:`dwf.cli.main` in-process (fast); the ``slow`` ones start the real command
(``python -m dwf.cli``) to prove the entry point, that separate processes share the store, and that
no traceback ever reaches the user. Every test gets its own SQLite file under ``tmp_path``, and
``DWF_STORE``/``XDG_DATA_HOME`` point into ``tmp_path`` so the user's data directory is never used.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from dwf.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
CLI = FIXTURES / "cli"
SERVICES = CLI / "services.py"
SHIPPING_SERVICES = CLI / "shipping_services.py"
WITH_SERVICES = ("--services", str(SERVICES))
STORE_COMMANDS = {"run", "resume", "show", "list", "recover", "cancel"}
LOCATED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")
SUBPROCESS_TIMEOUT = 30


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Dwf = Callable[..., Result]


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    """Exit ``code``, one ``dwf: ...`` line on stderr naming ``fragments``, no traceback."""
    assert result.code == code, result
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("dwf: "), lines
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DWF_STORE", raising=False)
    monkeypatch.delenv("DWF_SERVICES", raising=False)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/dwf.db"


@pytest.fixture
def dwf(capsys: pytest.CaptureFixture[str], store: str) -> Dwf:
    """Run ``dwf ARGS`` in-process; commands that use a store get ``--store`` unless given."""

    def run(*args: str | os.PathLike[str], default_store: bool = True) -> Result:
        argv = [os.fspath(a) for a in args]
        if default_store and argv and argv[0] in STORE_COMMANDS and "--store" not in argv:
            argv += ["--store", store]
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help, --version, usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def start_halted_order(dwf: Dwf) -> str:
    result = dwf("run", CLI / "order.yml", "--input", '{"amount": 250}', *WITH_SERVICES, "--json")
    assert result.code == 0, result
    assert result.json()["status"] == "halted"
    return str(result.json()["execution_id"])


# --------------------------------------------------------------------------- run


def test_run_prints_the_status_and_output_of_a_completed_workflow(dwf: Dwf) -> None:
    result = dwf("run", CLI / "order.yml", "--input", '{"amount": 5}', *WITH_SERVICES)

    assert result.code == 0, result
    first, _, rest = result.out.partition("\n")
    assert re.fullmatch(r"execution [0-9a-f]+: completed", first)
    assert json.loads(rest)["status"] == "shipped"


def test_run_json_prints_one_object_with_the_contract_keys(dwf: Dwf) -> None:
    result = dwf("run", CLI / "order.yml", "--input", '{"amount": 5}', *WITH_SERVICES, "--json")

    assert result.code == 0, result
    assert result.out.count("\n") == 1
    data = result.json()
    assert set(data) == {"execution_id", "status", "output", "halt", "error"}
    assert data["status"] == "completed"
    assert data["halt"] is None
    assert data["error"] is None
    receipt = data["output"]["receipt"]
    assert receipt == {"amount": 5, "key": f"{data['execution_id']}:charge"}


def test_run_reads_the_input_from_a_file_given_with_at(dwf: Dwf, tmp_path: Path) -> None:
    payload = tmp_path / "input.json"
    payload.write_text('{"amount": 42}', encoding="utf-8")

    result = dwf("run", CLI / "order.yml", "--input", f"@{payload}", *WITH_SERVICES, "--json")

    assert result.code == 0, result
    assert result.json()["output"]["receipt"]["amount"] == 42


def test_run_uses_the_execution_id_it_is_given_and_refuses_to_reuse_it(dwf: Dwf) -> None:
    args = ("run", CLI / "order.yml", "--input", '{"amount": 5}', *WITH_SERVICES)

    first = dwf(*args, "--execution-id", "order-1", "--json")
    again = dwf(*args, "--execution-id", "order-1")

    assert first.json()["execution_id"] == "order-1"
    assert_one_line_error(again, 2, "order-1")
    assert len(dwf("list", "--json").json()) == 1


def test_run_shows_live_progress_only_on_a_terminal_without_json(
    dwf: Dwf, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ("run", CLI / "order.yml", "--input", '{"amount": 5}', *WITH_SERVICES)

    piped = dwf(*args)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    on_terminal = dwf(*args)
    as_json = dwf(*args, "--json")
    quiet = dwf(*args, "--quiet")

    assert piped.err == ""
    assert "▸ charge (call)" in on_terminal.err
    assert "✓ charge" in on_terminal.err
    assert on_terminal.err.index("✓ charge") < on_terminal.err.index("▸ check (router)")
    assert as_json.err == ""
    assert quiet.err == ""


def test_a_halted_run_exits_0_and_says_how_to_resume(dwf: Dwf) -> None:
    result = dwf("run", CLI / "order.yml", "--input", '{"amount": 250}', *WITH_SERVICES)

    assert result.code == 0, result
    execution_id = re.search(r"execution ([0-9a-f]+): halted", result.out)
    assert execution_id is not None
    assert "halted at approve: Ship the order of 250?" in result.out
    assert f"dwf resume {execution_id.group(1)} --approve" in result.out


def test_a_service_that_raises_fails_the_run_with_exit_1_and_keeps_what_was_committed(
    dwf: Dwf,
) -> None:
    text = dwf("run", CLI / "failing.yml", *WITH_SERVICES)
    result = dwf("run", CLI / "failing.yml", *WITH_SERVICES, "--json")

    assert text.code == 1
    assert "error in step 'charge': card declined by the bank" in text.out
    assert "Traceback" not in text.out + text.err
    assert result.code == 1
    data = result.json()
    assert data["status"] == "failed"
    assert data["error"]["message"] == "card declined by the bank"
    assert data["error"]["step"] == "charge"
    shown = dwf("show", data["execution_id"], "--json").json()
    assert shown["status"] == "failed"
    assert shown["variables"] == {"prepared": True}
    actions = [(row["step"], row["action"]) for row in shown["timeline"]]
    assert actions == [("prepare", "completed"), ("charge", "failed")]


def test_a_service_that_hangs_past_its_timeout_fails_the_step_promptly(dwf: Dwf) -> None:
    started = time.monotonic()
    result = dwf("run", CLI / "hanging.yml", *WITH_SERVICES, "--json")

    assert time.monotonic() - started < 10
    assert result.code == 1, result
    assert result.json()["status"] == "failed"
    assert result.json()["error"]["message"] == "step 'wait' timed out after 0.2s"


def test_a_call_to_a_service_that_was_not_loaded_fails_with_a_hint(dwf: Dwf) -> None:
    result = dwf("run", CLI / "order.yml", "--input", '{"amount": 5}')

    assert result.code == 1
    assert "unknown service 'Payments'" in result.out
    assert "--services FILE" in result.out


def test_input_of_the_wrong_type_is_one_line_exit_2_and_creates_no_execution(dwf: Dwf) -> None:
    result = dwf("run", CLI / "order.yml", "--input", '{"amount": "ten"}', *WITH_SERVICES)

    assert_one_line_error(result, 2, "input 'amount' must be integer, got string")
    assert dwf("list", "--json").json() == []


@pytest.mark.parametrize("payload", ["[]", "[1]", "0", "false", '"text"'])
def test_input_that_is_not_a_json_object_is_refused(dwf: Dwf, payload: str) -> None:
    result = dwf("run", CLI / "ask.yml", "--input", payload)

    assert_one_line_error(result, 2, "must be a JSON object")
    assert dwf("list", "--json").json() == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{amount: 5}", "--input is not valid JSON"),
        ("@does-not-exist.json", "cannot read --input file 'does-not-exist.json'"),
    ],
)
def test_input_that_cannot_be_read_is_one_line_exit_2(dwf: Dwf, payload: str, message: str) -> None:
    result = dwf("run", CLI / "order.yml", "--input", payload, *WITH_SERVICES)

    assert_one_line_error(result, 2, message)


def test_run_of_a_broken_definition_reports_located_errors_and_exit_2(
    dwf: Dwf, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("id: b\nname: B\nsteps:\n  - id: a\n    type: lop\n", encoding="utf-8")

    result = dwf("run", broken)

    assert result.code == 2
    assert "Traceback" not in result.err
    match = LOCATED.match(result.err.splitlines()[0])
    assert match is not None, result.err
    assert (match["file"], match["line"], match["col"]) == (str(broken), "5", "11")
    assert "unknown step type 'lop' (did you mean 'loop'?)" in match["message"]


def test_run_of_a_missing_workflow_file_is_one_line_exit_2(dwf: Dwf) -> None:
    assert_one_line_error(dwf("run", "no-such-workflow.yml"), 2, "does not exist")


def test_a_missing_services_file_is_one_line_exit_2(dwf: Dwf) -> None:
    result = dwf("run", CLI / "ask.yml", "--services", "no_such_services.py")

    assert_one_line_error(result, 2, "services file 'no_such_services.py' does not exist")


def test_services_is_repeatable(dwf: Dwf) -> None:
    result = dwf(
        "run", CLI / "ship_all.yml", "--input", '{"items": ["a", "b"]}',
        *WITH_SERVICES, "--services", SHIPPING_SERVICES, "--json",
    )  # fmt: skip

    assert result.code == 0, result
    assert result.json()["output"] == {"shipped": ["shipped a", "shipped b"], "charged": 1}


def test_dwf_services_lists_services_files_and_adds_to_the_option(
    dwf: Dwf, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ("run", CLI / "ship_all.yml", "--input", '{"items": ["a"]}', "--json")

    monkeypatch.setenv("DWF_SERVICES", os.pathsep.join([str(SERVICES), str(SHIPPING_SERVICES)]))
    from_env = dwf(*args)
    monkeypatch.setenv("DWF_SERVICES", str(SHIPPING_SERVICES))
    combined = dwf(*args, *WITH_SERVICES)

    assert from_env.code == 0, from_env
    assert from_env.json()["output"]["shipped"] == ["shipped a"]
    assert combined.code == 0, combined


def test_dwf_store_is_used_when_there_is_no_store_option(
    dwf: Dwf, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/from-env.db"
    monkeypatch.setenv("DWF_STORE", url)

    ran = dwf("run", CLI / "ask.yml", "--json", default_store=False)
    listed = dwf("list", "--json", "--store", url)

    assert ran.code == 0, ran
    assert [row["execution_id"] for row in listed.json()] == [ran.json()["execution_id"]]
    assert not (tmp_path / "xdg").exists()


def test_without_store_or_dwf_store_the_store_is_in_the_data_directory(
    dwf: Dwf, tmp_path: Path
) -> None:
    ran = dwf("run", CLI / "ask.yml", "--json", default_store=False)
    shown = dwf("show", ran.json()["execution_id"], default_store=False)

    assert ran.code == 0, ran
    assert (tmp_path / "xdg" / "dwf" / "dwf.db").is_file()
    assert shown.code == 0, shown


def test_a_sub_workflow_is_found_beside_the_main_file(dwf: Dwf) -> None:
    result = dwf("run", CLI / "parent.yml", "--json")

    assert result.code == 0, result
    assert result.json()["output"] == {"from_child": {"seen": 7}}
    rows = dwf("list", "--json").json()
    assert sorted(row["workflow_id"] for row in rows) == ["child", "parent"]
    child = next(row for row in rows if row["workflow_id"] == "child")
    assert child["parent_id"] == result.json()["execution_id"]


@pytest.mark.parametrize(
    "where", [FIXTURES / "cli_remote", FIXTURES / "cli_remote" / "remote_child.yml"]
)
def test_a_sub_workflow_is_found_in_workflows_path(dwf: Dwf, where: Path) -> None:
    result = dwf("run", CLI / "uses_remote.yml", "--workflows", where, "--json")

    assert result.code == 0, result
    assert result.json()["output"] == {"remote": True}


def test_an_unknown_sub_workflow_is_a_definition_error_that_names_it(dwf: Dwf) -> None:
    result = dwf("run", CLI / "uses_remote.yml")

    assert result.code == 2
    assert LOCATED.match(result.err.splitlines()[0]) is not None, result.err
    assert "unknown workflow 'remote_child'" in result.err
    assert dwf("list", "--json").json() == []


# --------------------------------------------------------------------------- resume


def test_halt_then_resume_approve_completes_the_execution(dwf: Dwf) -> None:
    execution_id = start_halted_order(dwf)
    halted = [row["execution_id"] for row in dwf("list", "--status", "halted", "--json").json()]

    result = dwf("resume", execution_id, "--approve", "--by", "ada", *WITH_SERVICES, "--json")

    assert halted == [execution_id]
    assert result.code == 0, result
    data = result.json()
    assert set(data) == {"execution_id", "status", "output", "halt", "error"}
    assert data["status"] == "completed"
    assert data["output"]["status"] == "shipped"
    assert data["output"]["receipt"]["amount"] == 250
    assert dwf("list", "--status", "halted", "--json").json() == []
    timeline = dwf("show", execution_id, "--json").json()["timeline"]
    actions = [(row["step"], row["action"]) for row in timeline]
    assert actions == [
        ("start", "completed"),
        ("charge", "completed"),
        ("check", "completed"),
        ("approve", "halted"),
        ("approve", "resumed"),
        ("approve", "completed"),
        ("done", "completed"),
    ]


def test_resume_reject_follows_on_reject(dwf: Dwf) -> None:
    execution_id = start_halted_order(dwf)

    result = dwf("resume", execution_id, "--reject", *WITH_SERVICES, "--json")

    assert result.code == 0, result
    assert result.json()["output"] == {"status": "rejected"}


def test_resume_response_is_available_as_response(dwf: Dwf, tmp_path: Path) -> None:
    first = dwf("run", CLI / "ask.yml", "--json").json()
    second = dwf("run", CLI / "ask.yml", "--json").json()
    answer = tmp_path / "answer.json"
    answer.write_text('{"name": "Grace"}', encoding="utf-8")

    inline = dwf("resume", first["execution_id"], "--response", '{"name": "Ada"}', "--json")
    from_file = dwf("resume", second["execution_id"], "--response", f"@{answer}")

    assert first["status"] == "halted"
    assert first["halt"]["prompt"] == "What is your name?"
    assert inline.json()["output"] == {"greeting": "Hello, Ada"}
    assert from_file.code == 0, from_file
    assert "Hello, Grace" in from_file.out


def test_resume_without_a_decision_is_a_usage_error(dwf: Dwf) -> None:
    execution_id = start_halted_order(dwf)

    result = dwf("resume", execution_id)

    assert_one_line_error(result, 2, "--approve, --reject or --response")
    assert dwf("show", execution_id, "--json").json()["status"] == "halted"


def test_resume_approve_and_reject_together_is_a_usage_error(dwf: Dwf) -> None:
    result = dwf("resume", "x", "--approve", "--reject")

    assert result.code == 2
    assert "not allowed with argument" in result.err
    assert "Traceback" not in result.err


def test_resuming_a_completed_execution_is_one_line_exit_2_and_changes_nothing(
    dwf: Dwf,
) -> None:
    execution_id = dwf("run", CLI / "order.yml", "--input", '{"amount": 5}', *WITH_SERVICES,
                       "--json").json()["execution_id"]  # fmt: skip
    before = dwf("show", execution_id, "--json").json()

    result = dwf("resume", execution_id, "--approve", *WITH_SERVICES)

    assert_one_line_error(result, 2, execution_id, "completed", "only halted executions")
    assert dwf("show", execution_id, "--json").json() == before


@pytest.mark.parametrize(
    "command",
    [["resume", "nope", "--approve"], ["show", "nope"], ["recover", "nope"], ["cancel", "nope"]],
)
def test_an_unknown_execution_id_is_one_line_exit_2(dwf: Dwf, command: list[str]) -> None:
    result = dwf(*command)

    assert_one_line_error(result, 2, "no execution 'nope'", "dwf list")


# --------------------------------------------------------------------------- show and list


def test_show_json_has_status_position_variables_and_a_timeline_with_durations(
    dwf: Dwf,
) -> None:
    execution_id = start_halted_order(dwf)

    data = dwf("show", execution_id, "--json").json()

    assert data["execution_id"] == execution_id
    assert data["workflow_id"] == "order"
    assert data["status"] == "halted"
    assert data["position"] == ["approve"]
    assert data["input"] == {"amount": 250}
    assert data["variables"]["receipt"]["amount"] == 250
    assert data["halt"]["prompt"] == "Ship the order of 250?"
    assert [row["step"] for row in data["timeline"]] == ["start", "charge", "check", "approve"]
    for seq, row in enumerate(data["timeline"], start=1):
        assert row["seq"] == seq
        assert isinstance(row["duration_ms"], int | float)
        assert row["duration_ms"] >= 0
        assert row["attempt"] == 1
    assert data["timeline"][1]["type"] == "call"


def test_show_prints_a_readable_summary(dwf: Dwf) -> None:
    execution_id = start_halted_order(dwf)

    result = dwf("show", execution_id)

    assert result.code == 0, result
    assert f"execution {execution_id}  workflow order  status halted" in result.out
    assert "position: approve" in result.out
    assert "halted: Ship the order of 250?" in result.out
    assert re.search(r"^\s+2\s+completed\s+charge\s+[\d.]+ ms$", result.out, re.MULTILINE)


def test_show_of_a_failed_execution_shows_the_error_in_the_timeline(dwf: Dwf) -> None:
    execution_id = dwf("run", CLI / "failing.yml", *WITH_SERVICES, "--json").json()["execution_id"]

    result = dwf("show", execution_id)

    assert "error: card declined by the bank" in result.out
    assert re.search(r"failed\s+charge\s+[\d.]+ ms\s+card declined by the bank", result.out)


def test_list_filters_by_workflow_and_status_and_limits(dwf: Dwf) -> None:
    halted = start_halted_order(dwf)
    completed = dwf("run", CLI / "order.yml", "--input", '{"amount": 5}', *WITH_SERVICES,
                    "--json").json()["execution_id"]  # fmt: skip
    asked = dwf("run", CLI / "ask.yml", "--json").json()["execution_id"]

    def ids(*args: str) -> set[str]:
        result = dwf("list", *args, "--json")
        assert result.code == 0, result
        return {row["execution_id"] for row in result.json()}

    assert ids() == {halted, completed, asked}
    assert ids("--status", "halted") == {halted, asked}
    assert ids("--status", "halted", "--workflow", "order") == {halted}
    assert ids("--status", "completed") == {completed}
    assert ids("--workflow", "nope") == set()
    assert len(ids("--limit", "2")) == 2
    row = dwf("list", "--workflow", "ask", "--json").json()[0]
    assert set(row) >= {"execution_id", "workflow_id", "status", "created_at", "updated_at"}
    text = dwf("list", "--status", "halted")
    assert re.search(rf"^{halted}\s+order\s+halted\s+\d{{4}}-\d\d-\d\d", text.out, re.MULTILINE)


def test_list_says_when_there_are_no_executions(dwf: Dwf) -> None:
    result = dwf("list")

    assert result.code == 0
    assert result.out == ""
    assert result.err == "no executions\n"


def test_list_with_an_unknown_status_is_one_line_exit_2(dwf: Dwf) -> None:
    result = dwf("list", "--status", "paused")

    assert_one_line_error(result, 2, "unknown status 'paused'", "halted")


# --------------------------------------------------------------------------- recover and cancel


def test_recover_with_nothing_to_do_says_so(dwf: Dwf) -> None:
    start_halted_order(dwf)

    text = dwf("recover", *WITH_SERVICES)
    as_json = dwf("recover", *WITH_SERVICES, "--json")

    assert (text.code, text.out) == (0, "nothing to recover\n")
    assert (as_json.code, as_json.json()) == (0, [])


def test_recover_of_a_completed_execution_is_one_line_exit_2(dwf: Dwf) -> None:
    execution_id = dwf("run", CLI / "ask.yml", "--json").json()["execution_id"]
    dwf("resume", execution_id, "--response", '{"name": "Ada"}')

    result = dwf("recover", execution_id)

    assert_one_line_error(result, 2, "completed", "nothing to recover")


def test_cancel_cancels_a_halted_execution_once(dwf: Dwf) -> None:
    execution_id = start_halted_order(dwf)

    cancelled = dwf("cancel", execution_id, "--json")
    again = dwf("cancel", execution_id)
    resumed = dwf("resume", execution_id, "--approve")

    assert cancelled.code == 0, cancelled
    assert cancelled.json()["status"] == "cancelled"
    assert_one_line_error(again, 2, "already cancelled")
    assert_one_line_error(resumed, 2, "cancelled", "only halted executions")


# ------------------------------------------------------------------------ validate, schema, graph


def test_validate_a_directory_reports_each_error_as_file_line_col(dwf: Dwf, tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "good.yml").write_text((CLI / "ask.yml").read_text(encoding="utf-8"))
    (folder / "broken.yaml").write_text(
        "id: broken\nname: Broken\nsteps:\n"
        "  - id: a\n    type: call\n    service: S\n    method: m\n    retries_delay: 1\n"
        "    next: nowhere\n",
        encoding="utf-8",
    )

    result = dwf("validate", folder)

    assert result.code == 1
    assert result.out == f"{folder / 'good.yml'}: ok (workflow 'ask', 2 steps)\n"
    errors = [line for line in result.err.splitlines() if "broken.yaml" in line]
    assert errors, result.err
    for line in errors:
        match = LOCATED.match(line)
        assert match is not None, line
        assert match["file"] == str(folder / "broken.yaml")
    assert any("8:5: step 'a': unknown key 'retries_delay'" in line for line in errors), errors
    assert "Traceback" not in result.err


def test_validate_reports_yaml_syntax_errors_with_their_location(dwf: Dwf, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("id: x\nname: [unclosed\nsteps: []\n", encoding="utf-8")

    result = dwf("validate", bad)

    assert result.code == 1
    match = LOCATED.match(result.err.splitlines()[0])
    assert match is not None, result.err
    assert "invalid YAML" in match["message"]


def test_validate_exits_0_when_every_file_is_valid(dwf: Dwf) -> None:
    result = dwf("validate", CLI / "order.yml", CLI / "parent.yml", FIXTURES / "crash")

    assert result.code == 0, result
    assert result.out.count(": ok (workflow") == 2 + len(list((FIXTURES / "crash").glob("*.yml")))
    assert result.err == ""


@pytest.mark.parametrize("make", ["missing", "empty_dir"])
def test_validate_of_nothing_to_check_is_one_line_exit_2(
    dwf: Dwf, tmp_path: Path, make: str
) -> None:
    target = tmp_path / make
    if make == "empty_dir":
        target.mkdir()

    assert dwf("validate", target).code == 2


def test_schema_is_a_valid_json_schema_that_accepts_a_workflow(dwf: Dwf) -> None:
    result = dwf("schema")

    assert result.code == 0, result
    schema = result.json()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in ("order.yml", "ship_all.yml", "parent.yml"):
        document = yaml.safe_load((CLI / name).read_text(encoding="utf-8"))
        assert list(validator.iter_errors(document)) == [], name
    typo = yaml.safe_load((CLI / "ask.yml").read_text(encoding="utf-8"))
    typo["steps"][0]["type"] = "hlat"
    assert not validator.is_valid(typo)


def test_graph_prints_a_mermaid_flowchart_with_router_loop_and_branch_edges(dwf: Dwf) -> None:
    order = dwf("graph", CLI / "order.yml")
    loop = dwf("graph", CLI / "ship_all.yml")
    fan = dwf("graph", FIXTURES / "crash" / "loop_parallel.yml")

    for result in (order, loop, fan):
        assert result.code == 0, result
        assert result.out.startswith("flowchart TD\n")
    assert "n_check -->|routes[0].then| n_approve" in order.out
    assert "n_check -->|default| n_done" in order.out
    assert "n_approve -->|on_reject| n_rejected" in order.out
    assert "n_each -->|do| n_each_ship" in loop.out
    assert "n_each --> n_charge" in loop.out
    for branch in ("b1", "b2", "b3"):
        assert f"n_fan -->|branch| n_fan_{branch}" in fan.out


def test_graph_of_a_broken_file_is_exit_2(dwf: Dwf, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("id: b\nname: B\nsteps: 3\n", encoding="utf-8")

    result = dwf("graph", broken)

    assert result.code == 2
    assert LOCATED.match(result.err.splitlines()[0]) is not None, result.err


# --------------------------------------------------------------------------- the store


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["show", "x"],
        ["recover"],
        ["cancel", "x"],
        ["resume", "x", "--approve"],
        ["run", str(CLI / "ask.yml")],
    ],
)
def test_a_store_url_with_an_unknown_scheme_is_one_line_exit_2(
    dwf: Dwf, command: list[str]
) -> None:
    result = dwf(*command, "--store", "mongodb://localhost/dwf")

    assert_one_line_error(result, 2, "unknown store URL 'mongodb://localhost/dwf'", "sqlite:///")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://dwf.db", "write three slashes"),
        ("memory://somewhere", "takes no path"),
        ("sqlite:///dwf.db?fsync=1", "unknown SQLite store option 'fsync'"),
    ],
)
def test_a_malformed_store_url_is_one_line_exit_2(dwf: Dwf, url: str, message: str) -> None:
    assert_one_line_error(dwf("list", "--store", url), 2, message)


@pytest.mark.parametrize("content", [b"this is not a database\n", bytes(range(256)) * 16])
def test_a_corrupt_sqlite_file_is_one_line_exit_1_and_left_untouched(
    dwf: Dwf, tmp_path: Path, content: bytes
) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(content)
    url = f"sqlite:///{corrupt}"

    listed = dwf("list", "--store", url)
    ran = dwf("run", CLI / "ask.yml", "--store", url)
    shown = dwf("show", "x", "--store", url)

    for result in (listed, ran, shown):
        assert_one_line_error(result, 1, str(corrupt), "corrupt")
    assert corrupt.read_bytes() == content


@pytest.fixture
def locked_store(dwf: Dwf, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A store with one completed execution, write-locked by another connection."""
    path = tmp_path / "locked.db"
    url = f"sqlite:///{path}"
    earlier = dwf("run", CLI / "ask.yml", "--store", url, "--json").json()["execution_id"]
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield f"{url}?busy_timeout=0.1", earlier
        holder.execute("ROLLBACK")
    finally:
        holder.close()


def test_a_locked_sqlite_file_is_one_line_exit_1_and_nothing_is_lost(
    dwf: Dwf, locked_store: tuple[str, str]
) -> None:
    url, earlier = locked_store

    ran = dwf("run", CLI / "ask.yml", "--store", url)
    resumed = dwf("resume", earlier, "--response", '{"name": "Ada"}', "--store", url)
    listed = dwf("list", "--store", url, "--json")

    assert_one_line_error(ran, 1, "is locked", "busy_timeout")
    assert_one_line_error(resumed, 1, "is locked")
    assert [(row["execution_id"], row["status"]) for row in listed.json()] == [(earlier, "halted")]


# --------------------------------------------------------------------------- the command itself


def test_the_console_script_is_dwf_cli_main() -> None:
    (script,) = entry_points(group="console_scripts", name="dwf")

    assert script.value == "dwf.cli:main"


@pytest.mark.parametrize(("args", "code"), [(["--version"], 0), (["--help"], 0), ([], 2)])
def test_version_help_and_no_command(dwf: Dwf, args: list[str], code: int) -> None:
    result = dwf(*args)

    assert result.code == code
    assert "Traceback" not in result.err
    if args == ["--version"]:
        assert result.out == "dwf 0.1.0\n"


@pytest.mark.parametrize(
    "command",
    [
        ["validate", str(CLI / "ask.yml")],
        ["schema"],
        ["graph", str(CLI / "ask.yml")],
        ["run", str(CLI / "ask.yml")],
        ["resume", "nope", "--approve"],
        ["show", "nope"],
        ["list"],
        ["recover"],
        ["cancel", "nope"],
    ],
)
def test_every_command_accepts_store_and_services(dwf: Dwf, store: str, command: list[str]) -> None:
    result = dwf(*command, "--store", store, *WITH_SERVICES, "--services", SHIPPING_SERVICES)

    assert "usage:" not in result.err
    assert result.code == (2 if "nope" in command else 0), result


def test_every_command_has_help(dwf: Dwf) -> None:
    commands = ("run", "resume", "show", "list", "recover", "cancel", "validate", "schema", "graph")
    for command in commands:
        result = dwf(command, "--help")
        assert result.code == 0, command
        assert f"usage: dwf {command}" in result.out


def _dwf_process(
    *args: str | os.PathLike[str], env: dict[str, str], **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dwf.cli", *(os.fspath(a) for a in args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=kwargs.pop("timeout", SUBPROCESS_TIMEOUT),
        check=False,
        **kwargs,
    )


@pytest.fixture
def process_env(store: str) -> dict[str, str]:
    """The environment of a real ``dwf`` process: the test's store, no services."""
    return {**os.environ, "DWF_STORE": store, "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_the_dwf_command_halts_in_one_process_and_resumes_in_another(
    process_env: dict[str, str],
) -> None:
    ran = _dwf_process("run", CLI / "order.yml", "--input", '{"amount": 300}', *WITH_SERVICES,
                       "--json", env=process_env)  # fmt: skip
    execution_id = json.loads(ran.stdout)["execution_id"]
    resumed = _dwf_process("resume", execution_id, "--approve", *WITH_SERVICES, "--json",
                           env=process_env)  # fmt: skip

    assert (ran.returncode, ran.stderr) == (0, "")
    assert json.loads(ran.stdout)["status"] == "halted"
    assert (resumed.returncode, resumed.stderr) == (0, "")
    output = json.loads(resumed.stdout)["output"]
    assert output["receipt"] == {"amount": 300, "key": f"{execution_id}:charge"}


@pytest.mark.slow
def test_the_dwf_command_prints_bad_input_as_one_line_without_a_traceback(
    process_env: dict[str, str], tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"garbage" * 100)
    cases = [
        (("show", "nope"), 2, "no execution 'nope'"),
        (("list", "--store", f"sqlite:///{corrupt}"), 1, "corrupt"),
        (("run", CLI / "order.yml", "--input", '{"amount": []}'), 2, "must be integer"),
    ]
    for args, code, message in cases:
        done = _dwf_process(*args, env=process_env)
        assert done.returncode == code, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("dwf: ")
        assert message in done.stderr


@pytest.mark.slow
def test_the_dwf_command_shows_progress_on_a_real_terminal(process_env: dict[str, str]) -> None:
    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dwf.cli", "run", CLI / "order.yml", "--input",
             '{"amount": 1}', *WITH_SERVICES],
            stdout=subprocess.PIPE, stderr=follower, text=True, env=process_env,
            timeout=SUBPROCESS_TIMEOUT, check=False,
        )  # fmt: skip
        os.close(follower)
        follower = -1
        progress = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            progress += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)

    assert done.returncode == 0
    text = progress.decode("utf-8")
    assert "▸ charge (call)" in text
    assert "✓ done" in text
    assert "Traceback" not in text


@pytest.mark.slow
def test_a_store_locked_in_the_middle_of_a_run_loses_nothing_and_recover_finishes_it(
    process_env: dict[str, str], tmp_path: Path
) -> None:
    # The `lock` step takes an exclusive lock on the store from inside the run (once), so the
    # checkpoint after it cannot be written; the run must stop with one line and keep the
    # checkpoints already written, and `dwf recover` continues it once the process is gone.
    path = tmp_path / "dwf.db"
    env = {**process_env, "DWF_TEST_DIR": str(tmp_path), "LOCK_DB": str(path)}
    url = f"sqlite:///{path}?busy_timeout=0.1"
    services = ("--services", CLI / "locking_services.py")

    ran = _dwf_process("run", CLI / "lock_midway.yml", "--execution-id", "locked-1", *services,
                       "--store", url, env=env)  # fmt: skip
    shown = _dwf_process("show", "locked-1", "--store", url, "--json", env=env)
    recovered = _dwf_process("recover", *services, "--store", url, "--json", env=env)

    assert ran.returncode == 1
    assert ran.stderr.count("\n") == 1
    assert "is locked" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert json.loads(shown.stdout)["status"] == "running"
    assert [e["step"] for e in json.loads(shown.stdout)["timeline"]] == ["first"]
    assert recovered.returncode == 0, recovered.stderr
    (result,) = json.loads(recovered.stdout)
    assert result["status"] == "completed"
    assert result["output"] == {"first": "one", "second": "two"}
    assert (tmp_path / "calls.log").read_text().splitlines() == ["first", "lock", "lock"]


@pytest.mark.slow
def test_a_blocking_sync_service_past_its_timeout_does_not_keep_the_command_alive(
    process_env: dict[str, str],
) -> None:
    started = time.monotonic()
    try:
        done = _dwf_process(
            "run", CLI / "hanging_in_thread.yml", *WITH_SERVICES, "--json", env=process_env,
            timeout=10,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("`dwf run` was still running 10 s after a 0.2 s step timeout")
    assert time.monotonic() - started < 10
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["message"] == "step 'wait' timed out after 0.2s"
