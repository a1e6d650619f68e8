"""Adversarial training on the word embeddings: FGM (one step) and PGD (k steps), for any Task and method.

With a few hundred labelled sentences a model soon fits them by heart. Adversarial training also
trains it on the nearby input that hurts it most (Goodfellow et al. 2015). Text is discrete, so the
perturbation r goes on the word embeddings e = E[x], (B, T, C) (Miyato et al. 2017):

    g      = ∇_e L(e)                          the direction in which the loss rises fastest
    r      = ε · g / ‖g‖₂                       FGM: one step of length ε, ‖·‖ over each sequence's (T, C)
    loss   = ½ · (L(e) + L(e + r))              the clean and the adversarial loss (Goodfellow's α = ½)

PGD (Madry et al. 2018) searches harder: k steps of length α, each projected back into the ball ‖r‖ ≤ ε:

    r_0 = 0,   r_{t+1} = Π_ε(r_t + α · g_t / ‖g_t‖),   g_t = ∇_r L(e + r_t),   loss = ½ · (L(e) + L(e + r_k))

r is held constant for the weights' gradient: the weights learn to get both e and e + r right. The
gradient with respect to e comes from torch.autograd.grad, a backward pass that skips the weights'
gradients, before the Trainer's own backward: a step costs 2 forwards and 3 backwards (measured: ~2.4
plain steps with LoRA), where FGM done inside the Trainer would cost 2 and 2.

How large ε is depends on the table: MiniLM's word embeddings have a norm of about 1.07 per token, so
ε = 0.1 spread over a tweet or review of ~25 tokens moves each by about 0.02, 2%. The default is 0.1
because 0.25 (5% a token) already cost 5.6 points on 500 sentiment labels, where 0.1 cost nothing
(docs/applications.md, "Results"). ε = 1, a usual FGM
setting where the norm is taken over a whole batch, is 4 times that per token here; a 500-sentence LoRA
run with it settled at loss ln 2: the adversary could flip any confident answer, so the uniform one
was the model's best defence (docs/applications.md).

`AdversarialTask` wraps any Task (classify, tag, lm; a distillation task too): the perturbation is
added by a forward hook on the word-embedding module, so it reaches the model through its own forward
and works the same under every method (full, LoRA, adapters, prefix, ...). Evaluation is clean.
"""

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from common.errors import ConfigError

ADVERSARIAL = ("none", "fgm", "pgd")


@dataclass
class AdversarialConfig:
    adversarial: str = field(default="none", metadata={"choices": ADVERSARIAL, "help": "adversarial training "
                             "on the word embeddings: none, fgm (one step) or pgd (--adv_steps steps)"})
    adv_epsilon: float = field(default=0.1, metadata={"help": "ε: the length of the perturbation of each "
                               "sequence's word embeddings (its L2 norm over all positions)"})
    adv_steps: int = field(default=3, metadata={"help": "pgd: steps of the search for the perturbation"})
    adv_alpha: float | None = field(default=None, metadata={"help": "pgd: the length of each step "
                                    "(default 2.5·ε / adv_steps, Madry et al.'s choice)"})

    def __post_init__(self):
        if self.adversarial not in ADVERSARIAL:
            raise ConfigError(f"--adversarial must be one of {', '.join(ADVERSARIAL)}; got {self.adversarial!r}")
        if not self.adv_epsilon >= 0:  # also catches nan
            raise ConfigError(f"--adv_epsilon must be >= 0 (the length of the perturbation), got {self.adv_epsilon}")
        if self.adv_steps < 1:
            raise ConfigError(f"--adv_steps must be at least 1, got {self.adv_steps}")
        if self.adv_alpha is not None and not self.adv_alpha > 0:
            raise ConfigError(f"--adv_alpha must be positive, got {self.adv_alpha}")

    def steps_and_alpha(self) -> tuple[int, float]:
        """FGM is one step of length ε; PGD k steps of length α."""
        if self.adversarial == "fgm":
            return 1, self.adv_epsilon
        return self.adv_steps, self.adv_alpha if self.adv_alpha is not None else 2.5 * self.adv_epsilon / self.adv_steps


def word_embedding(model: nn.Module) -> nn.Embedding:
    """The token-embedding table of a task head's backbone (or of a GPT itself): Bert's embeddings.word, GPT's wte."""
    backbone = getattr(model, "backbone", model)
    return backbone.wte if hasattr(backbone, "wte") else backbone.embeddings.word


def per_sequence_unit(g: torch.Tensor) -> torch.Tensor:
    """g / ‖g‖₂ with the norm over each sequence's (T, C); a zero gradient stays zero. (B, T, C) -> (B, T, C)"""
    norm = g.flatten(1).norm(dim=1).clamp_min(1e-12)  # (B,)
    return g / norm[:, None, None]


def project(r: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Π_ε: each sequence's perturbation shrunk back onto the ball ‖r‖ ≤ ε if it left it."""
    norm = r.flatten(1).norm(dim=1)  # (B,)
    scale = (epsilon / norm.clamp_min(1e-12)).clamp(max=1.0)
    return r * scale[:, None, None]


class AdversarialTask:
    """A Task whose training loss is ½ · (clean + adversarial). Everything but loss is the wrapped
    Task's own (batches, evaluation, AdaLoRA's hooks): __getattr__ hands any other attribute to it."""

    def __init__(self, task, model: nn.Module, cfg: AdversarialConfig):
        self.task, self.cfg = task, cfg
        self.mode, self.embeddings, self.r = "off", None, None
        word_embedding(model).register_forward_hook(self._on_embeddings)

    def __getattr__(self, name):  # only called for names this class does not define
        return getattr(self.task, name)

    def _on_embeddings(self, module, inputs, output):  # output: the word embeddings e, (B, T, C)
        if self.mode == "capture":
            if not output.requires_grad:  # a frozen table (LoRA, adapters, ...): e is still differentiable
                output = output.detach().requires_grad_(True)
            self.embeddings = output
            return output
        if self.mode == "perturb":
            return output + self.r
        return None  # leave the output as it is

    def loss(self, model, batch):
        if not model.training or self.cfg.adversarial == "none":
            return self.task.loss(model, batch)
        steps, alpha = self.cfg.steps_and_alpha()
        try:
            self.mode = "capture"
            clean = self.task.loss(model, batch)
            e = self.embeddings
            (g,) = torch.autograd.grad(clean, e, retain_graph=True)  # retained: the Trainer backpropagates clean
            r = project(alpha * per_sequence_unit(g), self.cfg.adv_epsilon)
            self.mode = "perturb"
            for _ in range(steps - 1):  # PGD's further steps; FGM has none
                self.r = r.requires_grad_(True)
                (g,) = torch.autograd.grad(self.task.loss(model, batch), self.r)
                r = project(r.detach() + alpha * per_sequence_unit(g), self.cfg.adv_epsilon)
            self.r = r.detach()
            adversarial = self.task.loss(model, batch)
        finally:
            self.mode, self.embeddings, self.r = "off", None, None
        return 0.5 * (clean + adversarial)


def adversarial_task(task, model: nn.Module, cfg: AdversarialConfig):
    """The Task itself when adversarial training is off, else wrapped so that its loss is adversarial."""
    return task if cfg.adversarial == "none" else AdversarialTask(task, model, cfg)
