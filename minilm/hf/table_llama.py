"""The name table's rows for Llama (LlamaForCausalLM; SmolLM2 and the other Llama-family folders too).

Hugging Face's Llama keeps its decoder under `model.` and the head outside it, as `lm_head.weight`.
Every weight is an nn.Linear or a norm's scale in both libraries, so every row is a copy: no transposes,
no splits (q, k and v are three matrices in both), no biases. The head is tied to the token embedding
only when config.json's tie_word_embeddings says so (SmolLM2: yes; Llama 2 and 3: no).
"""

from .rows import COPY, TIED_IF_CONFIG, rows

LLAMA_ROWS = rows(
    "Llama",
    ("embed_tokens.weight", "wte.weight", COPY),
    ("layers.{i}.input_layernorm.weight", "blocks.{i}.ln_attn.weight", COPY),
    ("layers.{i}.self_attn.q_proj.weight", "blocks.{i}.attn.q_proj.weight", COPY),
    ("layers.{i}.self_attn.k_proj.weight", "blocks.{i}.attn.k_proj.weight", COPY),  # (n_kv_head * head_dim, C)
    ("layers.{i}.self_attn.v_proj.weight", "blocks.{i}.attn.v_proj.weight", COPY),  # (n_kv_head * head_dim, C)
    ("layers.{i}.self_attn.o_proj.weight", "blocks.{i}.attn.out_proj.weight", COPY),
    ("layers.{i}.post_attention_layernorm.weight", "blocks.{i}.ln_mlp.weight", COPY),
    ("layers.{i}.mlp.gate_proj.weight", "blocks.{i}.mlp.gate_proj.weight", COPY),
    ("layers.{i}.mlp.up_proj.weight", "blocks.{i}.mlp.up_proj.weight", COPY),
    ("layers.{i}.mlp.down_proj.weight", "blocks.{i}.mlp.down_proj.weight", COPY),
    ("norm.weight", "ln_f.weight", COPY),
)

LLAMA_HEAD_ROWS = rows(
    "LlamaForCausalLM",
    ("lm_head.weight", "lm_head.weight", TIED_IF_CONFIG, "embed_tokens.weight"),
)
