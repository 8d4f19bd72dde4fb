"""Ray actors: thin shells that hold state and call the pure core in ``autoray``."""
