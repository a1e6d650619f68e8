"""Pictures of Llama's four parts (docs/llama.md), each computed by minilm/model's own modules: RoPE turning
a pair of dimensions by position, grouped-query attention's head sharing, SwiGLU's gate, RMSNorm beside
LayerNorm. Each function writes one PNG; `python -m minilm.viz figures` draws them into docs/img.

Colours: the Okabe-Ito palette (told apart without colour vision); sequential maps are viridis / cividis.
"""

import matplotlib.pyplot as plt  # with no display, matplotlib draws to files (its Agg backend)
import torch
import torch.nn as nn

from common.atomic import write_file_atomic

from ..model import LlamaConfig, TransformerConfig
from ..model.blocks import MLP
from ..model.llama import GroupedQueryAttention, RMSNorm, SwiGLU
from ..model.rope import RotaryEmbedding, apply_rotary

BLUE, ORANGE, GREEN, VERMILION, GREY = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#999999"


def _save(fig, path) -> None:
    """The PNG written whole or not at all (common/atomic.py): a reader never finds half a picture."""
    write_file_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ RoPE

def rotated_pair(vector: torch.Tensor, positions: torch.Tensor, pair: int, theta: float) -> torch.Tensor:
    """The pair `pair` (dimensions pair and pair + d/2) of `vector` (d,) after apply_rotary at each position:
    (P, 2), the point the pair is at each position."""
    d = vector.numel()
    cos, sin = RotaryEmbedding(d, theta)(positions[None], torch.float32)  # (1, P, d)
    x = vector.expand(1, 1, len(positions), d)  # (B=1, heads=1, P, d): the same vector at every position
    turned = apply_rotary(x, cos, sin)[0, 0]  # (P, d)
    return torch.stack([turned[:, pair], turned[:, pair + d // 2]], dim=-1)


def rotated_scores(q: torch.Tensor, k: torch.Tensor, n_positions: int, theta: float) -> torch.Tensor:
    """(n_positions, n_positions): q turned at position m against k turned at position n, q·k."""
    positions = torch.arange(n_positions)
    cos, sin = RotaryEmbedding(q.numel(), theta)(positions[None], torch.float32)
    turned_q = apply_rotary(q.expand(1, 1, n_positions, -1), cos, sin)[0, 0]  # (P, d)
    turned_k = apply_rotary(k.expand(1, 1, n_positions, -1), cos, sin)[0, 0]
    return turned_q @ turned_k.T  # (P query positions, P key positions)


def plot_rope(path, head_dim: int = 16, theta: float = 10000.0, n_positions: int = 24) -> None:
    """Left, middle: one query's pair of dimensions at positions 0 ... 7, a fast pair and a slower one.
    Right: q·k with q at position m and k at n: constant along each diagonal, so it depends on m - n only."""
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(head_dim, generator=g), torch.randn(head_dim, generator=g)
    positions = torch.arange(8)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.9), gridspec_kw={"width_ratios": [1, 1, 1.25]}, layout="constrained")
    for ax, pair in zip(axes[:2], (0, 2)):
        points = rotated_pair(q, positions, pair, theta)  # (8, 2)
        step = theta ** (-2 * pair / head_dim)  # θ_i: the angle per position
        radius = points[0].norm().item()
        circle = torch.linspace(0, 2 * torch.pi, 200)
        ax.plot((radius * circle.cos()).numpy(), (radius * circle.sin()).numpy(), color=GREY, linewidth=0.8)
        colours = plt.cm.viridis(torch.linspace(0, 0.9, len(positions)).numpy())
        for p, (point, colour) in enumerate(zip(points, colours)):
            ax.annotate("", xy=point.tolist(), xytext=(0, 0),
                        arrowprops=dict(arrowstyle="-|>", color=colour, linewidth=1.6))
            ax.text(*(point * 1.13).tolist(), str(p), color=colour, fontsize=9, ha="center", va="center")
        ax.set_aspect("equal")
        limit = radius * 1.3
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.axhline(0, color=GREY, linewidth=0.5)
        ax.axvline(0, color=GREY, linewidth=0.5)
        ax.set_xlabel(f"dimension {pair}")
        ax.set_ylabel(f"dimension {pair + head_dim // 2}")
        ax.set_title(f"pair {pair}: θ_{pair} = {step:.3g} rad per position\n"
                     "the same query at positions 0-7 (arrow labels)", fontsize=10)
    scores = rotated_scores(q, k, n_positions, theta)
    limit = scores.abs().max().item()
    image = axes[2].imshow(scores.numpy(), cmap="PuOr", vmin=-limit, vmax=limit)
    axes[2].set_xlabel("key position n")
    axes[2].set_ylabel("query position m")
    axes[2].set_title("q·k after both are turned: the same along\neach diagonal, a function of m − n alone",
                      fontsize=10)
    fig.colorbar(image, ax=axes[2], shrink=0.8, label="q·k")
    fig.suptitle(f"RoPE (head_dim {head_dim}, rope_theta {theta:g}): pair i of q and k turns by position · θ_i, "
                 "θ_i = theta^(−2i/head_dim)", fontsize=12)
    _save(fig, path)


# ------------------------------------------------------------------------------------------------ GQA

def query_to_kv_head(n_head: int, n_kv_head: int) -> list[int]:
    """Which key/value head each query head reads, as GroupedQueryAttention._share arranges them."""
    attention = GroupedQueryAttention(LlamaConfig(n_embd=2 * n_head, n_head=n_head, n_kv_head=n_kv_head))
    kv_index = torch.arange(n_kv_head, dtype=torch.float32)[None, :, None, None]  # (1, n_kv_head, 1, 1)
    return [int(i) for i in attention._share(kv_index)[0, :, 0, 0]]


def plot_gqa(path, n_head: int = 9) -> None:
    """Query heads (top) and the key/value heads they read (bottom), for 9 query heads (SmolLM2's): multi-head
    (9 key/value heads), grouped-query (3, SmolLM2's) and multi-query attention (1)."""
    kinds = [("multi-head (GPT-2)", n_head), ("grouped-query (SmolLM2: n_kv_head 3)", 3), ("multi-query", 1)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.9), layout="constrained")
    for ax, (name, n_kv_head) in zip(axes, kinds):
        reads = query_to_kv_head(n_head, n_kv_head)
        group_colours = [plt.cm.tab10(j % 10) for j in range(n_kv_head)]
        kv_x = [(j + 0.5) * n_head / n_kv_head - 0.5 for j in range(n_kv_head)]  # each under its group
        for h, j in enumerate(reads):
            ax.plot([h, kv_x[j]], [1, 0], color=group_colours[j], linewidth=1.4, zorder=1)
            ax.scatter([h], [1], s=260, marker="s", color=group_colours[j], edgecolor="black", zorder=2)
            ax.text(h, 1.17, f"q{h}", ha="center", fontsize=8)
        for j in range(n_kv_head):
            ax.scatter([kv_x[j]], [0], s=420, marker="o", color=group_colours[j], edgecolor="black", zorder=2)
            ax.text(kv_x[j], -0.3, f"k{j}, v{j}", ha="center", fontsize=8)
        ax.text(-1.0, 1, "query\nheads", ha="right", va="center", fontsize=9)
        ax.text(-1.0, 0, "key/value\nheads", ha="right", va="center", fontsize=9)
        ax.set_xlim(-2.6, n_head - 0.2)
        ax.set_ylim(-0.5, 1.4)
        ax.axis("off")
        share = "" if n_kv_head == n_head else f", {n_head // n_kv_head}× smaller"
        ax.set_title(f"{name}\nthe KV cache keeps {n_kv_head} head{'s' * (n_kv_head > 1)} per layer{share}",
                     fontsize=10)
    fig.suptitle("Grouped-query attention: query head h reads key/value head h // (n_head / n_kv_head) "
                 "(repeat_interleave)", fontsize=12)
    _save(fig, path)


