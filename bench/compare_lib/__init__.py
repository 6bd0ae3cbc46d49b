"""The benchmark harness of issue 9: dwf against LangGraph, DBOS and a plain-SQLite floor.

Entry point: ``bench/compare`` (see ``runner.py``). Each system lives in its own module and
exposes ``run(job) -> Measurement``; ``worker.py`` runs one job per process. Nothing here is
imported by dwf itself.
"""
