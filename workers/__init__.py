"""Background jobs and the RQ worker that runs them."""
