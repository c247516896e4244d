"""MLflow tracking: runs addressed by id, lineage tags, and model registration with the promotion gate."""
