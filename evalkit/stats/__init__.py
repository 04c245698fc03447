"""Statistics over runs: paired comparisons of models with bootstrap intervals and tests."""
