"""The name table's rows for GPT-2, BERT and DistilBERT (docs/hf_weights.md shows them all).

GPT-2's Conv1D weights are stored (in, out) where nn.Linear stores (out, in): they are transposed.
GPT-2 keeps q, k, v in one c_attn matrix: it is split in three. BERT's files use nn.Linear's layout.
The Embeddings rows serve every BERT-style family; DistilBERT, which has no token types, skips that row.
"""

from .rows import COPY, SPLIT, SPLIT_TRANSPOSE, TIED, TRANSPOSE, rows

GPT2_ROWS = rows(
    "GPT",
    ("wte.weight", "wte.weight", COPY),
    ("wpe.weight", "wpe.weight", COPY),
    ("h.{i}.ln_1.weight", "blocks.{i}.ln_attn.weight", COPY),
    ("h.{i}.ln_1.bias", "blocks.{i}.ln_attn.bias", COPY),
    ("h.{i}.attn.c_attn.weight", "blocks.{i}.attn.{q,k,v}_proj.weight", SPLIT_TRANSPOSE),
    ("h.{i}.attn.c_attn.bias", "blocks.{i}.attn.{q,k,v}_proj.bias", SPLIT),
    ("h.{i}.attn.c_proj.weight", "blocks.{i}.attn.out_proj.weight", TRANSPOSE),
    ("h.{i}.attn.c_proj.bias", "blocks.{i}.attn.out_proj.bias", COPY),
    ("h.{i}.ln_2.weight", "blocks.{i}.ln_mlp.weight", COPY),
    ("h.{i}.ln_2.bias", "blocks.{i}.ln_mlp.bias", COPY),
    ("h.{i}.mlp.c_fc.weight", "blocks.{i}.mlp.fc_in.weight", TRANSPOSE),
    ("h.{i}.mlp.c_fc.bias", "blocks.{i}.mlp.fc_in.bias", COPY),
    ("h.{i}.mlp.c_proj.weight", "blocks.{i}.mlp.fc_out.weight", TRANSPOSE),
    ("h.{i}.mlp.c_proj.bias", "blocks.{i}.mlp.fc_out.bias", COPY),
    ("ln_f.weight", "ln_f.weight", COPY),
    ("ln_f.bias", "ln_f.bias", COPY),
    ("lm_head.weight", "lm_head.weight", TIED, "wte.weight"),
)

# Word, position and segment tables and their LayerNorm: the same names in BERT, DistilBERT, RoBERTa,
# ALBERT and ELECTRA files (E wide in ALBERT and ELECTRA).
EMBEDDING_ROWS = rows(
    "Embeddings",
    ("embeddings.word_embeddings.weight", "embeddings.word.weight", COPY),
    ("embeddings.position_embeddings.weight", "embeddings.position.weight", COPY),
    ("embeddings.token_type_embeddings.weight", "embeddings.token_type.weight", COPY),
    ("embeddings.LayerNorm.weight", "embeddings.ln.weight", COPY),
    ("embeddings.LayerNorm.bias", "embeddings.ln.bias", COPY),
)

# BERT's encoder and pooler; RoBERTa's and ELECTRA's use the same names.
BERT_ROWS = rows(
    "Bert",
    ("encoder.layer.{i}.attention.self.query.weight", "blocks.{i}.attn.q_proj.weight", COPY),
    ("encoder.layer.{i}.attention.self.query.bias", "blocks.{i}.attn.q_proj.bias", COPY),
    ("encoder.layer.{i}.attention.self.key.weight", "blocks.{i}.attn.k_proj.weight", COPY),
    ("encoder.layer.{i}.attention.self.key.bias", "blocks.{i}.attn.k_proj.bias", COPY),
    ("encoder.layer.{i}.attention.self.value.weight", "blocks.{i}.attn.v_proj.weight", COPY),
    ("encoder.layer.{i}.attention.self.value.bias", "blocks.{i}.attn.v_proj.bias", COPY),
    ("encoder.layer.{i}.attention.output.dense.weight", "blocks.{i}.attn.out_proj.weight", COPY),
    ("encoder.layer.{i}.attention.output.dense.bias", "blocks.{i}.attn.out_proj.bias", COPY),
    ("encoder.layer.{i}.attention.output.LayerNorm.weight", "blocks.{i}.ln_attn.weight", COPY),
    ("encoder.layer.{i}.attention.output.LayerNorm.bias", "blocks.{i}.ln_attn.bias", COPY),
    ("encoder.layer.{i}.intermediate.dense.weight", "blocks.{i}.mlp.fc_in.weight", COPY),
    ("encoder.layer.{i}.intermediate.dense.bias", "blocks.{i}.mlp.fc_in.bias", COPY),
    ("encoder.layer.{i}.output.dense.weight", "blocks.{i}.mlp.fc_out.weight", COPY),
    ("encoder.layer.{i}.output.dense.bias", "blocks.{i}.mlp.fc_out.bias", COPY),
    ("encoder.layer.{i}.output.LayerNorm.weight", "blocks.{i}.ln_mlp.weight", COPY),
    ("encoder.layer.{i}.output.LayerNorm.bias", "blocks.{i}.ln_mlp.bias", COPY),
    ("pooler.dense.weight", "pooler.weight", COPY),
    ("pooler.dense.bias", "pooler.bias", COPY),
)

