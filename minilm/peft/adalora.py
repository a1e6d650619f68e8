"""AdaLoRA (Zhang et al. 2023): LoRA whose rank moves to where it matters.

Each adapted weight gets an update shaped like a singular value decomposition,

    y = x Wᵀ + b + dropout(x) Qᵀ diag(λ ⊙ m) Pᵀ        P: (d_out, r), λ: (r,), Q: (r, d_in)

where m (rank_mask, 0 or 1) says which singular values are kept. The total number kept (the
budget) falls during training, and the triplets (P[:, i], λ_i, Q[i, :]) that matter least are
masked. Three pieces:

  - orthogonality penalty, added to the loss: γ · mean_layers ||PᵀP − I||²_F + ||QQᵀ − I||²_F,
    which keeps P and Q near orthonormal so that λ_i measures the size of direction i;
  - importance of each entry θ: the sensitivity I = |θ · ∂L/∂θ|, smoothed Ī ← β1 Ī + (1 − β1) I,
    its uncertainty Ū ← β2 Ū + (1 − β2) |I − Ī|, and the score s = Ī · Ū; a triplet's score is
    S_i = s(λ_i) + mean_j s(P_ji) + mean_j s(Q_ij);
  - the budget b(t) = init_r · n for t < t_init, then a cubic fall to target_r · n at t_final
    (n = the number of adapted matrices), b(t) = b_T + (b_0 − b_T)(1 − (t − t_init)/(t_final − t_init))³.
    Each step up to t_final keeps the b(t) best-scoring triplets over all layers; after t_final
    the masks stay fixed.

λ starts at zero, so the model starts exactly as the base model. A masked triplet gets no gradient
(its λ_i is multiplied by 0), so its score decays and it stays out unless others fall below it.
"""

import torch
import torch.nn as nn

from .wrapped import WrappedLinear, replace_linears

TRIPLET_PARTS = ("P", "E", "Q")  # E holds the singular values λ (the paper's Λ)


