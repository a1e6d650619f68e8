"""Pictures of the model, drawn from its own code: the attention masks, attention heads, the learned
position embeddings, and LoRA's low-rank update. Each function writes one PNG; `python -m minilm.viz
figures` calls them with real models (docs/img).

Colours: sequential maps are viridis / cividis (ordered in lightness, readable without colour vision);
two-valued pictures are dark blue for yes and light grey for no.
"""

import matplotlib.pyplot as plt  # with no display, matplotlib draws to files (its Agg backend)
import torch
from matplotlib.colors import ListedColormap, PowerNorm

from ..model.attention import build_allowed_mask

YES_NO = ListedColormap(["#e8e8e8", "#08306b"])  # not allowed, allowed


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _allowed_panel(ax, allowed: torch.Tensor, title: str, query_labels, key_labels) -> None:
    """One boolean (n_query, n_key) mask: rows are queries, columns keys, dark = may attend."""
    ax.imshow(allowed.int().numpy(), cmap=YES_NO, vmin=0, vmax=1)
    ax.set_xticks(range(len(key_labels)), key_labels, fontsize=8)
    ax.set_yticks(range(len(query_labels)), query_labels, fontsize=8)
    ax.set_xlabel("key (what is looked at)")
    ax.set_ylabel("query (who looks)")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([x - 0.5 for x in range(1, len(key_labels))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(query_labels))], minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)


def plot_masks(path) -> None:
    """The three masks of docs/attention.md, each built by build_allowed_mask itself."""
    T = 6
    causal = build_allowed_mask(T, T, causal=True, attention_mask=None, device="cpu")[0, 0]  # (T, T)
    padding = torch.tensor([[1, 1, 1, 1, 0, 0]])  # the last two positions are padding
    padded = build_allowed_mask(T, T, causal=False, attention_mask=padding, device="cpu")[0, 0].expand(T, T)
    # Left padding (2 pads) and a KV cache: 6 keys stored, 2 new queries at positions 6 and 7.
    left = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1]])
    cached = build_allowed_mask(2, 8, causal=True, attention_mask=left, device="cpu")[0, 0]  # (2, 8)
    positions = [str(i) for i in range(T)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    _allowed_panel(axes[0], causal, "causal (GPT): key j ≤ query i", positions, positions)
    _allowed_panel(axes[1], padded, "padding (BERT): keys 4, 5 are [PAD]\n(their own rows are computed, never read)",
                   positions[:4] + ["4 pad", "5 pad"], positions[:4] + ["4 pad", "5 pad"])
    _allowed_panel(axes[2], cached, "causal + left padding + KV cache:\n2 new queries, 6 cached keys",
                   ["6 new", "7 new"], ["0 pad", "1 pad"] + [f"{i} cached" for i in range(2, 6)] + ["6 new", "7 new"])
    axes[2].tick_params(axis="x", labelrotation=45)
    fig.suptitle("Which key each query may attend to (dark: allowed) — build_allowed_mask", fontsize=12)
    _save(fig, path)


def _heatmap(ax, weights: torch.Tensor, tokens: list[str], title: str) -> None:
    """weights (T, T): row i is what query i attends to; the tokens label both axes. A square-root colour
    scale, so that the many small weights are told apart and not all drawn black."""
    ax.imshow(weights.numpy(), cmap="viridis", norm=PowerNorm(gamma=0.5, vmin=0, vmax=1))
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=7)


def plot_heads_of_layer(path, maps: list[torch.Tensor], tokens: list[str], layer: int, title: str) -> None:
    """Every head of one layer: maps as attention_maps returns them, n_layer x (1, n_head, T, T)."""
    heads = maps[layer][0]  # (n_head, T, T)
    panels = [(heads[h], f"layer {layer}, head {h}") for h in range(len(heads))]
    _heatmap_grid(path, panels, tokens, 4, f"{title}: rows attend to columns (each row sums to 1)")


def plot_head_through_layers(path, maps: list[torch.Tensor], tokens: list[str], head: int, title: str) -> None:
    """One head, followed through every layer."""
    panels = [(maps[layer][0, head], f"layer {layer}, head {head}") for layer in range(len(maps))]
    _heatmap_grid(path, panels, tokens, 3, f"{title}: head {head} through the layers")


