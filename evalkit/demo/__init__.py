"""Stand-in models and a synthetic ADE20k tree, so that evalkit runs with nothing downloaded."""
