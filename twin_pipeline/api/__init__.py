"""The seed's REST API (`twin serve`): the same uploads, clones, runs and audit trail as the landing folder and the
Dagster UI, over HTTP. Thin on purpose: it validates as the landing sensor does, launches the same
`clone_portfolio` job on the same Dagster instance, and serves the files the pipeline published."""
