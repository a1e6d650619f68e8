"""The training loop with nothing but training in it: read this before minilm/training/trainer.py.

It trains a GPT on a token stream with AdamW and the warm-up + cosine schedule, and that is all: no Task,
no accumulation, no mixed precision, no DDP, no checkpoints, no resume. On the same model, data, seed and
settings it gives the same losses as the full Trainer, bit for bit on a CPU in float32
(tests/test_minimal_loop.py checks 20 steps), so the big loop is this one plus engineering.

    import torch
    from data.prepare import prepare_lm_data
    from minilm import GPT, GPTConfig
    from minilm.training.minimal_loop import train
    from minilm.training.trainer import TrainConfig

    tokenizer, tokens = prepare_lm_data(path=None, tokenizer_kind="char", vocab_size=0, val_fraction=0.1,
                                        block_size=128)   # path None: Shakespeare's plays; "char": one id a character
    torch.manual_seed(1337)
    model = GPT(GPTConfig.preset("small", vocab_size=tokenizer.vocab_size))
    losses = train(model, tokens["train"], TrainConfig(max_iters=200, batch_size=16, lr=2e-3))
"""

import numpy as np
import torch

from .lm_task import get_batch
from .trainer import TrainConfig, learning_rate


def train(model, tokens: np.ndarray, cfg: TrainConfig) -> list[float]:
    """Train model on random windows of tokens for cfg.max_iters steps; returns each step's loss."""
    # AdamW; weight decay on the matrices (linear weights, embeddings) only, not on biases and LayerNorms.
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": matrices, "weight_decay": cfg.weight_decay},
                                   {"params": vectors, "weight_decay": 0.0}],
                                  lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    # The batches come from their own generator, seeded once: the same seed draws the same batches.
    batches = torch.Generator().manual_seed(cfg.seed)
    block_size = model.config.block_size
    model.train()  # dropout on
    losses = []
    for step in range(cfg.max_iters):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg)  # warm-up, then cosine (docs/training.md)
        input_ids, targets = get_batch(tokens, cfg.batch_size, block_size, batches)  # (B, T) each
        _, loss = model(input_ids, targets=targets)  # mean cross-entropy of every next token
        loss.backward()  # gradients of the loss with respect to every parameter
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)  # ‖g‖ <= grad_clip
        optimizer.step()  # θ <- θ - lr · (AdamW's update)
        optimizer.zero_grad(set_to_none=True)  # backward adds to .grad: start the next step from zero
        losses.append(loss.item())
    return losses