class SVDLinear(WrappedLinear):
    mergeable = True

    def __init__(self, base: nn.Linear, r: int, dropout: float):
        super().__init__(base)
        self.r = r
        like = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_P = nn.Parameter(torch.randn(self.out_features, r, **like) * 0.02)  # (d_out, r)
        self.lora_E = nn.Parameter(torch.zeros(r, **like))  # (r,) singular values, 0: the update starts at 0
        self.lora_Q = nn.Parameter(torch.randn(r, self.in_features, **like) * 0.02)  # (r, d_in)
        self.lora_dropout = nn.Dropout(dropout)
        self.register_buffer("rank_mask", torch.ones(r, **like))  # 1: triplet kept, 0: pruned
        # Importance statistics (buffers, so a checkpoint resumes them): EMA of the sensitivity and
        # of its uncertainty, one per entry of P, E and Q.
        for part in TRIPLET_PARTS:
            param = getattr(self, f"lora_{part}")
            self.register_buffer(f"sens_ema_{part}", torch.zeros_like(param))
            self.register_buffer(f"sens_unc_{part}", torch.zeros_like(param))

    def singular_values(self) -> torch.Tensor:  # (r,), zero where pruned
        return self.lora_E * self.rank_mask

    def forward(self, x):  # (..., d_in) -> (..., d_out)
        update = (self.lora_dropout(x) @ self.lora_Q.T) * self.singular_values()  # (..., r)
        return self.base_forward(x) + update @ self.lora_P.T

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_P * self.singular_values()) @ self.lora_Q  # P diag(λ⊙m) Q: (d_out, d_in)

    def orthogonality_penalty(self) -> torch.Tensor:
        eye = torch.eye(self.r, device=self.lora_P.device, dtype=self.lora_P.dtype)
        p_gram = self.lora_P.T @ self.lora_P  # (r, r)
        q_gram = self.lora_Q @ self.lora_Q.T  # (r, r)
        return ((p_gram - eye) ** 2).sum() + ((q_gram - eye) ** 2).sum()

    @torch.no_grad()
    def update_importance(self, beta1: float, beta2: float) -> None:
        """Fold this step's sensitivities |θ · grad| into the moving averages (needs .grad)."""
        for part in TRIPLET_PARTS:
            param = getattr(self, f"lora_{part}")
            if param.grad is None:
                continue
            sensitivity = (param * param.grad).abs()
            ema, unc = getattr(self, f"sens_ema_{part}"), getattr(self, f"sens_unc_{part}")
            ema.mul_(beta1).add_((1 - beta1) * sensitivity)
            unc.mul_(beta2).add_((1 - beta2) * (sensitivity - ema).abs())

    def triplet_scores(self) -> torch.Tensor:  # (r,)
        score = {part: getattr(self, f"sens_ema_{part}") * getattr(self, f"sens_unc_{part}")
                 for part in TRIPLET_PARTS}
        return score["E"] + score["P"].mean(dim=0) + score["Q"].mean(dim=1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, r={self.r}"


def add_adalora(model: nn.Module, targets: list[str], r: int, dropout: float) -> dict[str, SVDLinear]:
    return replace_linears(model, targets, lambda linear: SVDLinear(linear, r, dropout))


class AdaLoRAController:
    """The per-step work of AdaLoRA, called by the fine-tuning Task:

        loss = task_loss + controller.penalty(model)        in Task.loss
        controller.update(model, step)                      in Task.on_gradients (true gradients)
        controller.ranks()                                  {layer name: kept rank}, e.g. to log at the end

    It holds the SVDLinear modules it was built for; `model` is taken so the calls read like the
    Task hooks they sit in, and is not used.
    """

    def __init__(self, layers: dict[str, SVDLinear], init_r: int, target_r: int, t_init: int, t_final: int,
                 beta1: float, beta2: float, orth_reg: float):
        self.layers = layers
        self.initial_budget, self.target_budget = init_r * len(layers), target_r * len(layers)
        self.t_init, self.t_final = t_init, t_final
        self.beta1, self.beta2, self.orth_reg = beta1, beta2, orth_reg

    def budget(self, step: int) -> int:
        """How many triplets (singular values) stay, summed over all layers, at this step."""
        if step < self.t_init:
            return self.initial_budget
        if step >= self.t_final:
            return self.target_budget
        remaining = 1 - (step - self.t_init) / (self.t_final - self.t_init)  # 1 -> 0
        return self.target_budget + int((self.initial_budget - self.target_budget) * remaining ** 3)

    def penalty(self, model=None) -> torch.Tensor:
        """orth_reg · mean over layers of ||PᵀP − I||²_F + ||QQᵀ − I||²_F, to add to the loss.
        (The mean, not the paper's sum, so that orth_reg means the same at any depth.)"""
        penalties = [layer.orthogonality_penalty() for layer in self.layers.values()]
        return self.orth_reg * sum(penalties) / len(penalties)

    @torch.no_grad()
    def update(self, model, step: int) -> None:
        """After backward, before the optimizer step: score the triplets and mask to the budget."""
        if step >= self.t_final:
            if self.total_rank() > self.target_budget:  # the first call at or past t_final
                self._keep_best(self.target_budget)
            return  # from here on the masks stay as they are
        for layer in self.layers.values():
            layer.update_importance(self.beta1, self.beta2)
        if step >= self.t_init:
            self._keep_best(self.budget(step))

    def _keep_best(self, budget: int) -> None:
        scores = torch.cat([layer.triplet_scores() for layer in self.layers.values()])  # (Σ r,)
        keep = torch.zeros_like(scores)
        keep[scores.topk(budget).indices] = 1.0  # the budget best over all layers, wherever they are
        for layer, layer_keep in zip(self.layers.values(), keep.split([l.r for l in self.layers.values()])):
            layer.rank_mask.copy_(layer_keep)

    def total_rank(self) -> int:
        return sum(self.ranks().values())

    def ranks(self) -> dict[str, int]:
        return {name: int(layer.rank_mask.sum().item()) for name, layer in self.layers.items()}

    def rank_report(self) -> str:
        """One line per adapted matrix, e.g. "blocks.0.attn.q_proj  rank 5 / 12"."""
        width = max(len(name) for name in self.layers)
        return "\n".join(f"{name:<{width}}  rank {rank} / {self.layers[name].r}" for name, rank in self.ranks().items())
