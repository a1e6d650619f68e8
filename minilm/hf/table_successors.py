"""The name table's rows for BERT's successors: RoBERTa, ALBERT and ELECTRA (docs/hf_weights.md).

RoBERTa's and ELECTRA's encoders have BERT's names (the Bert rows); what differs is here:
    RoBERTa   its masked-LM head, lm_head
    ALBERT    the E -> H projection and ONE block, albert_layer_groups.0.albert_layers.0, which every
              layer runs (minilm: blocks.0, the one Block object in every slot of Bert.blocks)
    ELECTRA   the E -> H projection (only when E differs from H), the detection head, the generator's head
"""

from .rows import COPY, TIED, rows

ROBERTA_HEAD_ROWS = rows(
    "RobertaForMaskedLM",
    ("lm_head.dense.weight", "mlm_head.dense.weight", COPY),
    ("lm_head.dense.bias", "mlm_head.dense.bias", COPY),
    ("lm_head.layer_norm.weight", "mlm_head.ln.weight", COPY),
    ("lm_head.layer_norm.bias", "mlm_head.ln.bias", COPY),
    ("lm_head.bias", "mlm_head.decoder.bias", COPY),
    ("lm_head.decoder.weight", "mlm_head.decoder.weight", TIED, "embeddings.word_embeddings.weight"),
)

ALBERT_LAYER = "encoder.albert_layer_groups.0.albert_layers.0"  # the one shared layer
ALBERT_ROWS = rows(
    "Albert",
    ("encoder.embedding_hidden_mapping_in.weight", "embed_project.weight", COPY),
    ("encoder.embedding_hidden_mapping_in.bias", "embed_project.bias", COPY),
    (f"{ALBERT_LAYER}.attention.query.weight", "blocks.0.attn.q_proj.weight", COPY),
    (f"{ALBERT_LAYER}.attention.query.bias", "blocks.0.attn.q_proj.bias", COPY),
    (f"{ALBERT_LAYER}.attention.key.weight", "blocks.0.attn.k_proj.weight", COPY),
    (f"{ALBERT_LAYER}.attention.key.bias", "blocks.0.attn.k_proj.bias", COPY),
    (f"{ALBERT_LAYER}.attention.value.weight", "blocks.0.attn.v_proj.weight", COPY),
    (f"{ALBERT_LAYER}.attention.value.bias", "blocks.0.attn.v_proj.bias", COPY),
    (f"{ALBERT_LAYER}.attention.dense.weight", "blocks.0.attn.out_proj.weight", COPY),
    (f"{ALBERT_LAYER}.attention.dense.bias", "blocks.0.attn.out_proj.bias", COPY),
    (f"{ALBERT_LAYER}.attention.LayerNorm.weight", "blocks.0.ln_attn.weight", COPY),
    (f"{ALBERT_LAYER}.attention.LayerNorm.bias", "blocks.0.ln_attn.bias", COPY),
    (f"{ALBERT_LAYER}.ffn.weight", "blocks.0.mlp.fc_in.weight", COPY),
    (f"{ALBERT_LAYER}.ffn.bias", "blocks.0.mlp.fc_in.bias", COPY),
    (f"{ALBERT_LAYER}.ffn_output.weight", "blocks.0.mlp.fc_out.weight", COPY),
    (f"{ALBERT_LAYER}.ffn_output.bias", "blocks.0.mlp.fc_out.bias", COPY),
    (f"{ALBERT_LAYER}.full_layer_layer_norm.weight", "blocks.0.ln_mlp.weight", COPY),
    (f"{ALBERT_LAYER}.full_layer_layer_norm.bias", "blocks.0.ln_mlp.bias", COPY),
    ("pooler.weight", "pooler.weight", COPY),
    ("pooler.bias", "pooler.bias", COPY),
)

# The masked-LM head (H -> E, then the tied E-wide word vectors) and sentence-order prediction, which
# minilm's BertForPreTraining runs with its next-sentence head; an AlbertForMaskedLM has the first six rows.
ALBERT_HEAD_ROWS = rows(
    "AlbertForPreTraining",
    ("predictions.dense.weight", "mlm_head.dense.weight", COPY),
    ("predictions.dense.bias", "mlm_head.dense.bias", COPY),
    ("predictions.LayerNorm.weight", "mlm_head.ln.weight", COPY),
    ("predictions.LayerNorm.bias", "mlm_head.ln.bias", COPY),
    ("predictions.bias", "mlm_head.decoder.bias", COPY),
    ("predictions.decoder.weight", "mlm_head.decoder.weight", TIED, "embeddings.word_embeddings.weight"),
    ("sop_classifier.classifier.weight", "nsp_head.weight", COPY),
    ("sop_classifier.classifier.bias", "nsp_head.bias", COPY),
)

# ElectraModel has this projection only when embedding_size differs from hidden_size (as minilm's Bert).
ELECTRA_ROWS = rows(
    "Electra",
    ("embeddings_project.weight", "embed_project.weight", COPY),
    ("embeddings_project.bias", "embed_project.bias", COPY),
)

ELECTRA_DISCRIMINATOR_ROWS = rows(
    "ElectraForPreTraining",
    ("discriminator_predictions.dense.weight", "rtd_head.dense.weight", COPY),
    ("discriminator_predictions.dense.bias", "rtd_head.dense.bias", COPY),
    ("discriminator_predictions.dense_prediction.weight", "rtd_head.out.weight", COPY),
    ("discriminator_predictions.dense_prediction.bias", "rtd_head.out.bias", COPY),
)

# The generator saved on its own: its encoder, then dense -> GELU -> LayerNorm -> the tied word vectors.
ELECTRA_GENERATOR_ROWS = rows(
    "ElectraForMaskedLM",
    ("generator_predictions.dense.weight", "mlm_head.dense.weight", COPY),
    ("generator_predictions.dense.bias", "mlm_head.dense.bias", COPY),
    ("generator_predictions.LayerNorm.weight", "mlm_head.ln.weight", COPY),
    ("generator_predictions.LayerNorm.bias", "mlm_head.ln.bias", COPY),
    ("generator_lm_head.bias", "mlm_head.decoder.bias", COPY),
    ("generator_lm_head.weight", "mlm_head.decoder.weight", TIED, "embeddings.word_embeddings.weight"),
)
