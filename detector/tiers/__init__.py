"""The alert tiers: absolute budgets and thresholds, rate of change, predictive.

Each module turns tenant state into alert records through the lifecycle. None
of them reads a clock: the evaluation time comes in as an argument.
"""
