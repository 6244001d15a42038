"""Studies of many runs: the tutorial's experiment (`reproduce`), `compare_runs`, and next `search`.

A study uses runs only through `mlplab.runs` (plan, start, resume, open, predict); it neither
trains nor scores a model by itself.
"""

from mlplab.studies.compare import PUBLISHED, compare_runs, environment
from mlplab.studies.tutorial import TUTORIAL_MODELS, reproduce

__all__ = ["PUBLISHED", "TUTORIAL_MODELS", "compare_runs", "environment", "reproduce"]
