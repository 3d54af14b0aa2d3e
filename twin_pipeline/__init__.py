"""twin-pipeline: privacy-safe synthetic digital twins of credit and loan tables."""
