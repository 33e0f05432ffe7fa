"""Experiments compose fine-tuning runs (benchmark grids, ablations, their reports); they never train themselves."""
