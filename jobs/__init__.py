"""Background jobs: the model, the store, the runner and the jobs themselves (backup, rename, restore, verify)."""
