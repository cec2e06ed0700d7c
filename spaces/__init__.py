"""The search space as data: one ``Space`` object gives the grid, random and Optuna forms (``spaces.space``)."""
from spaces.space import Space, log_grid, searcher_seed, spread

__all__ = ["Space", "log_grid", "searcher_seed", "spread"]
