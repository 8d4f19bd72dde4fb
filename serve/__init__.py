"""Ray Serve application: the decision endpoint and the operator API."""
