"""The Dagster layer: six partitioned assets per portfolio, asset checks, a landing sensor, an IO manager."""
