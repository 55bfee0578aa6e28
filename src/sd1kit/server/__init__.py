"""`sd1kit serve`: an A1111-compatible HTTP API and a web page over one job queue."""
