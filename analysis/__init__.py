"""anxiety-outcomes: response, remission and effect sizes from GAD-7 and HAM-A data."""

__version__ = "0.1.0"
