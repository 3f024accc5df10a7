"""Detection-quality evaluations: NAB, planted spend spikes, month-end forecasts.

Each evaluation runs the real core (rule models, engine, tiers, forecaster) on
public or generated data and returns a dict of figures. ``burnrate evaluate``
runs them all, prints a report and writes ``results.json`` and ``QUALITY.md``
beside this file, so a change in detection quality shows up in review.
"""
