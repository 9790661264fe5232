"""Generate: dataset, scorers and run script rendered from specs."""
