"""Every core example, end to end through the ``dwf`` command, as its README describes it.

Each command runs in-process through :func:`dwf.cli.main` against a SQLite store in a temporary
directory, from the repository root (the READMEs' paths are relative to it). The last tests read
the READMEs themselves, so that a renamed file or a changed workflow cannot leave them stale.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import dwf
from dwf.cli import main
from dwf.services import Services

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CORE_EXAMPLES = (
    "hello_world",
    "calculator",
    "expense_approval",
    "item_processor",
    "parallel_fetch",
    "service_integration",
    "order_fulfillment",
)
OF = "examples/order_fulfillment"

Cli = Callable[..., tuple[int, Any]]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run ``dwf ARGS --store <tmp> --json`` from the repository root; return (exit code, JSON)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("DWF_SERVICES", raising=False)
    store = f"sqlite:///{tmp_path}/x.db"

    def run(*args: str) -> tuple[int, Any]:
        capsys.readouterr()
        code = main([*args, "--store", store, "--json"])
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip() else None

    return run


def run_order(cli: Cli, name: str) -> dict[str, Any]:
    code, result = cli(
        "run", f"{OF}/workflow.yml", "--services", f"{OF}/services.py",
        "--input", f"@{OF}/orders/{name}.json",
    )  # fmt: skip
    assert code == 0, result
    assert isinstance(result, dict)
    return result


def resume_order(cli: Cli, execution_id: str, decision: str) -> dict[str, Any]:
    code, result = cli("resume", execution_id, decision, "--services", f"{OF}/services.py")
    assert code == 0, result
    assert isinstance(result, dict)
    return result


def timeline(cli: Cli, execution_id: str) -> list[tuple[str, str]]:
    code, shown = cli("show", execution_id)
    assert code == 0
    return [(row["step"], row["action"]) for row in shown["timeline"]]


# --------------------------------------------------------------------------- validate


def test_every_example_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLES)]) == 0
    out, err = capsys.readouterr()
    for name in CORE_EXAMPLES:
        assert f"examples/{name}/workflow.yml: ok" in out
        assert f"examples/{name}/" not in err  # no warnings either


# --------------------------------------------------------------------------- hello_world


def test_hello_world_greets_and_stamps_the_time_as_an_iso_string(cli: Cli) -> None:
    before = datetime.now(UTC)
    code, result = cli("run", "examples/hello_world/workflow.yml", "--input", '{"name": "World"}')
    assert code == 0
    assert result["status"] == "completed"
    assert result["output"]["message"] == "Hello, World!"
    generated_at = datetime.fromisoformat(result["output"]["generated_at"])
    assert generated_at.tzinfo is not None
    assert before <= generated_at <= datetime.now(UTC)


def test_hello_world_without_a_name_is_refused_before_it_runs(cli: Cli) -> None:
    code, _ = cli("run", "examples/hello_world/workflow.yml", "--input", "{}")
    assert code == 2


# --------------------------------------------------------------------------- calculator


@pytest.mark.parametrize(
    ("operation", "a", "b", "expected"),
    [
        ("add", 10, 5, {"result": 15, "operation": "addition", "error": None}),
        ("subtract", 10, 5, {"result": 5, "operation": "subtraction", "error": None}),
        ("multiply", 10, 5, {"result": 50, "operation": "multiplication", "error": None}),
        ("divide", 10, 5, {"result": 2.0, "operation": "division", "error": None}),
        ("divide", 10, 0, {"result": None, "operation": None, "error": "cannot divide by zero"}),
        (
            "power",
            10,
            5,
            {"result": None, "operation": None, "error": "Unknown operation 'power'"},
        ),
    ],
)
def test_calculator_routes_each_operation(
    cli: Cli, operation: str, a: int, b: int, expected: dict[str, Any]
) -> None:
    payload = json.dumps({"operation": operation, "a": a, "b": b})
    code, result = cli(
        "run", "examples/calculator/workflow.yml",
        "--services", "examples/calculator/services.py", "--input", payload,
    )  # fmt: skip
    assert code == 0
    assert result["status"] == "completed"
    assert result["output"] == expected


# --------------------------------------------------------------------------- expense_approval

EXPENSE = "examples/expense_approval"


def test_a_small_expense_is_approved_without_halting(cli: Cli) -> None:
    code, result = cli("run", f"{EXPENSE}/workflow.yml", "--input", f"@{EXPENSE}/small.json")
    assert code == 0
    assert result["output"] == {
        "approved": True,
        "approved_by": "system",
        "reason": "Amount under threshold",
    }


def start_large_expense(cli: Cli) -> str:
    code, result = cli("run", f"{EXPENSE}/workflow.yml", "--input", f"@{EXPENSE}/large.json")
    assert code == 0
    assert result["status"] == "halted"
    assert result["halt"]["step"] == "require_approval"
    assert result["halt"]["data"]["prompt"] == "Please approve expense request"
    assert result["halt"]["data"]["context"] == {
        "requester": "Bob",
        "amount": 500,
        "description": "Conference ticket",
    }
    execution_id: str = result["execution_id"]
    return execution_id


def test_a_large_expense_halts_and_completes_when_approved(cli: Cli) -> None:
    execution_id = start_large_expense(cli)
    code, result = cli("resume", execution_id, "--approve")
    assert code == 0
    assert result["output"] == {
        "approved": True,
        "approved_by": "manager",
        "reason": "Approved by manager",
    }
    code, _ = cli("resume", execution_id, "--approve")
    assert code == 2  # it is finished; it cannot be resumed twice


def test_a_large_expense_halts_and_takes_on_reject_when_rejected(cli: Cli) -> None:
    execution_id = start_large_expense(cli)
    code, result = cli("resume", execution_id, "--reject")
    assert code == 0
    assert result["output"] == {
        "approved": False,
        "approved_by": "manager",
        "reason": "Request rejected",
    }


# --------------------------------------------------------------------------- item_processor

ITEMS = "examples/item_processor"


def test_the_item_loop_breaks_at_the_first_item_over_budget(cli: Cli) -> None:
    code, result = cli(
        "run", f"{ITEMS}/workflow.yml", "--services", f"{ITEMS}/services.py",
        "--input", f"@{ITEMS}/shopping_list.json",
    )  # fmt: skip
    assert code == 0
    assert result["output"] == {
        "item_count": 2,
        "total": 80.0,
        "average": 40.0,
        "items": [
            {"name": "Widget", "quantity": 3, "subtotal": 30.0},
            {"name": "Gadget", "quantity": 2, "subtotal": 50.0},
        ],
        "stopped_at": "Gizmo",
    }
    steps = timeline(cli, result["execution_id"])
    priced = [step for step, _ in steps if step.endswith("/price_item")]
    # Doohickey (4.0) would fit, but the loop was left at Gizmo: it is never priced.
    assert priced == [
        "fill_cart[0]/price_item",
        "fill_cart[1]/price_item",
        "fill_cart[2]/price_item",
    ]
    assert ("fill_cart[2]/stop_here", "completed") in steps


def test_the_item_loop_takes_every_item_when_the_budget_allows(cli: Cli) -> None:
    shopping = json.loads((ROOT / ITEMS / "shopping_list.json").read_text())
    shopping["budget"] = 1000
    code, result = cli(
        "run", f"{ITEMS}/workflow.yml", "--services", f"{ITEMS}/services.py",
        "--input", json.dumps(shopping),
    )  # fmt: skip
    assert code == 0
    assert result["output"]["item_count"] == 4
    assert result["output"]["total"] == 109.0
    assert result["output"]["stopped_at"] is None


# --------------------------------------------------------------------------- parallel_fetch


def test_parallel_fetch_waits_for_all_then_takes_the_first_mirror(cli: Cli) -> None:
    code, result = cli(
        "run", "examples/parallel_fetch/workflow.yml",
        "--services", "examples/parallel_fetch/services.py",
        "--input", '{"user_id": "USER-123"}',
    )  # fmt: skip
    assert code == 0
    output = result["output"]
    assert output["user"] == {
        "id": "USER-123",
        "name": "User USER-123",
        "email": "user-123@example.com",
    }
    assert [o["id"] for o in output["recent_orders"]] == ["ORD-1", "ORD-2", "ORD-3"]
    assert output["notifications"] == [{"id": "NOTIF-1", "message": "Your order ORD-1 has shipped"}]
    assert output["recommendations"]["source"] == "backup"
    steps = timeline(cli, result["execution_id"])
    completed = {step for step, action in steps if action == "completed"}
    assert {
        "fetch_all/fetch_profile",
        "fetch_all/fetch_orders",
        "fetch_all/fetch_notifications",
        "fetch_recommendations/backup_mirror",
    } <= completed
    assert "fetch_recommendations/primary_mirror" not in completed  # cancelled, not awaited


# --------------------------------------------------------------------------- service_integration

SI = "examples/service_integration"


def check_stock(cli: Cli, product_id: str, quantity: int) -> dict[str, Any]:
    payload = json.dumps({"product_id": product_id, "quantity": quantity})
    code, result = cli(
        "run", f"{SI}/workflow.yml", "--services", f"{SI}/services.py", "--input", payload
    )
    assert code == 0
    assert result["status"] == "completed"
    assert isinstance(result, dict)
    return result


def test_an_available_product_is_reserved(cli: Cli) -> None:
    output = check_stock(cli, "PROD-001", 5)["output"]
    assert output["status"] == "reserved"
    assert output["error"] is None
    assert output["availability"] == {
        "product_id": "PROD-001",
        "requested": 5,
        "available": 50,
        "in_stock": True,
    }
    assert output["reservation"]["reservation_id"].startswith("RES-")
    assert output["reservation"]["remaining"] == 45


@pytest.mark.parametrize(("product_id", "quantity"), [("PROD-002", 1), ("PROD-003", 20)])
def test_a_short_product_is_reported_out_of_stock(cli: Cli, product_id: str, quantity: int) -> None:
    output = check_stock(cli, product_id, quantity)["output"]
    assert output["status"] == "out_of_stock"
    assert output["error"] == "Insufficient stock available"
    assert output["reservation"] is None


def test_a_transient_error_is_retried_then_handled_by_on_error(cli: Cli) -> None:
    result = check_stock(cli, "PROD-004", 1)
    assert result["output"]["status"] == "error"
    assert result["output"]["error"] == "check failed: warehouse EU-2 is not responding"
    steps = timeline(cli, result["execution_id"])
    assert [action for step, action in steps if step == "check"] == [
        "retried",
        "retried",
        "failed",
    ]
    assert ("check_failed", "completed") in steps


def test_a_non_retryable_error_goes_to_on_error_at_once(cli: Cli) -> None:
    result = check_stock(cli, "PROD-999", 1)
    assert result["output"]["error"] == "check failed: unknown product 'PROD-999'"
    steps = timeline(cli, result["execution_id"])
    assert [action for step, action in steps if step == "check"] == ["failed"]


# --------------------------------------------------------------------------- order_fulfillment


def test_a_standard_order_is_paid_and_shipped(cli: Cli) -> None:
    result = run_order(cli, "standard")
    assert result["status"] == "completed"
    output = result["output"]
    assert output["order_id"] == "ORD-1001"
    assert output["status"] == "completed"
    assert output["error"] is None
    assert output["details"] is None
    assert output["totals"] == {"subtotal": 109.97, "tax": 8.8, "shipping": 5.99, "total": 124.76}
    assert output["payment_id"].startswith("PAY-")
    assert output["tracking_number"].startswith("TRK")
    steps = timeline(cli, result["execution_id"])
    branches = {step for step, _ in steps if step.startswith("prepare_fulfillment/")}
    assert branches == {
        "prepare_fulfillment/check_inventory",
        "prepare_fulfillment/reserve_stock",
        "prepare_fulfillment/quote_shipping",
    }
    assert ("require_approval", "halted") not in steps


def start_high_value_order(cli: Cli) -> str:
    result = run_order(cli, "high_value")
    assert result["status"] == "halted"
    assert result["halt"]["step"] == "require_approval"
    data = result["halt"]["data"]
    assert data["prompt"] == "High-value order ORD-1002 (1301.93 USD) requires approval"
    assert data["context"] == {"order_id": "ORD-1002", "customer": "Bob Jones", "total": 1301.93}
    execution_id: str = result["execution_id"]
    return execution_id


def test_a_high_value_order_halts_and_is_paid_once_approved(cli: Cli) -> None:
    execution_id = start_high_value_order(cli)
    result = resume_order(cli, execution_id, "--approve")
    assert result["status"] == "completed"
    output = result["output"]
    assert output["status"] == "completed"
    assert output["totals"]["total"] == 1301.93
    assert output["payment_id"].startswith("PAY-")
    assert output["tracking_number"].startswith("TRK")


def test_a_high_value_order_rejected_releases_its_stock_and_is_not_charged(cli: Cli) -> None:
    execution_id = start_high_value_order(cli)
    result = resume_order(cli, execution_id, "--reject")
    output = result["output"]
    assert output["status"] == "rejected"
    assert output["error"] == "Order rejected by approver"
    assert output["payment_id"] is None
    assert output["tracking_number"] is None
    steps = timeline(cli, execution_id)
    assert ("release_stock", "completed") in steps
    assert not any(step == "process_payment" for step, _ in steps)


def test_a_declined_card_ends_as_payment_failed_without_retries(cli: Cli) -> None:
    result = run_order(cli, "declined_card")
    assert result["status"] == "completed"
    output = result["output"]
    assert output["status"] == "payment_failed"
    assert output["error"] == "Payment failed: card declined by the issuer (insufficient funds)"
    assert output["details"] == {
        "step": "process_payment",
        "type": "CardDeclined",
        "message": "card declined by the issuer (insufficient funds)",
    }
    assert output["totals"]["total"] == 113.97
    assert output["payment_id"] is None
    steps = timeline(cli, result["execution_id"])
    assert [action for step, action in steps if step == "process_payment"] == ["failed"]
    assert ("release_stock", "completed") in steps


def test_an_order_with_an_item_out_of_stock_names_it(cli: Cli) -> None:
    output = run_order(cli, "out_of_stock")["output"]
    assert output == {
        "order_id": "ORD-1004",
        "status": "out_of_stock",
        "error": "Items not available",
        "details": [{"product_id": "PROD-003", "requested": 1, "available": 0}],
        "totals": None,
        "payment_id": None,
        "tracking_number": None,
    }


def test_an_invalid_order_lists_every_problem(cli: Cli) -> None:
    output = run_order(cli, "invalid")["output"]
    assert output == {
        "order_id": "ORD-1005",
        "status": "invalid",
        "error": "Order validation failed",
        "details": [
            "Customer email required",
            "Item 1: quantity must be a positive integer",
            "Item 2: price required",
        ],
        "totals": None,
        "payment_id": None,
        "tracking_number": None,
    }


def test_input_that_does_not_match_the_declared_inputs_is_refused(cli: Cli) -> None:
    order = json.loads((ROOT / OF / "orders" / "standard.json").read_text())
    del order["payment"]
    code, result = cli(
        "run", f"{OF}/workflow.yml", "--services", f"{OF}/services.py",
        "--input", json.dumps(order),
    )  # fmt: skip
    assert code == 2
    assert result is None


def test_a_flaky_gateway_is_retried_and_the_retry_gets_the_original_charge(cli: Cli) -> None:
    result = run_order(cli, "flaky_gateway")
    output = result["output"]
    assert output["status"] == "completed"
    assert output["totals"] == {"subtotal": 29.99, "tax": 2.4, "shipping": 14.99, "total": 47.38}
    code, shown = cli("show", result["execution_id"])
    assert code == 0
    payments = [row for row in shown["timeline"] if row["step"] == "process_payment"]
    assert [(row["action"], row["attempt"]) for row in payments] == [
        ("retried", 1),
        ("completed", 2),
    ]
    assert payments[0]["error"]["type"] == "ConnectionError"
    charge = shown["variables"]["charge"]
    assert charge["replayed"] is True  # the gateway returned the charge it had already made
    assert charge["payment_id"] == output["payment_id"]


# --------------------------------------------------------------------------- exactly-once payment


def order_input(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / OF / "orders" / f"{name}.json").read_text())
    return data


def payment_services() -> tuple[Services, Any]:
    """The example's services as ``dwf run --services`` loads them, and the one PaymentService
    instance (the gateway and its ledger) that ``call`` steps will use."""
    services = Services.from_files([ROOT / OF / "services.py"])
    bound_method = services.resolve("PaymentService", "list_charges")
    return services, bound_method.__self__  # type: ignore[attr-defined]


async def test_charging_twice_with_the_same_key_charges_once() -> None:
    services, gateway = payment_services()
    payload = {"order_id": "ORD-1", "payment": {"token": "tok_visa_4242"}, "amount": 10.0}
    first = await services.call("PaymentService", "charge", payload, idempotency_key="e1:pay")
    again = await services.call("PaymentService", "charge", payload, idempotency_key="e1:pay")
    assert again["payment_id"] == first["payment_id"]
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert len(gateway.list_charges()) == 1
    await services.call("PaymentService", "charge", payload, idempotency_key="e2:pay")
    assert len(gateway.list_charges()) == 2  # another execution, another charge


async def test_reusing_a_key_for_a_different_amount_is_refused() -> None:
    services, gateway = payment_services()
    payload = {"order_id": "ORD-1", "payment": {"token": "tok_visa_4242"}, "amount": 10.0}
    await services.call("PaymentService", "charge", payload, idempotency_key="e1:pay")
    with pytest.raises(dwf.NonRetryableError, match=r"refusing a charge of 99\.0"):
        await services.call(
            "PaymentService", "charge", {**payload, "amount": 99.0}, idempotency_key="e1:pay"
        )
    assert len(gateway.list_charges()) == 1


class Clock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class DiesAfterCharging:
    """Stands in for PaymentService: charges through the real gateway, then the process "dies"
    before dwf can checkpoint the step (its task is cancelled, as in tests/dwf/test_durability)."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self.charged = asyncio.Event()
        self.dying = True

    async def charge(
        self, order_id: str, payment: dict[str, Any], amount: float, idempotency_key: str
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.gateway.charge(
            order_id=order_id, payment=payment, amount=amount, idempotency_key=idempotency_key
        )
        if self.dying:
            self.charged.set()
            await asyncio.Event().wait()  # never returns: the "crash" cancels it
        return result


async def test_recovering_a_crash_right_after_the_charge_does_not_charge_again(
    tmp_path: Path,
) -> None:
    workflow = dwf.load_workflow(ROOT / OF / "workflow.yml")
    services, gateway = payment_services()
    dies = DiesAfterCharging(gateway)
    services.register("PaymentService", dies)
    url = f"sqlite:///{tmp_path}/x.db"
    clock = Clock()

    first = dwf.Engine(url, services=services, clock=clock, lease_seconds=30)
    task = asyncio.ensure_future(first.run(workflow, order_input("standard")))
    await asyncio.wait_for(dies.charged.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await first.close()
    assert len(gateway.list_charges()) == 1  # charged, but dwf never saw the answer

    clock.now += 31  # the dead owner's lease runs out
    dies.dying = False
    second = dwf.Engine(url, services=services, clock=clock)
    results = await second.recover()
    await second.close()

    assert [r.status for r in results] == ["completed"]
    charges = gateway.list_charges()
    assert len(charges) == 1  # the rerun step used the same idempotency key
    assert results[0].output["payment_id"] == charges[0]["payment_id"]
    assert results[0].output["status"] == "completed"


# --------------------------------------------------------------------------- the READMEs

READMES = sorted(
    [EXAMPLES / "README.md", *(EXAMPLES / name / "README.md" for name in CORE_EXAMPLES)]
)
_FENCE = re.compile(r"^```(\w*)\s*$")


def code_blocks(readme: Path) -> list[tuple[str, list[str]]]:
    """The fenced code blocks of a Markdown file: (language, lines)."""
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    language = ""
    for line in readme.read_text(encoding="utf-8").splitlines():
        fence = _FENCE.match(line)
        if fence and current is None:
            current, language = [], fence.group(1)
        elif line.strip() == "```" and current is not None:
            blocks.append((language, current))
            current = None
        elif current is not None:
            current.append(line)
    assert current is None, f"{readme}: unclosed code block"
    return blocks


_INLINE_COMMAND = re.compile(r"`(dwf [^`]+)`")


def dwf_commands(readme: Path) -> list[list[str]]:
    """Every ``dwf ...`` line inside a code block, and every inline `` `dwf ...` `` span (the
    commands in tables and prose), split like a shell would."""
    text = readme.read_text(encoding="utf-8")
    in_blocks = [line for _, lines in code_blocks(readme) for line in lines]
    inline = [m.group(1) for m in _INLINE_COMMAND.finditer(text)]
    return [shlex.split(line) for line in [*in_blocks, *inline] if line.startswith("dwf ")]


_FILE_OPTIONS = ("--services", "--workflows")
_JSON_OPTIONS = ("--input", "--response")  # JSON text, or @file
_VALUE_OPTIONS = (*_FILE_OPTIONS, *_JSON_OPTIONS, "--store", "--execution-id", "--by")


def referenced_files(argv: list[str]) -> list[str]:
    """The files a dwf command line names: workflows, --services files and @input files."""
    command, args = argv[1], iter(argv[2:])
    files: list[str] = []
    for arg in args:
        if arg in _VALUE_OPTIONS:
            value = next(args)
            if arg in _FILE_OPTIONS:
                files.append(value)
            elif arg in _JSON_OPTIONS and value.startswith("@"):
                files.append(value[1:])
        elif not arg.startswith("-") and command in ("run", "validate", "graph"):
            files.append(arg)
    return files


def test_every_core_example_has_a_readme_with_a_dwf_command() -> None:
    for name in CORE_EXAMPLES:
        readme = EXAMPLES / name / "README.md"
        assert readme.is_file(), f"{name} has no README.md"
        assert dwf_commands(readme), f"{readme} shows no dwf command"


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_a_readme_command_names_exists(readme: Path) -> None:
    for argv in dwf_commands(readme):
        for file in referenced_files(argv):
            assert (ROOT / file).exists(), f"{readme.relative_to(ROOT)}: {shlex.join(argv)}"


def _runnable_commands() -> list[Any]:
    found = []
    for readme in READMES:
        name = readme.relative_to(ROOT)
        for n, argv in enumerate(dwf_commands(readme), start=1):
            if argv[1] in ("run", "validate") and len(argv) > 2:
                found.append(pytest.param(argv, id=f"{name}:{n}"))
    return found


@pytest.mark.parametrize("argv", _runnable_commands())
def test_every_run_and_validate_command_in_a_readme_succeeds(cli: Cli, argv: list[str]) -> None:
    if argv[1] == "validate":
        assert main(argv[1:]) == 0, shlex.join(argv)
        return
    code, result = cli(*argv[1:])
    assert code == 0, shlex.join(argv)
    assert result["status"] in ("completed", "halted")


def test_the_order_fulfillment_readme_draws_the_current_graph(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    [drawn] = [
        lines for language, lines in code_blocks(ROOT / OF / "README.md") if language == "mermaid"
    ]
    assert main(["graph", f"{OF}/workflow.yml"]) == 0
    assert capsys.readouterr().out.splitlines() == drawn, (
        "the README's mermaid block is stale: paste the output of "
        "`dwf graph examples/order_fulfillment/workflow.yml` into it"
    )