# --------------------------------------------------------------------------------------------- SwiGLU

def swiglu_of_two_inputs(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """SwiGLU with one hidden unit whose gate_proj reads input 0 and up_proj input 1: silu(gate) · up,
    computed by the SwiGLU module itself."""
    mlp = SwiGLU(LlamaConfig(n_embd=2, n_head=1, n_inner=1)).eval()
    with torch.no_grad():
        mlp.gate_proj.weight.copy_(torch.tensor([[1.0, 0.0]]))
        mlp.up_proj.weight.copy_(torch.tensor([[0.0, 1.0]]))
        mlp.down_proj.weight.copy_(torch.tensor([[1.0], [0.0]]))
        return mlp(torch.stack([gate, up], dim=-1))[..., 0]


def gelu_mlp_of_two_inputs(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """GPT-2's MLP with one hidden unit whose fc_in reads input 0: gelu(first), by blocks.MLP itself; the
    second input changes nothing, since one projection feeds the unit."""
    mlp = MLP(TransformerConfig(n_embd=2, n_head=1, n_inner=1, bias=False)).eval()
    with torch.no_grad():
        mlp.fc_in.weight.copy_(torch.tensor([[1.0, 0.0]]))
        mlp.fc_out.weight.copy_(torch.tensor([[1.0], [0.0]]))
        return mlp(torch.stack([first, second], dim=-1))[..., 0]


def plot_swiglu(path) -> None:
    """Left: silu (Swish) beside GPT-2's GELU. Middle and right: one hidden unit over the plane of two inputs.
    GPT-2's unit reads one projection, gelu(fc_in(x)); SwiGLU's multiplies two, silu(gate) · up: the gate
    decides how much of up passes, and its sign."""
    x = torch.linspace(-5, 5, 501)
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.9), layout="constrained")
    ax = axes[0]
    ax.plot(x.numpy(), nn.functional.silu(x).numpy(), color=BLUE, linewidth=2,
            label="silu(x) = x·σ(x) (Llama's gate)")
    ax.plot(x.numpy(), nn.GELU(approximate="tanh")(x).numpy(), color=ORANGE, linestyle="--",
            label="GELU (GPT-2's MLP)")
    ax.plot(x.numpy(), torch.relu(x).numpy(), color=GREY, linewidth=1, label="ReLU")
    ax.set_xlabel("x")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper left")
    ax.set_title("silu and GELU: nearly the same curve;\nwhat changes is the gate, not the function", fontsize=10)
    first, second = torch.meshgrid(torch.linspace(-4, 4, 161), torch.linspace(-4, 4, 161), indexing="xy")
    panels = [(axes[1], gelu_mlp_of_two_inputs(first, second), "fc_in(x)", "another direction of x",
               "one hidden unit of GPT-2's MLP: gelu(fc_in(x))\nit changes along one direction only"),
              (axes[2], swiglu_of_two_inputs(first, second), "gate_proj(x): how far the gate opens",
               "up_proj(x): what passes",
               "one hidden unit of SwiGLU: silu(gate) · up\n(gate < 0: almost shut; gate > 0: up passes, scaled)")]
    limit = max(hidden.abs().max().item() for _, hidden, *_ in panels)
    for ax, hidden, xlabel, ylabel, title in panels:
        image = ax.imshow(hidden.numpy(), cmap="PuOr", vmin=-limit, vmax=limit, origin="lower", extent=(-4, 4, -4, 4))
        ax.contour(first.numpy(), second.numpy(), hidden.numpy(), levels=[-2, -1, 1, 2], colors="black",
                   linewidths=0.6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=list(axes[1:]), shrink=0.85, label="the hidden unit's value (contours at ±1, ±2)")
    fig.suptitle("SwiGLU: down(silu(gate_proj(x)) · up_proj(x)) in place of fc_out(gelu(fc_in(x)))", fontsize=12)
    _save(fig, path)


