"""A run's answer from its files (no Ray, no training code): selecting, scoring, verdicts, answers,
guideline, rendering and plots. ``analyse``/``build_report`` are the entry points."""
from tunedepth.analysis.answers import Analysis, BudgetAnswer  # noqa: F401
from tunedepth.analysis.build import analyse, build_report, write_report  # noqa: F401
from tunedepth.analysis.render import format_answer, render_markdown  # noqa: F401
from tunedepth.run_files import resolve_run  # noqa: F401
