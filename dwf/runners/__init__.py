"""Runners: convenient ways to drive the engine (sync, streaming events; the queue runner lives
in :mod:`dwf.runners.queue` when installed)."""

from __future__ import annotations

from dwf.runners.stream import StreamRunner, sse_stream
from dwf.runners.sync import HaltAnswer, SyncRunner

__all__ = ["HaltAnswer", "StreamRunner", "SyncRunner", "sse_stream"]
