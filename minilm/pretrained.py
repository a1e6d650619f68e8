"""What GPT, Bert and BertForPreTraining share beyond their layers: Hugging Face import/export and a
parameter count. The loading itself lives in hf.py (imported here lazily: hf.py imports the models)."""

import torch.nn as nn


class PretrainedModel(nn.Module):
    @classmethod
    def from_pretrained(cls, path):
        """Load a Hugging Face folder (config.json + model.safetensors or pytorch_model.bin)."""
        from .hf import load_pretrained
        return load_pretrained(cls, path)

    def save_pretrained(self, path):
        """Write a folder that Hugging Face transformers loads."""
        from .hf import save_pretrained
        save_pretrained(self, path)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # a tied matrix is counted once
