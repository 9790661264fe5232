"""Traces in: MLflow search (paged), normalization into small digests, redaction."""