# -------------------------------------------------------------------------------------------- RMSNorm

def plot_rmsnorm(path, seed: int = 2) -> None:
    """Left: one token's 12 features, with a mean, through LayerNorm and RMSNorm. Right: 2-feature vectors:
    RMSNorm puts every vector on the circle of radius √2 in its own direction; LayerNorm, which also removes
    the mean, leaves only the two points ±(1, −1)."""
    g = torch.Generator().manual_seed(seed)
    C = 12
    x = torch.randn(C, generator=g) + 1.5  # a token whose features share an offset
    layer_norm = nn.LayerNorm(C, elementwise_affine=False)
    rms_norm = RMSNorm(C, 1e-5)
    with torch.no_grad():
        by_layer_norm, by_rms_norm = layer_norm(x), rms_norm(x[None])[0]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [1.5, 1]}, layout="constrained")
    ax = axes[0]
    features = torch.arange(C).numpy()
    width = 0.27
    ax.bar(features - width, x.numpy(), width, color=GREY,
           label=f"x (mean {x.mean():.2f}, rms {x.pow(2).mean().sqrt():.2f})")
    ax.bar(features, by_layer_norm.numpy(), width, color=ORANGE, label="LayerNorm: (x − mean) / std")
    ax.bar(features + width, by_rms_norm.numpy(), width, color=BLUE, label="RMSNorm: x / rms(x)")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(features)
    ax.set_xlabel("feature")
    ax.legend(fontsize=9)
    ax.set_title("one token: RMSNorm keeps the offset and every sign, LayerNorm centres", fontsize=10)
    ax = axes[1]
    points = torch.randn(90, 2, generator=g) * 1.2 + torch.tensor([0.8, 0.3])
    points = points[(points[:, 0] - points[:, 1]).abs() > 0.3][:60]  # x0 ≈ x1 has no spread for LayerNorm to scale
    two_layer_norm = nn.LayerNorm(2, elementwise_affine=False)
    two_rms_norm = RMSNorm(2, 1e-5)
    with torch.no_grad():
        after_rms, after_layer = two_rms_norm(points), two_layer_norm(points)
    circle = torch.linspace(0, 2 * torch.pi, 200)
    ax.plot((2 ** 0.5 * circle.cos()).numpy(), (2 ** 0.5 * circle.sin()).numpy(), color=BLUE, linewidth=0.6)
    points, after_rms, after_layer = points.numpy(), after_rms.numpy(), after_layer.numpy()
    ax.scatter(points[:, 0], points[:, 1], s=14, color=GREY, label="x")
    ax.scatter(after_rms[:, 0], after_rms[:, 1], s=18, color=BLUE, label="RMSNorm(x): on the circle of radius √2")
    ax.scatter(after_layer[:, 0], after_layer[:, 1], s=90, marker="x", color=ORANGE,
               label="LayerNorm(x): only ±(1, −1) are left")
    ax.set_aspect("equal")
    ax.axhline(0, color=GREY, linewidth=0.5)
    ax.axvline(0, color=GREY, linewidth=0.5)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=1)
    ax.set_title("two features: RMSNorm keeps each direction", fontsize=10)
    fig.suptitle("RMSNorm: x / sqrt(mean(x²) + eps) · weight, LayerNorm without the mean and the bias",
                 fontsize=12)
    _save(fig, path)


# The pictures of docs/llama.md: file name -> the function that draws it.
FIGURES = {"llama_rope.png": plot_rope, "llama_gqa.png": plot_gqa, "llama_swiglu.png": plot_swiglu,
           "llama_rmsnorm.png": plot_rmsnorm}
