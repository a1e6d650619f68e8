"""The project's own error types: raised where a user's input enters, caught by the entry points."""


class CheckpointError(ValueError):
    """A checkpoint folder (minilm's or Hugging Face's) is missing, incomplete, corrupt or does not fit."""
