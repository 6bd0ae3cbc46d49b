"""The workloads written the way a LangGraph user writes them. Runs in the peers' interpreter.

A ``StateGraph`` of N chained nodes compiled with a checkpointer and invoked with a new
``thread_id`` per run. ``durability="sync"`` makes every step's checkpoint persist before the next
step starts, the same guarantee the other systems give (LangGraph's default, ``"async"``, writes
the checkpoint while the next step already runs). Durable storage is ``SqliteSaver`` on a WAL file
with ``PRAGMA synchronous=FULL`` set on its connection; in memory it is ``InMemorySaver``.
"""

from __future__ import annotations

import operator
import sqlite3
import time
import uuid
from importlib.metadata import version
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from .measurement import Measurement, check_positions, measure_runs, sqlite_settings
from .workloads import DURABLE, GROWING, HALT, HALT_ANSWER, Job, payload

DURABILITY = "sync"


class LinearState(TypedDict):
    x: int


class GrowingState(TypedDict):
    # A dict channel whose reducer merges each node's new key into the state.
    data: Annotated[dict[str, str], operator.or_]


class HaltState(TypedDict):
    x: int
    answer: int


def run(job: Job) -> Measurement:
    conn, checkpointer = _checkpointer(job)
    graph: Any = _build(job).compile(checkpointer=checkpointer)
    kind = job.workload.kind

    def run_once(_: int) -> list[int]:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}, "recursion_limit": 10_000}
        if kind == HALT:
            first = graph.invoke({"x": 0}, config, durability=DURABILITY)
            if "__interrupt__" not in first:
                raise RuntimeError(f"langgraph: expected an interrupt, got {first!r}")
            final = graph.invoke(Command(resume=HALT_ANSWER), config, durability=DURABILITY)
            if final["answer"] != HALT_ANSWER:
                raise RuntimeError(f"langgraph: resume lost the answer: {final!r}")
            return []
        if kind == GROWING:
            return check_positions(_stream_step_times(graph, config), job)
        graph.invoke({"x": 0}, config, durability=DURABILITY)
        return []

    measurement = measure_runs(job, run_once)
    if conn is not None:
        measurement.settings = {"storage": "SqliteSaver, sqlite3 file", **sqlite_settings(conn)}
        conn.close()
    else:
        measurement.settings = {"storage": "InMemorySaver"}
    measurement.settings["durability"] = DURABILITY
    measurement.versions = {
        name: version(name)
        for name in ("langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite")
    }
    return measurement


def _checkpointer(job: Job) -> tuple[sqlite3.Connection | None, Any]:
    if job.storage != DURABLE:
        return None, InMemorySaver()
    conn = sqlite3.connect(job.workdir / "langgraph.db", check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()  # sets journal_mode=WAL itself
    conn.execute("PRAGMA synchronous=FULL")
    return conn, saver


def _stream_step_times(graph: Any, config: dict[str, Any]) -> list[int]:
    """Time between consecutive node updates: one node plus its checkpoint each."""
    times = []
    last = time.perf_counter_ns()
    for _ in graph.stream({"data": {}}, config, stream_mode="updates", durability=DURABILITY):
        now = time.perf_counter_ns()
        times.append(now - last)
        last = now
    return times


def _build(job: Job) -> StateGraph[Any]:
    if job.workload.kind == HALT:
        return _halt_graph()
    steps = job.workload.steps
    builder: StateGraph[Any]
    if job.workload.kind == GROWING:
        builder = StateGraph(GrowingState)
        nodes = [_growing_node(i) for i in range(steps)]
    else:
        builder = StateGraph(LinearState)
        nodes = [_linear_node(i) for i in range(steps)]
    for index, node in enumerate(nodes):
        builder.add_node(f"s{index}", node)
    builder.add_edge(START, "s0")
    for index in range(1, steps):
        builder.add_edge(f"s{index - 1}", f"s{index}")
    builder.add_edge(f"s{steps - 1}", END)
    return builder


def _linear_node(index: int) -> Any:
    def node(state: LinearState) -> dict[str, int]:
        return {"x": index}

    return node


def _growing_node(index: int) -> Any:
    value = payload(index)

    def node(state: GrowingState) -> dict[str, dict[str, str]]:
        return {"data": {f"v{index}": value}}

    return node


def _halt_graph() -> StateGraph[Any]:
    def before(state: HaltState) -> dict[str, int]:
        return {"x": 1}

    def ask(state: HaltState) -> dict[str, int]:
        return {"answer": interrupt("need answer")}

    def after(state: HaltState) -> dict[str, int]:
        return {"x": state["x"] + 1}

    builder = StateGraph(HaltState)
    builder.add_node("before", before)
    builder.add_node("ask", ask)
    builder.add_node("after", after)
    builder.add_edge(START, "before")
    builder.add_edge("before", "ask")
    builder.add_edge("ask", "after")
    builder.add_edge("after", END)
    return builder
