"""Analysis: findings over trace digests, each with the trace ids that evidence it."""
