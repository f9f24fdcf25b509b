"""Load generation, benchmark harness and data generators."""
