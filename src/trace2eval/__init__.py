"""trace2eval: production traces in, a validated MLflow 3 evaluation suite out."""

__version__ = "0.1.0"
