"""Background jobs: the model, the store, the runner and the job bodies (backup, rename, restore)."""
