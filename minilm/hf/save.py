"""Hugging Face folders out (every family load.py reads): config.json and model.safetensors under Hugging Face's names,
through the same NAME_TABLE that loading reads (names.py)."""

import json
from pathlib import Path

from safetensors.torch import save_file

from common.atomic import write_file_atomic, write_text_atomic

from .configs import config_to_hf
from .names import to_hf_state_dict


def save_pretrained(model, path) -> None:
    """Write a folder that transformers' from_pretrained loads; each file is written atomically."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    # safetensors refuses views and shared storage: give each tensor its own contiguous copy.
    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in to_hf_state_dict(model).items()}
    write_file_atomic(folder / "model.safetensors", lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    write_text_atomic(folder / "config.json", json.dumps(config_to_hf(model), indent=2) + "\n")
