"""``python -m compare_lib`` is what ``bench/compare`` runs."""

from .runner import main

raise SystemExit(main())