def _heatmap_grid(path, panels: list[tuple[torch.Tensor, str]], tokens: list[str], columns: int, title: str) -> None:
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.5 * columns + 1, 3.5 * rows + 0.6), squeeze=False,
                             layout="constrained")
    for i, ax in enumerate(axes.flat):
        if i < len(panels):
            weights, panel_title = panels[i]
            _heatmap(ax, weights, tokens, panel_title)
        else:
            ax.axis("off")
    fig.suptitle(title, fontsize=12)
    _colorbar(fig, axes)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _colorbar(fig, axes) -> None:
    image = axes.flat[0].images[0]
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="attention weight (square-root scale)")


def plot_position_similarity(path, position_embeddings: dict[str, torch.Tensor], first: int = 64) -> None:
    """Cosine similarity between learned position embeddings (name -> (block_size, C)), first positions."""
    fig, axes = plt.subplots(1, len(position_embeddings), figsize=(5.2 * len(position_embeddings), 4.6),
                             squeeze=False)
    for ax, (name, table) in zip(axes[0], position_embeddings.items()):
        rows = torch.nn.functional.normalize(table[:first].float(), dim=-1)  # (P, C), unit length
        similarity = rows @ rows.T  # (P, P): cos(p_i, p_j)
        image = ax.imshow(similarity.numpy(), cmap="cividis", vmin=-1, vmax=1)
        ax.set_title(f"{name}: positions 0-{len(rows) - 1}", fontsize=10)
        ax.set_xlabel("position j")
        ax.set_ylabel("position i")
        fig.colorbar(image, ax=ax, shrink=0.8, label="cos(p_i, p_j)")
    fig.suptitle("Learned position embeddings: nearby positions look alike", fontsize=12)
    _save(fig, path)


def plot_lora(path, d: int = 12, r: int = 2, alpha: float = 4.0, seed: int = 0) -> None:
    """LoRA's update (alpha / r) · B A next to W, and the merged W + ΔW; ΔW has rank r."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, d, generator=g) * 0.5  # (d_out, d_in), the frozen weight
    B = torch.randn(d, r, generator=g)  # (d_out, r), as after some training (it starts at zero)
    A = torch.randn(r, d, generator=g) / d ** 0.5  # (r, d_in)
    delta = (alpha / r) * B @ A  # (d_out, d_in)
    rank = int(torch.linalg.matrix_rank(delta))
    panels = [("W (frozen)", W), ("B", B), ("A", A), (f"ΔW = (α/r)·B·A\nrank {rank}", delta),
              ("W + ΔW (merged)", W + delta)]
    limit = max(t.abs().max().item() for _, t in panels)
    fig, axes = plt.subplots(1, 5, figsize=(15, 4.2), gridspec_kw={"width_ratios": [d, r + 1, d, d, d]},
                             layout="constrained")  # room for each panel's title under the figure's
    for ax, (name, t) in zip(axes, panels):
        image = ax.imshow(t.numpy(), cmap="PuOr", vmin=-limit, vmax=limit)
        ax.set_title(f"{name}\n{tuple(t.shape)}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    fig.suptitle(f"LoRA, r = {r}, α = {alpha:g}: y = x (W + (α/r)·B·A)ᵀ; merging adds ΔW into W once",
                 fontsize=12)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gelu(path) -> None:
    """The two GELUs the MLP can use (config.gelu_approximate): exact erf (BERT) and tanh (GPT-2)."""
    x = torch.linspace(-4, 4, 801)
    exact = torch.nn.GELU(approximate="none")(x)
    tanh = torch.nn.GELU(approximate="tanh")(x)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, exact, color="#0072B2", label="exact: x·Φ(x) (BERT)")
    ax.plot(x, tanh, color="#E69F00", linestyle="--", label="tanh approximation (GPT-2)")
    ax.plot(x, torch.relu(x), color="#999999", linewidth=1, label="ReLU, for comparison")
    ax.set_xlabel("x")
    ax.set_ylabel("GELU(x)")
    ax.grid(alpha=0.3)
    difference = ax.twinx()
    difference.plot(x, (tanh - exact) * 1e4, color="#D55E00", linewidth=1, label="tanh − exact (×10⁴, right)")
    difference.set_ylabel("difference × 10⁴")
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = difference.get_legend_handles_labels()
    ax.legend(lines + more, labels + more_labels, fontsize=8, loc="upper left")
    ax.set_title(f"GELU: the two forms differ by at most {(tanh - exact).abs().max().item():.1e}", fontsize=11)
    _save(fig, path)
