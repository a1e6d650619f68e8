"""Tiny GPT / Bert classifiers for the PEFT tests (tests/test_peft_*.py)."""

import torch
import torch.nn as nn

from minilm import GPT, Bert, BertConfig, GPTConfig
from minilm.training.trainer import TrainConfig, make_optimizer

VOCAB = 37
KINDS = ["gpt", "bert"]
HEAD = ["classifier"]


class TinyClassifier(nn.Module):
    """A backbone and a linear head, named the way a fine-tuning script names them."""

    def __init__(self, kind: str):
        super().__init__()
        fields = dict(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=16, init_std=0.1,
                      dropout=0.0, attn_dropout=0.0)
        self.kind = kind
        self.backbone = GPT(GPTConfig(**fields)) if kind == "gpt" else Bert(BertConfig(**fields))
        self.classifier = nn.Linear(VOCAB if kind == "gpt" else 16, 3)

    def forward(self, ids, attention_mask=None):  # (B, T) -> (B, T, 3)
        features, _ = self.backbone(ids, attention_mask=attention_mask)  # GPT: logits (B, T, V); Bert: (B, T, C)
        return self.classifier(features)


def tiny_model(kind: str, seed: int = 0) -> TinyClassifier:
    torch.manual_seed(seed)
    return TinyClassifier(kind).eval()


def random_ids(B: int = 2, T: int = 7, seed: int = 1) -> torch.Tensor:
    return torch.randint(1, VOCAB, (B, T), generator=torch.Generator().manual_seed(seed))


def randomize_(params, seed: int = 3, std: float = 0.1) -> None:
    """Give parameters nonzero values (e.g. LoRA's B, which starts at zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in params:
            param.copy_(torch.randn(param.shape, generator=generator) * std)


def one_training_step(model, controller=None, step: int = 0) -> None:
    """Forward, backward and an AdamW step with the project's optimizer (weight decay on)."""
    model.train()
    optimizer = make_optimizer(model, TrainConfig(lr=1e-2, weight_decay=0.1), "cpu")
    loss = model(random_ids()).pow(2).mean()
    if controller is not None:
        loss = loss + controller.penalty(model)
    loss.backward()
    if controller is not None:
        controller.update(model, step)
    optimizer.step()
    model.eval()
