"""The report layer: plain in-memory results in, comparison artefacts (figures, tables, HTML) out.

It knows nothing about training or the CLI. `write_report(results, out_dir, ...)` is the entry.
"""

from __future__ import annotations

from mlplab.report.build import write_report
from mlplab.report.results import DataFacts, RunResult

__all__ = ["DataFacts", "RunResult", "write_report"]
