"""Chat with the support desk in the terminal.

    python examples/support_agent/run.py --offline        # no API key: the offline model
    python examples/support_agent/run.py                  # OPENAI_API_KEY or ANTHROPIC_API_KEY
    python examples/support_agent/run.py --provider anthropic --email alice@example.com

Each message runs the workflow once. Tool calls and handoffs are printed as they happen; a refund
over 100.00 halts the run and asks you, the supervisor, to approve it. `quit` (or Ctrl-D) ends
the chat. See README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dwf
from dwf_ai import AIExtension
from dwf_ai.models import resolve_model

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # offline.py, beside this file

from offline import offline_model, offline_moderator  # noqa: E402

#: The workflow names OpenAI models; with only an Anthropic key these stand in for them.
ANTHROPIC_MODELS = {"gpt-4o-mini": "claude-haiku-4-5", "gpt-4o": "claude-sonnet-5"}
WORKFLOW_MODELS = tuple(ANTHROPIC_MODELS)


def choose_mode(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> str:
    """``offline``, ``openai`` or ``anthropic``: the flags first, then the keys that are set."""
    if args.offline or environ.get("SUPPORT_AGENT_OFFLINE"):
        return "offline"
    if args.provider:
        return str(args.provider)
    if environ.get("OPENAI_API_KEY"):
        return "openai"
    if environ.get("ANTHROPIC_API_KEY"):
        return "anthropic"
    return "offline"


def models_for(mode: str) -> tuple[dict[str, Any], Any]:
    """The models that replace the workflow's model names, and the moderator (``None``: the
    default, OpenAI's moderation endpoint)."""
    if mode == "offline":
        model = offline_model()
        return dict.fromkeys(WORKFLOW_MODELS, model), offline_moderator()
    if mode == "anthropic":
        return {
            name: resolve_model(f"anthropic:{ANTHROPIC_MODELS[name]}") for name in WORKFLOW_MODELS
        }, None
    return {}, None


def build(
    models: Mapping[str, Any] | None = None,
    moderator: Any = None,
    *,
    store: str = "memory://",
    on_event: Callable[[dwf.Event], Any] | None = None,
) -> tuple[dwf.WorkflowDefinition, dwf.Engine]:
    """The workflow and an engine with the AI extension and the support desk's services."""
    registry = dwf.default_registry()
    registry.install(AIExtension(models=models, moderator=moderator))
    workflow = dwf.load_workflow(HERE / "workflow.yml", registry=registry)
    services = dwf.Services.from_files([HERE / "services.py"])
    engine = dwf.Engine(store, registry=registry, services=services, on_event=on_event)
    return workflow, engine


def show_event(event: dwf.Event) -> None:
    """Print what the agents do while a message is handled."""
    data = event.data
    if event.type == "agent.tool_call":
        arguments = json.dumps(data.get("arguments"), ensure_ascii=False)
        print(f"  [{data.get('agent')}] calls {data.get('tool')} {arguments}", flush=True)
    elif event.type == "agent.handoff":
        print(f"  [{data.get('from_agent')}] hands over to {data.get('to_agent')}", flush=True)
    elif event.type == "step.completed" and event.step_id == "classify":
        triage = (data.get("output") or {}).get("output") or {}
        if isinstance(triage, dict) and triage.get("category"):
            print(f"  [triage] {triage['category']}, urgency {triage.get('urgency')}", flush=True)


async def ask(prompt: str) -> str:
    """One line from stdin (``EOFError`` at the end), without blocking the event loop."""
    return await asyncio.to_thread(input, prompt)


async def decide(halt: Mapping[str, Any]) -> dict[str, Any]:
    """Ask the supervisor about a halted run; the keyword arguments for ``engine.resume``."""
    data = halt.get("data") or {}
    arguments = json.dumps(data.get("arguments"), ensure_ascii=False)
    print(f"  Supervisor approval needed: {data.get('tool')} {arguments}")
    answer = (await ask("  Approve? [y/N] ")).strip().lower()
    if answer in ("y", "yes"):
        return {"approved": True, "by": "supervisor"}
    reason = (await ask("  Reason (optional): ")).strip()
    return {"approved": False, "response": reason or None, "by": "supervisor"}


def show_result(result: dwf.RunResult) -> None:
    if result.status != "completed":
        print(f"Agent: (the run {result.status}: {json.dumps(result.error)})")
        return
    output = result.output
    print(f"Agent: {output['response']}")
    handled = output.get("handled_by") or "guardrail"
    print(f"  (handled by {handled}; execution {result.execution_id})\n", flush=True)


async def chat(engine: dwf.Engine, workflow: dwf.WorkflowDefinition, email: str) -> None:
    """The loop: a message in, the workflow run (and resumed after each approval), an answer out."""
    while True:
        try:
            message = (await ask("You: ")).strip()
        except EOFError:
            print()
            return
        if message.lower() in ("quit", "exit"):
            return
        if not message:
            continue
        result = await engine.run(workflow, {"message": message, "customer_email": email})
        while result.halted:
            try:
                decision = await decide(result.halt or {})
            except EOFError:
                print(f"\n(left halted: execution {result.execution_id})")
                return
            result = await engine.resume(result.execution_id, **decision)
        show_result(result)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chat with the dwf support desk example.")
    parser.add_argument("--offline", action="store_true", help="no API key: the offline model")
    parser.add_argument("--provider", choices=("openai", "anthropic"), help="default: by key")
    parser.add_argument("--email", default="", help="the customer's email (e.g. alice@example.com)")
    parser.add_argument("--store", default="memory://", help="dwf store URL (default: memory)")
    parser.add_argument("--quiet", action="store_true", help="do not print tool calls")
    args = parser.parse_args(argv)

    mode = choose_mode(args)
    models, moderator = models_for(mode)
    on_event = None if args.quiet else show_event
    workflow, engine = build(models, moderator, store=args.store, on_event=on_event)
    names = {
        "offline": "the offline model (no API key)",
        "openai": "OpenAI",
        "anthropic": "Anthropic",
    }
    print(f"Support desk, answering with {names[mode]}. Type 'quit' to leave.")
    print(
        "Try: 'Where is my order ORD-12345?', 'Please refund ORD-67890', 'I forgot my password'.\n"
    )
    try:
        await chat(engine, workflow, args.email)
    finally:
        await engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
