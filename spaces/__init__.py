"""Search spaces as data: plain dicts of fixed values and ``tune.*`` distributions, nothing computed."""
from spaces.depth_budget import DEFAULT_BUDGETS, DEFAULT_LR_RANGE, depth_budget_space

__all__ = ["DEFAULT_BUDGETS", "DEFAULT_LR_RANGE", "depth_budget_space"]
