"""Adapters: start as the identity, sit after the attention and the MLP of every block."""

import pytest
import torch

from minilm.peft import AdapterLinear, PeftConfig, apply_peft, count_parameters
from peft_tiny import HEAD, KINDS, randomize_, random_ids, tiny_model

SIZE = 4


def adapter_model(kind):
    model = tiny_model(kind)
    apply_peft(model, PeftConfig(method="adapter", adapter_size=SIZE), HEAD)
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_adapters_at_init_equal_base_model_exactly(kind):
    base, model = tiny_model(kind), adapter_model(kind)
    ids = random_ids()
    assert torch.equal(model(ids), base(ids))


@pytest.mark.parametrize("kind", KINDS)
def test_a_trained_adapter_changes_the_output(kind):
    base, model = tiny_model(kind), adapter_model(kind)
    randomize_([model.backbone.blocks[1].mlp.fc_out.adapter.up.weight])
    ids = random_ids()
    assert not torch.allclose(model(ids), base(ids), atol=1e-3)


def test_one_adapter_after_the_attention_and_one_after_the_mlp_of_each_block():
    model = adapter_model("gpt")
    wrapped = sorted(name for name, m in model.named_modules() if isinstance(m, AdapterLinear))
    assert wrapped == [f"backbone.blocks.{i}.{sub}" for i in range(2) for sub in ("attn.out_proj", "mlp.fc_out")]


def test_adapter_output_is_projection_plus_bottleneck():
    model = adapter_model("bert")
    layer = model.backbone.blocks[0].attn.out_proj
    randomize_([layer.adapter.up.weight, layer.adapter.up.bias])
    x = torch.randn(3, 16)
    y = x @ layer.weight.T + layer.bias
    down, up = layer.adapter.down, layer.adapter.up
    expected = y + torch.nn.functional.gelu(y @ down.weight.T + down.bias) @ up.weight.T + up.bias
    torch.testing.assert_close(layer(x), expected)


def test_adapter_parameter_count():
    model = adapter_model("bert")
    C, blocks, head = 16, 2, 16 * 3 + 3
    per_adapter = 2 * C * SIZE + SIZE + C  # down (C -> m) and up (m -> C), with biases
    assert count_parameters(model)[0] == blocks * 2 * per_adapter + head
