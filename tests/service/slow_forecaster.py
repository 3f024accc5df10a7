"""A forecaster that takes longer than the test worker's max poll interval.

``BURNRATE_FORECASTER=tests.service.slow_forecaster:fit`` makes the service fit
with it. It sleeps, then returns the real fit, so everything after the fit runs
as usual.
"""

from __future__ import annotations

import os
import time

from detector.forecast import MonthEndForecast
from detector.tiers.predictive import ForecastJob

FIT_SLEEP_S = float(os.environ.get("SLOW_FORECASTER_SLEEP_S", "25"))


def fit(job: ForecastJob) -> MonthEndForecast:
    """Sleep for FIT_SLEEP_S seconds, then fit the forecast."""
    time.sleep(FIT_SLEEP_S)
    return job.run()
