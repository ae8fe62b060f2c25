"""The annotation mode: label frames with joints, undoably, autosaved, with a model's help."""
