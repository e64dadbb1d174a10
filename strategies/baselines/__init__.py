"""Baseline strategies: the yardsticks every model-backed strategy is compared with."""
