"""The embedded default: a sample agent and a local store to run trace2eval on, offline."""
