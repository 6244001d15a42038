"""Search: an Optuna study over a search space, validation accuracy against cost, a Pareto front.

    from mlplab.studies.search import SearchPlan, run_search
    outcome = run_search(SearchPlan("tutorial-space", out="searches/tutorial", trials=40))

Optuna is imported only when a search runs (it is the optional `[search]` extra).
"""

from mlplab.studies.search.objectives import COSTS, parse_objectives
from mlplab.studies.search.space import SearchSpace, load_space, shipped_spaces
from mlplab.studies.search.study import SearchOutcome, SearchPlan, run_search, run_worker

__all__ = ["COSTS", "SearchOutcome", "SearchPlan", "SearchSpace", "load_space", "parse_objectives", "run_search",
           "run_worker", "shipped_spaces"]
