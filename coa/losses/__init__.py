"""Training objectives as pure functions of log-probabilities."""
