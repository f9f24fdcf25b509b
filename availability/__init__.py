"""Available-to-promise: nodes, network totals (channels and rules come later)."""
