"""The PEFT methods on a Llama (minilm/peft/): LoRA reaches SwiGLU's gate_proj, up_proj and down_proj and folds
into a plain Llama; a GPT-2 target a Llama lacks is named; adapters sit after down_proj; prefix-tuning writes
n_kv_head key/value heads, what grouped-query attention's cache holds."""

import pytest
import torch

from minilm.model import Llama, LlamaConfig
from minilm.peft import PeftConfig, apply_peft, merge_lora, precompute_prefix
from minilm.peft.adapter import AdapterLinear
from minilm.peft.lora import LoRALinear

pytestmark = pytest.mark.usefixtures("one_thread")

IDS = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(1))  # (B, T)


def tiny_llama(seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    return Llama(LlamaConfig(vocab_size=50, block_size=32, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, n_inner=64,
                             init_std=0.2)).eval()


def logits(model, ids=IDS, **kwargs):
    with torch.no_grad():
        return model(ids, **kwargs)[0]


def nudge_(model, name_part: str) -> None:
    """Give the method's tensors that start at zero (LoRA's B, an adapter's up) random values."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name_part in name:
                param.normal_(std=0.1, generator=torch.Generator().manual_seed(len(name)))


def test_lora_on_the_mlp_targets_wraps_gate_up_and_down_proj_in_every_block():
    model = tiny_llama()
    apply_peft(model, PeftConfig(method="lora", lora_targets="q_proj,v_proj,gate_proj,up_proj,down_proj"), [])
    for block in model.blocks:
        assert all(isinstance(getattr(block.mlp, name), LoRALinear) for name in ("gate_proj", "up_proj", "down_proj"))
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        f"blocks.{i}.{part}.{ab}" for i in range(2) for ab in ("lora_A", "lora_B")
        for part in ("attn.q_proj", "attn.v_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}


def test_merged_lora_on_a_llama_gives_the_unmerged_outputs_with_plain_weights():
    model = tiny_llama()
    apply_peft(model, PeftConfig(method="lora", lora_targets="q_proj,k_proj,v_proj,out_proj,gate_proj,up_proj,"
                                                             "down_proj"), [])
    nudge_(model, "lora_B")
    before = logits(model)
    assert not torch.allclose(before, logits(tiny_llama()))
    merge_lora(model)
    torch.testing.assert_close(logits(model), before, rtol=1e-5, atol=1e-5)
    assert set(model.state_dict()) == set(tiny_llama().state_dict())


def test_a_gpt2_target_a_llama_lacks_is_named_with_the_ones_it_has():
    with pytest.raises(ValueError, match="no fc_in; choose from .*gate_proj,up_proj,down_proj"):
        apply_peft(tiny_llama(), PeftConfig(method="lora", lora_targets="q_proj,fc_in"), [])


def test_adapters_on_a_llama_follow_out_proj_and_down_proj_and_start_as_the_identity():
    model = tiny_llama()
    apply_peft(model, PeftConfig(method="adapter", adapter_size=8), [])
    assert isinstance(model.blocks[0].attn.out_proj, AdapterLinear)
    assert isinstance(model.blocks[0].mlp.down_proj, AdapterLinear)
    torch.testing.assert_close(logits(model), logits(tiny_llama()))
    nudge_(model, "adapter.up")
    assert not torch.allclose(logits(model), logits(tiny_llama()))


def test_a_llama_prefix_has_n_kv_head_heads_and_changes_the_output():
    model = tiny_llama()
    apply_peft(model, PeftConfig(method="prefix", prefix_length=3, prefix_hidden=16), [])
    prefix_kv = model.prefix_encoder()
    assert prefix_kv.shape == (2, 2, 2, 3, 8)  # (n_layer, keys/values, n_kv_head, P, head_dim)
    assert not torch.allclose(logits(model), logits(tiny_llama()))


def test_a_llama_prefix_gives_the_same_greedy_tokens_with_and_without_the_kv_cache():
    model = tiny_llama()
    apply_peft(model, PeftConfig(method="prefix", prefix_length=3, prefix_hidden=16), [])
    precompute_prefix(model)
    ids = IDS[:1, :4]
    cached = model.generate(ids, 6, temperature=0)
    uncached = ids
    for _ in range(6):  # the loop written out: the whole text again each step, a fresh prefix each time
        uncached = torch.cat([uncached, logits(model, uncached)[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(cached, uncached)


def test_manual_and_fused_attention_agree_on_a_llama_prefix():
    model = tiny_llama()
    apply_peft(model, PeftConfig(method="prefix", prefix_length=3, prefix_hidden=16), [])
    outputs = {}
    for impl in ("sdpa", "manual"):
        for block in model.blocks:
            block.attn.attn_impl = impl
        outputs[impl] = logits(model)
    torch.testing.assert_close(outputs["manual"], outputs["sdpa"], rtol=1e-5, atol=1e-5)