# The masked-LM and next-sentence heads; a BertForMaskedLM has the first six rows only.
BERT_HEAD_ROWS = rows(
    "BertForPreTraining",
    ("cls.predictions.transform.dense.weight", "mlm_head.dense.weight", COPY),
    ("cls.predictions.transform.dense.bias", "mlm_head.dense.bias", COPY),
    ("cls.predictions.transform.LayerNorm.weight", "mlm_head.ln.weight", COPY),
    ("cls.predictions.transform.LayerNorm.bias", "mlm_head.ln.bias", COPY),
    ("cls.predictions.bias", "mlm_head.decoder.bias", COPY),
    ("cls.predictions.decoder.weight", "mlm_head.decoder.weight", TIED, "embeddings.word_embeddings.weight"),
    ("cls.seq_relationship.weight", "nsp_head.weight", COPY),
    ("cls.seq_relationship.bias", "nsp_head.bias", COPY),
)

# DistilBERT's blocks, under names of its own (its embeddings are the Embeddings rows, less token types).
DISTILBERT_ROWS = rows(
    "DistilBert",
    ("transformer.layer.{i}.attention.q_lin.weight", "blocks.{i}.attn.q_proj.weight", COPY),
    ("transformer.layer.{i}.attention.q_lin.bias", "blocks.{i}.attn.q_proj.bias", COPY),
    ("transformer.layer.{i}.attention.k_lin.weight", "blocks.{i}.attn.k_proj.weight", COPY),
    ("transformer.layer.{i}.attention.k_lin.bias", "blocks.{i}.attn.k_proj.bias", COPY),
    ("transformer.layer.{i}.attention.v_lin.weight", "blocks.{i}.attn.v_proj.weight", COPY),
    ("transformer.layer.{i}.attention.v_lin.bias", "blocks.{i}.attn.v_proj.bias", COPY),
    ("transformer.layer.{i}.attention.out_lin.weight", "blocks.{i}.attn.out_proj.weight", COPY),
    ("transformer.layer.{i}.attention.out_lin.bias", "blocks.{i}.attn.out_proj.bias", COPY),
    ("transformer.layer.{i}.sa_layer_norm.weight", "blocks.{i}.ln_attn.weight", COPY),
    ("transformer.layer.{i}.sa_layer_norm.bias", "blocks.{i}.ln_attn.bias", COPY),
    ("transformer.layer.{i}.ffn.lin1.weight", "blocks.{i}.mlp.fc_in.weight", COPY),
    ("transformer.layer.{i}.ffn.lin1.bias", "blocks.{i}.mlp.fc_in.bias", COPY),
    ("transformer.layer.{i}.ffn.lin2.weight", "blocks.{i}.mlp.fc_out.weight", COPY),
    ("transformer.layer.{i}.ffn.lin2.bias", "blocks.{i}.mlp.fc_out.bias", COPY),
    ("transformer.layer.{i}.output_layer_norm.weight", "blocks.{i}.ln_mlp.weight", COPY),
    ("transformer.layer.{i}.output_layer_norm.bias", "blocks.{i}.ln_mlp.bias", COPY),
)
