"""Run the evaluations: ``python -m detector.evaluation``."""

import sys

from detector.evaluation.cli import main

sys.exit(main())
