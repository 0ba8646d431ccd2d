"""Record, replay and score; the top-level command line."""
