"""A run's answer from its files (no Ray, no training code): selecting, scoring, verdicts, answers,
guideline, rendering and plots. ``analyse``/``build_report`` are the entry points."""
from search.analysis.answers import Analysis, BudgetAnswer  # noqa: F401
from search.analysis.build import analyse, build_report, write_report  # noqa: F401
from search.analysis.render import format_answer, render_markdown  # noqa: F401
from search.run_files import resolve_run  # noqa: F401
