"""Runners: convenient ways to drive the engine.

* :class:`SyncRunner`: run, resume, run until complete with a callback for halts;
* :class:`StreamRunner`: lifecycle events as callbacks and Server-Sent Events;
* :class:`QueueRunner`: enqueue runs and resumes, wait, status and cancel by id, with the
  :class:`InlineAdapter` (this process) or ``dwf.runners.celery_app.CeleryAdapter`` (Celery
  workers: ``pip install "dwf[celery]"``, ``dwf worker``).
"""

from __future__ import annotations

from dwf.runners.inline import InlineAdapter
from dwf.runners.queue import QueueAdapter, QueueRunner
from dwf.runners.stream import StreamRunner, sse_stream
from dwf.runners.sync import HaltAnswer, SyncRunner

__all__ = [
    "HaltAnswer",
    "InlineAdapter",
    "QueueAdapter",
    "QueueRunner",
    "StreamRunner",
    "SyncRunner",
    "sse_stream",
]
