"""Search spaces as data: plain dicts of fixed values and ``tune.*`` distributions, nothing computed."""
from spaces.depth_budget import depth_budget_space

__all__ = ["depth_budget_space"]
