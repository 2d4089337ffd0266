"""spaCy pipelines: training from a config, a folder, a zip or a spaCy project, and
inference over texts."""
