"""Datasets, fine-tuning, evaluation and export. Behind the `[train]` extra: ultralytics is
imported lazily inside functions, never at module import."""
