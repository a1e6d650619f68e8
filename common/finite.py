"""Weights that hold nan or inf are refused when they are loaded, not when they are used.

Such a checkpoint loads without complaint, and then every output is nan: sampling fails on the first token,
a classifier answers its first label with probability nan. Every loader (minilm/training/checkpoint.py,
minilm/hf/load.py) calls refuse_non_finite on the tensors it read, so the error names the file.

Stdlib only, like all of common/: the tensors' own methods do the work (torch is the caller's import).
"""

from .errors import CheckpointError


def refuse_non_finite(tensors: dict, source) -> None:
    """Raise CheckpointError if a floating-point tensor of tensors (name -> tensor) holds nan or inf."""
    broken = [name for name, tensor in tensors.items()
              if tensor.is_floating_point() and not bool(tensor.isfinite().all())]
    if broken:
        raise CheckpointError(f"{source}: {len(broken)} tensor(s) hold nan or inf, e.g. {broken[:3]}; the weights "
                              "are broken (a diverged run, or a damaged file): load an earlier checkpoint")
