"""Running depth x budget searches with Ray Tune, and turning their results into answers."""
