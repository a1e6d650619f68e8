"""The pictures of docs/llama.md show what minilm's Llama parts compute: the numbers each picture is drawn
from are checked here against the property its caption states, and each picture is drawn."""

import pytest
import torch
import torch.nn.functional as F

from minilm.viz import llama_figures
from minilm.viz.llama_figures import (gelu_mlp_of_two_inputs, query_to_kv_head, rotated_pair, rotated_scores,
                                      swiglu_of_two_inputs)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_rope_picture_turns_a_pair_by_theta_i_per_position_keeping_its_length():
    vector = torch.randn(16, generator=torch.Generator().manual_seed(0))
    points = rotated_pair(vector, torch.arange(8), pair=2, theta=10000.0)  # (8, 2)
    angles = torch.atan2(points[:, 1], points[:, 0])
    steps = torch.remainder(angles.diff() + torch.pi, 2 * torch.pi) - torch.pi  # each turn, in (-π, π]
    torch.testing.assert_close(steps, torch.full((7,), 10000.0 ** (-4 / 16)))  # θ_2 = theta^(-2·2/16)
    torch.testing.assert_close(points.norm(dim=-1), points[0].norm().expand(8))


def test_the_rope_score_map_is_constant_along_each_diagonal():
    g = torch.Generator().manual_seed(1)
    scores = rotated_scores(torch.randn(16, generator=g), torch.randn(16, generator=g), 24, 10000.0)
    for offset in range(-23, 24):
        diagonal = scores.diagonal(offset)
        torch.testing.assert_close(diagonal, diagonal[0].expand_as(diagonal), atol=1e-4, rtol=0)
    assert scores.diagonal(0)[0] != pytest.approx(scores.diagonal(3)[0], abs=1e-3)  # distance does matter


@pytest.mark.parametrize("n_kv_head, expected", [(9, list(range(9))), (3, [0, 0, 0, 1, 1, 1, 2, 2, 2]),
                                                 (1, [0] * 9)])
def test_the_gqa_picture_links_each_query_head_to_the_head_the_model_reads(n_kv_head, expected):
    assert query_to_kv_head(9, n_kv_head) == expected


def test_the_swiglu_and_gelu_units_are_what_their_titles_say():
    gate, up = torch.meshgrid(torch.linspace(-3, 3, 7), torch.linspace(-3, 3, 7), indexing="xy")
    torch.testing.assert_close(swiglu_of_two_inputs(gate, up), F.silu(gate) * up)
    torch.testing.assert_close(gelu_mlp_of_two_inputs(gate, up), F.gelu(gate, approximate="tanh"))


def test_every_llama_picture_is_drawn(tmp_path):
    for name, draw in llama_figures.FIGURES.items():
        draw(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 10_000, name
