"""The ``call`` step: the service calling convention, retries, timeouts and output checks."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import textwrap
import threading
from typing import Any

import pydantic
import pytest

import dwf
from dwf.services import Services


def workflow(text: str) -> dwf.WorkflowDefinition:
    """Parse a workflow; ``id`` and ``name`` are added when the text has none."""
    text = textwrap.dedent(text)
    if not text.lstrip().startswith("id:"):
        text = "id: test\nname: Test\n" + text
    return dwf.parse_workflow(text)


def call_workflow(service: str, method: str, input: str = "null", extra: str = "") -> str:
    """A one-call workflow whose result is the call's output variable ``out``."""
    return f"""
        steps:
          - id: do
            type: call
            service: {service}
            method: {method}
            input: {input}
            output: out
            {extra}
            next: finish
          - id: finish
            type: end
            result: $out
        """


async def run_call(
    services: dict[str, Any], service: str, method: str, input: str = "null", extra: str = ""
) -> dwf.RunResult:
    engine = dwf.Engine("memory://", services=services)
    return await engine.run(workflow(call_workflow(service, method, input, extra)))


class Calc:
    """A service with every kind of method."""

    created = 0

    def __init__(self) -> None:
        Calc.created += 1
        self.calls = 0

    def add(self, a: int, b: int) -> int:
        return a + b

    def greet(self, name: str) -> str:
        return f"Hello, {name}!"

    def answer(self) -> int:
        return 42

    def describe(self, data: dict[str, Any]) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(data.items()))

    def count(self) -> int:
        self.calls += 1
        return self.calls

    async def slow_add(self, a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    @staticmethod
    def static_double(x: int) -> int:
        return x * 2

    @classmethod
    def class_name(cls) -> str:
        return cls.__name__

    def options(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def keyword_only(self, *, a: int) -> int:
        return a

    def maybe(self, value: Any = "default") -> Any:
        return value

    def thread_name(self) -> str:
        return threading.current_thread().name

    def _private(self) -> None:
        raise AssertionError("never called")


# ------------------------------------------------------------------------- calling convention


async def test_a_mapping_input_is_passed_as_keyword_arguments() -> None:
    result = await run_call({"Calc": Calc}, "Calc", "add", "{a: 1, b: 2}")
    assert (result.status, result.output) == ("completed", 3)


async def test_a_scalar_input_is_passed_as_one_positional_argument() -> None:
    result = await run_call({"Calc": Calc}, "Calc", "greet", "World")
    assert result.output == "Hello, World!"


async def test_a_mapping_whose_keys_are_not_parameters_is_passed_positionally() -> None:
    result = await run_call({"Calc": Calc}, "Calc", "describe", "{x: 1, y: 2}")
    assert result.output == "x=1,y=2"


async def test_a_method_without_parameters_is_called_without_the_input() -> None:
    result = await run_call({"Calc": Calc}, "Calc", "answer", "{ignored: true}")
    assert result.output == 42


async def test_a_method_with_var_keywords_receives_the_whole_mapping() -> None:
    result = await run_call({"Calc": Calc}, "Calc", "options", "{x: 1, y: [2]}")
    assert result.output == {"x": 1, "y": [2]}


async def test_a_null_input_uses_the_parameter_default() -> None:
    result = await run_call({"Calc": Calc}, "Calc", "maybe")
    assert result.output == "default"


async def test_a_null_input_is_passed_when_the_parameter_has_no_default() -> None:
    result = await run_call({"Calc": Calc}, "Calc", "greet")
    assert result.output == "Hello, None!"


async def test_async_methods_are_awaited() -> None:
    result = await run_call({"Calc": Calc}, "Calc", "slow_add", "{a: 2, b: 3}")
    assert result.output == 5


async def test_sync_methods_run_in_a_worker_thread() -> None:
    result = await run_call({"Calc": Calc}, "Calc", "thread_name")
    assert result.output != threading.current_thread().name


async def test_static_and_class_methods_are_called_on_the_class() -> None:
    before = Calc.created
    assert (await run_call({"Calc": Calc}, "Calc", "static_double", "21")).output == 42
    assert (await run_call({"Calc": Calc}, "Calc", "class_name")).output == "Calc"
    assert Calc.created == before  # no instance was needed


async def test_a_methods_signature_is_read_once_and_never_confused_with_anothers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A call step asks for the method's signature on every call: read once per function (a
    # bound method's by its function), and a method of the same name elsewhere has its own.
    # So is the method found once per service and method, until something is registered.
    import inspect

    from dwf import services as services_module

    class Other:
        def add(self, a: int, b: int, c: int = 100) -> int:
            return a + b + c

    looked_up: list[Any] = []
    signature = inspect.signature

    def counting(fn: Any) -> inspect.Signature:
        looked_up.append(fn)
        return signature(fn)

    monkeypatch.setattr(services_module.inspect, "signature", counting)
    monkeypatch.setattr(services_module, "_TRAITS", {})
    for _ in range(3):
        assert (await run_call({"Calc": Calc}, "Calc", "add", "{a: 1, b: 2}")).output == 3
    assert len(looked_up) == 1
    assert (await run_call({"Other": Other}, "Other", "add", "{a: 1, b: 2}")).output == 103
    assert (await run_call({"Calc": Calc}, "Calc", "static_double", "21")).output == 42
    assert len(looked_up) == 3


async def test_a_service_registered_again_is_the_one_called() -> None:
    # resolve() keeps what it found for classes and functions until something is registered;
    # an object's method is looked up on every call (it may be replaced on the object).
    services = Services()

    class First:
        def value(self) -> int:
            return 1

    class Second:
        def value(self) -> int:
            return 2

    class Holder:
        def value(self) -> int:
            return 3

    services.register("S", First)
    assert await services.call("S", "value", None) == 1
    services.register("S", Second)
    assert await services.call("S", "value", None) == 2
    holder = Holder()
    services.register("H", holder)
    assert await services.call("H", "value", None) == 3
    holder.value = lambda: 4  # type: ignore[method-assign]
    assert await services.call("H", "value", None) == 4


async def test_a_registered_class_is_instantiated_once_per_engine() -> None:
    engine = dwf.Engine("memory://", services={"Calc": Calc})
    wf = workflow("""
        steps:
          - id: first
            type: call
            service: Calc
            method: count
            next: second
          - id: second
            type: call
            service: Calc
            method: count
            output: calls
            next: finish
          - id: finish
            type: end
            result: $calls
        """)
    assert (await engine.run(wf)).output == 2
    assert (await engine.run(wf)).output == 4


async def test_a_registered_instance_is_used_as_it_is() -> None:
    calc = Calc()
    calc.calls = 10
    result = await run_call({"calc": calc}, "calc", "count")
    assert result.output == 11
    assert calc.calls == 11


async def test_a_function_service_is_called_by_its_own_name() -> None:
    def double(x: int) -> int:
        return x * 2

    async def triple(x: int) -> int:
        return x * 3

    services = {"double": double, "triple": triple}
    assert (await run_call(services, "double", "double", "4")).output == 8
    assert (await run_call(services, "triple", "triple", "{x: 4}")).output == 12
    assert (await run_call(services, "double", "call", "5")).output == 10


async def test_a_function_service_called_with_another_method_name_says_which_to_use() -> None:
    def double(x: int) -> int:
        return x * 2

    result = await run_call({"Doubler": double}, "Doubler", "run", "4")
    assert result.status == "failed"
    assert "use method: double" in result.error["message"]


async def test_a_module_like_object_service_is_called_directly() -> None:
    class Namespace:
        pass

    namespace = Namespace()
    namespace.shout = lambda text: text.upper()  # type: ignore[attr-defined]
    result = await run_call({"ns": namespace}, "ns", "shout", "hey")
    assert result.output == "HEY"


async def test_services_can_be_given_as_a_services_registry() -> None:
    services = dwf.Services()
    services.register(Calc)
    engine = dwf.Engine("memory://", services=services)
    result = await engine.run(workflow(call_workflow("Calc", "add", "{a: 2, b: 2}")))
    assert result.output == 4


async def test_the_input_is_resolved_against_the_variables_before_the_call() -> None:
    engine = dwf.Engine("memory://", services={"Calc": Calc})
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set: {x: 5, y: 10}
            next: do
          - id: do
            type: call
            service: Calc
            method: add
            input: {a: $x, b: $y}
            output: sum
            next: finish
          - id: finish
            type: end
            result: $sum
        """)
    assert (await engine.run(wf)).output == 15


async def test_the_result_is_the_step_output_even_without_an_output_key() -> None:
    engine = dwf.Engine("memory://", services={"Calc": Calc})
    wf = workflow("""
        steps:
          - id: do
            type: call
            service: Calc
            method: answer
        """)
    result = await engine.run(wf)
    assert (await engine.get(result.execution_id)).variables == {}
    [entry] = await engine.entries(result.execution_id)
    assert (entry.step_type, entry.output) == ("call", 42)


async def test_a_keyword_only_method_given_a_scalar_fails_with_a_clear_message() -> None:
    result = await run_call({"Calc": Calc}, "Calc", "keyword_only", "7")
    assert result.status == "failed"
    assert "takes only keyword arguments (a)" in result.error["message"]


async def test_a_mapping_missing_an_argument_fails_naming_the_method() -> None:
    result = await run_call({"Calc": Calc}, "Calc", "add", "{a: 1}")
    assert result.status == "failed"
    assert "Calc.add" in result.error["message"]


async def test_an_input_that_does_not_fit_the_signature_is_not_retried() -> None:
    engine = dwf.Engine("memory://", services={"Calc": Calc})
    wf = workflow(call_workflow("Calc", "add", "{a: 1}", "retries: 3\n            retry_delay: 0"))
    result = await engine.run(wf)
    assert result.status == "failed"
    assert result.error["type"] == "ServiceInputError"
    actions = [e.action for e in await engine.entries(result.execution_id)]
    assert actions == ["failed"]


async def test_a_class_whose_constructor_needs_arguments_asks_for_an_instance() -> None:
    class NeedsArgs:
        def __init__(self, url: str) -> None:
            self.url = url

        def ping(self) -> str:
            return "pong"

    result = await run_call({"NeedsArgs": NeedsArgs}, "NeedsArgs", "ping")
    assert result.status == "failed"
    assert "register an instance instead" in result.error["message"]


async def test_private_methods_cannot_be_called() -> None:
    result = await run_call({"Calc": Calc}, "Calc", "_private")
    assert result.status == "failed"
    assert "private" in result.error["message"]


# ------------------------------------------------------------------------------- idempotency


async def test_the_idempotency_key_is_the_execution_id_and_step_path() -> None:
    seen: list[tuple[str, str]] = []

    class Payments:
        def charge(self, amount: int, idempotency_key: str) -> str:
            seen.append((str(amount), idempotency_key))
            return "ok"

    engine = dwf.Engine("memory://", services={"Payments": Payments})
    wf = workflow("""
        steps:
          - id: charge
            type: call
            service: Payments
            method: charge
            input: {amount: 5}
            next: each
          - id: each
            type: loop
            over: [1, 2]
            do:
              - id: pay
                type: call
                service: Payments
                method: charge
                input: {amount: $item}
        """)
    result = await engine.run(wf)
    exec_id = result.execution_id
    assert seen == [
        ("5", f"{exec_id}:charge"),
        ("1", f"{exec_id}:each[0]/pay"),
        ("2", f"{exec_id}:each[1]/pay"),
    ]


async def test_the_idempotency_key_is_stable_across_retries_and_positional_input() -> None:
    keys: list[str] = []

    def flaky(payload: Any, idempotency_key: str) -> Any:
        keys.append(idempotency_key)
        if len(keys) < 3:
            raise ConnectionError("try again")
        return payload

    result = await run_call(
        {"flaky": flaky}, "flaky", "flaky", "[1, 2]", "retries: 2\n            retry_delay: 0"
    )
    assert result.output == [1, 2]
    assert len(keys) == 3
    assert len(set(keys)) == 1
    assert keys[0] == f"{result.execution_id}:do"


# ---------------------------------------------------------------------------- unknown names


async def test_an_unknown_service_fails_listing_the_registered_ones() -> None:
    result = await run_call({"Calc": Calc, "Mailer": Calc}, "Calx", "add", "{a: 1, b: 2}")
    assert result.status == "failed"
    message = result.error["message"]
    assert "unknown service 'Calx'" in message
    assert "did you mean 'Calc'?" in message
    assert "Registered services: Calc, Mailer" in message
    assert result.error["step"] == "do"


async def test_an_unknown_method_fails_listing_the_service_methods() -> None:
    result = await run_call({"Calc": Calc}, "Calc", "ad", "{a: 1, b: 2}")
    assert result.status == "failed"
    message = result.error["message"]
    assert "service 'Calc' has no method 'ad'" in message
    assert "did you mean 'add'?" in message
    assert "answer" in message
    assert "greet" in message
    assert "_private" not in message


async def test_an_unknown_service_is_not_retried() -> None:
    engine = dwf.Engine("memory://")
    wf = workflow(call_workflow("Nope", "x", "null", "retries: 5\n            retry_delay: 0"))
    result = await engine.run(wf)
    assert result.status == "failed"
    assert [e.action for e in await engine.entries(result.execution_id)] == ["failed"]


# ---------------------------------------------------------------------------------- retries


class Flaky:
    """Fails ``failures`` times, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0

    async def fetch(self) -> str:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError(f"attempt {self.attempts} failed")
        return "data"


async def test_a_failing_call_is_retried_until_it_succeeds() -> None:
    flaky = Flaky(failures=2)
    engine = dwf.Engine("memory://", services={"Api": flaky})
    wf = workflow(
        call_workflow("Api", "fetch", "null", "retries: 2\n            retry_delay: 0.001")
    )
    result = await engine.run(wf)
    assert (result.status, result.output) == ("completed", "data")
    assert flaky.attempts == 3
    entries = await engine.entries(result.execution_id)
    assert [(e.step_id, e.action, e.attempt) for e in entries] == [
        ("do", "retried", 1),
        ("do", "retried", 2),
        ("do", "completed", 3),
        ("finish", "completed", 1),
    ]
    assert entries[0].error["message"] == "attempt 1 failed"
    assert entries[0].error["type"] == "ConnectionError"


async def test_retries_give_up_with_the_last_error() -> None:
    flaky = Flaky(failures=10)
    engine = dwf.Engine("memory://", services={"Api": flaky})
    wf = workflow(
        call_workflow("Api", "fetch", "null", "retries: 2\n            retry_delay: 0.001")
    )
    result = await engine.run(wf)
    assert result.status == "failed"
    assert flaky.attempts == 3
    assert result.error["message"] == "attempt 3 failed"
    assert result.error["type"] == "ConnectionError"
    actions = [(e.action, e.attempt) for e in await engine.entries(result.execution_id)]
    assert actions == [("retried", 1), ("retried", 2), ("failed", 3)]


async def test_without_retries_a_call_is_attempted_once() -> None:
    flaky = Flaky(failures=1)
    result = await run_call({"Api": flaky}, "Api", "fetch")
    assert result.status == "failed"
    assert flaky.attempts == 1


async def test_retry_delays_grow_by_the_backoff_factor(caplog: pytest.LogCaptureFixture) -> None:
    flaky = Flaky(failures=3)
    caplog.set_level(logging.WARNING, logger="dwf")
    extra = "retries: 3\n            retry_delay: 0.01\n            retry_backoff: 2"
    result = await run_call({"Api": flaky}, "Api", "fetch", "null", extra)
    assert result.status == "completed"
    waits = [r.getMessage().rsplit(" ", 1)[-1] for r in caplog.records if "retrying" in r.message]
    assert waits == ["0.01s", "0.02s", "0.04s"]


async def test_integer_retry_settings_are_accepted() -> None:
    flaky = Flaky(failures=1)
    extra = "retries: 1\n            retry_delay: 0\n            retry_backoff: 1"
    result = await run_call({"Api": flaky}, "Api", "fetch", "null", extra)
    assert result.output == "data"


async def test_a_non_retryable_error_stops_the_retries_at_once() -> None:
    attempts = []

    def refuse() -> None:
        attempts.append(1)
        raise dwf.NonRetryableError("card declined")

    extra = "retries: 5\n            retry_delay: 0"
    result = await run_call({"refuse": refuse}, "refuse", "refuse", "null", extra)
    assert result.status == "failed"
    assert result.error["type"] == "NonRetryableError"
    assert result.error["message"] == "card declined"
    assert len(attempts) == 1


async def test_a_handled_failure_after_retries_goes_to_on_error() -> None:
    flaky = Flaky(failures=10)
    engine = dwf.Engine("memory://", services={"Api": flaky})
    wf = workflow("""
        steps:
          - id: do
            type: call
            service: Api
            method: fetch
            retries: 1
            retry_delay: 0
            on_error: fallback
          - id: fallback
            type: end
            result: {error: $_last_error}
        """)
    result = await engine.run(wf)
    assert result.output == {
        "error": {"step": "do", "type": "ConnectionError", "message": "attempt 2 failed"}
    }


# ---------------------------------------------------------------------------------- timeout


class Hanging:
    """Hangs on the first ``hangs`` calls, records cancellations, then answers."""

    def __init__(self, hangs: int) -> None:
        self.hangs = hangs
        self.calls = 0
        self.cancelled = 0

    async def work(self) -> str:
        self.calls += 1
        if self.calls <= self.hangs:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return "done"


async def test_a_call_that_runs_past_its_timeout_fails_with_step_timeout() -> None:
    hanging = Hanging(hangs=1)
    result = await run_call({"Svc": hanging}, "Svc", "work", "null", "timeout: 0.02")
    assert result.status == "failed"
    assert result.error["type"] == "StepTimeout"
    assert result.error["message"] == "step 'do' timed out after 0.02s"
    assert hanging.cancelled == 1


async def test_the_timeout_applies_to_each_attempt() -> None:
    hanging = Hanging(hangs=2)
    engine = dwf.Engine("memory://", services={"Svc": hanging})
    extra = "timeout: 0.02\n            retries: 2\n            retry_delay: 0"
    result = await engine.run(workflow(call_workflow("Svc", "work", "null", extra)))
    assert (result.status, result.output) == ("completed", "done")
    assert (hanging.calls, hanging.cancelled) == (3, 2)
    retried = [e for e in await engine.entries(result.execution_id) if e.action == "retried"]
    assert [e.error["type"] for e in retried] == ["StepTimeout", "StepTimeout"]


async def test_a_call_within_its_timeout_completes() -> None:
    result = await run_call({"Calc": Calc}, "Calc", "slow_add", "{a: 1, b: 1}", "timeout: 5")
    assert result.output == 2


# ---------------------------------------------------------------------------- output schema


SCHEMA_EXTRA = """output:
              key: out
              schema:
                type: object
                required: [id]
                properties:
                  id: {type: integer}"""


async def test_a_result_matching_the_output_schema_is_stored_under_its_key() -> None:
    def make() -> dict[str, Any]:
        return {"id": 7}

    engine = dwf.Engine("memory://", services={"make": make})
    wf = workflow(f"""
        steps:
          - id: do
            type: call
            service: make
            method: make
            {SCHEMA_EXTRA}
            next: finish
          - id: finish
            type: end
            result: $out
        """)
    assert (await engine.run(wf)).output == {"id": 7}


async def test_output_name_is_accepted_for_output_key() -> None:
    engine = dwf.Engine("memory://", services={"Calc": Calc})
    wf = workflow("""
        steps:
          - id: do
            type: call
            service: Calc
            method: answer
            output: {name: out, schema: {type: integer}}
            next: finish
          - id: finish
            type: end
            result: $out
        """)
    assert (await engine.run(wf)).output == 42


async def test_a_result_violating_the_output_schema_fails_without_retries() -> None:
    calls = []

    def make() -> dict[str, Any]:
        calls.append(1)
        return {"id": "seven"}

    engine = dwf.Engine("memory://", services={"make": make})
    wf = workflow(f"""
        steps:
          - id: do
            type: call
            service: make
            method: make
            retries: 3
            retry_delay: 0
            {SCHEMA_EXTRA}
        """)
    result = await engine.run(wf)
    assert result.status == "failed"
    assert result.error["type"] == "OutputSchemaError"
    assert "does not match its output schema" in result.error["message"]
    assert "id: 'seven' is not of type 'integer'" in result.error["message"]
    assert len(calls) == 1
    assert "out" not in (await engine.get(result.execution_id)).variables


# --------------------------------------------------------------------------- non-JSON results


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Money(pydantic.BaseModel):
    amount: int
    currency: str


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ((1, 2), [1, 2]),
        ({3, 1, 2}, [1, 2, 3]),
        (datetime.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (Point(1, 2), {"x": 1, "y": 2}),
        (Money(amount=5, currency="EUR"), {"amount": 5, "currency": "EUR"}),
        ({1: "one"}, {"1": "one"}),
    ],
    ids=["tuple", "set", "datetime", "dataclass", "pydantic", "int-keys"],
)
async def test_json_like_results_are_converted_before_they_are_stored(
    value: Any, stored: Any
) -> None:
    result = await run_call({"make": lambda: value}, "make", "call")
    assert (result.status, result.output) == ("completed", stored)


@pytest.mark.parametrize(
    "value", [object(), float("nan"), b"bytes"], ids=["object", "nan", "bytes"]
)
async def test_a_result_that_cannot_be_stored_fails_the_step_clearly(value: Any) -> None:
    result = await run_call({"make": lambda: value}, "make", "call")
    assert result.status == "failed"
    assert "service make.call returned" in result.error["message"]
    assert "stored" in result.error["message"]


async def test_a_result_that_cannot_be_stored_is_not_retried() -> None:
    calls = []

    def make() -> object:
        calls.append(1)
        return object()

    extra = "retries: 2\n            retry_delay: 0"
    result = await run_call({"make": make}, "make", "make", "null", extra)
    assert result.status == "failed"
    assert len(calls) == 1


# --------------------------------------------------------------------------------- failures


async def test_an_exception_from_the_service_becomes_a_structured_error() -> None:
    def explode() -> None:
        raise ValueError("bad value")

    result = await run_call({"explode": explode}, "explode", "explode")
    assert result.status == "failed"
    assert result.error == {
        "type": "ValueError",
        "message": "bad value",
        "step": "do",
        "path": "do",
    }


async def test_a_failed_call_writes_no_variables() -> None:
    engine = dwf.Engine("memory://", services={"Calc": Calc})
    wf = workflow("""
        steps:
          - id: do
            type: call
            service: Calc
            method: add
            input: {a: 1, b: nope}
            output: sum
        """)
    result = await engine.run(wf)
    assert result.status == "failed"
    assert result.error["type"] == "TypeError"
    assert (await engine.get(result.execution_id)).variables == {}
