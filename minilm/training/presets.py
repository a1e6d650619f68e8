"""The named presets of train_gpt.py and train_bert.py: `--config NAME` picks one, any flag overrides it.

Each preset sets fields of the model config (GPTConfig / BertConfig / ElectraConfig), the TrainConfig and
the script's DataConfig, as {group: {field: value}}; a BERT preset's data "objective" picks the model class
(minilm/training/objectives.py). They live in the library rather than in the scripts so that
other commands can read them too (`python -m minilm.viz figures` draws each one's learning-rate schedule).
"""

from ..model import BertConfig, GPTConfig, LlamaConfig

GPT_PRESETS = {
    # CPU-sized and character-level: about 5 minutes on 2 cores, data preparation included.
    "small": {
        "model": dict(GPTConfig.PRESETS["small"], block_size=128),
        "train": dict(out_dir="out/gpt-small", max_iters=2000, batch_size=16, lr=2e-3, warmup_iters=100,
                      eval_interval=500, eval_iters=20, log_interval=100, weight_decay=0.1, beta2=0.99),
    },
    # nanoGPT's published CPU settings, for comparing figures on tinyshakespeare (--data). nanoGPT drops
    # the biases (--bias false here); with them the validation loss came out lower (see README, Figures).
    "baby": {
        "model": dict(vocab_size=96, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
        "train": dict(out_dir="out/gpt-baby", max_iters=2000, batch_size=12, lr=1e-3, min_lr=1e-4,
                      warmup_iters=100, lr_decay_iters=2000, eval_interval=250, eval_iters=20, log_interval=100),
    },
    # GPT-2 124M with the real GPT-2 vocabulary: a GPU run.
    "gpt2": {
        "model": dict(GPTConfig.PRESETS["gpt2"]),
        "train": dict(out_dir="out/gpt2", max_iters=5000, batch_size=16, grad_accum_steps=4, lr=6e-4,
                      warmup_iters=200, eval_interval=500, weight_decay=0.1, beta2=0.95),
        "data": dict(tokenizer="gpt2"),
    },
    # Sorting 6 digits (minilm/training/toy_tasks.py): a check of the whole stack in seconds on a CPU.
    "toy": {
        "model": dict(vocab_size=11, block_size=12, n_layer=2, n_head=4, n_embd=64, dropout=0.0),
        "train": dict(out_dir="out/gpt-toy", max_iters=1000, batch_size=64, lr=3e-3, warmup_iters=50,
                      eval_interval=250, eval_iters=5, log_interval=100, weight_decay=0.0,
                      metric="val_exact", metric_goal="max"),
        "toy": dict(toy_task="sort", toy_length=6),
    },
}
# GPT's successor on the same runs (docs/llama.md): `small` and `toy` with Llama's four parts, the same corpus,
# steps, batch and schedule; n_inner 384 (8/3 * 128 = 341, rounded up to a multiple of 128) brings the
# parameters within 3% of GPT small's, which GQA's narrower key/value projections would otherwise undercut.
GPT_PRESETS["small-llama"] = {
    "model": dict(LlamaConfig.PRESETS["small"], block_size=128),
    "train": dict(GPT_PRESETS["small"]["train"], out_dir="out/llama-small"),
    "data": dict(architecture="llama"),
}
GPT_PRESETS["toy-llama"] = {
    "model": dict(GPT_PRESETS["toy"]["model"], n_kv_head=2, n_inner=192, tie_word_embeddings=True),
    "train": dict(GPT_PRESETS["toy"]["train"], out_dir="out/llama-toy"),
    "data": dict(architecture="llama"),
    "toy": GPT_PRESETS["toy"]["toy"],
}


# init_std 0.1, not BERT's 0.02 (sized for 768 wide) nor 0.05: at 0.05 the [CLS] state hardly depends on the
# input (its attention output, an average through two std-0.05 matrices, is ~0.08 of the residual), so the
# NSP head has nothing to read and NSP stays at chance; see docs/experiments/bert_pretraining.md.
_SMALL_MODEL = dict(BertConfig.PRESETS["small"], block_size=128, dropout=0.0, attn_dropout=0.0, attn_impl="sdpa",
                    init_std=0.1)
_SMALL_TRAIN = dict(batch_size=32, lr=2e-3, weight_decay=0.01, beta2=0.99, eval_iters=20,
                    metric="val_nsp_acc", metric_goal="max")
BERT_PRESETS = {
    # Most learning per CPU second: 2 layers x 128, pairs of 128 tokens
    # (see docs/experiments/bert_pretraining.md).
    "small": {
        "model": _SMALL_MODEL,
        "train": dict(_SMALL_TRAIN, out_dir="out/bert-small", max_iters=2400, warmup_iters=100,
                      eval_interval=250, log_interval=50),
        "data": dict(max_seq_len=128),
    },
    # The same model, BERT's two phases: 2,500 steps on pairs of 64 tokens (cheap steps; NSP leaves chance
    # sooner), then pairs of 256 (twice the NSP evidence of 128) to step 7,800; bf16 autocast, ~15% faster
    # on this CPU (AVX512-BF16); the written-out attention, as fast as sdpa at 256 tokens and faster at 64.
    # About 27 minutes on 2 cores; see docs/experiments/bert_pretraining.md. Evaluated on 50 batches
    # (1,600 pairs of 256 tokens) for a steadier NSP figure.
    "long": {
        "model": dict(_SMALL_MODEL, block_size=256, attn_impl="manual"),
        "train": dict(_SMALL_TRAIN, out_dir="out/bert-long", max_iters=7800, warmup_iters=200,
                      eval_interval=500, eval_iters=50, log_interval=100, dtype="bfloat16"),
        "data": dict(max_seq_len=256, phase1_iters=2500, phase1_seq_len=64, phase1_batch_size=64),
    },
    # BERT-base with the real uncased vocabulary, 128-token pairs: a GPU run.
    "bert-base": {
        "model": dict(BertConfig.PRESETS["bert-base"]),
        "train": dict(out_dir="out/bert-base", max_iters=20000, batch_size=128, lr=1e-4, warmup_iters=1000,
                      eval_interval=1000, weight_decay=0.01, metric="val_nsp_acc", metric_goal="max"),
        "data": dict(tokenizer="bert-base-uncased", max_seq_len=128),
    },
    # BERT's successors, each `small` with its one idea changed (docs/successors.md): the same width (128),
    # depth (2), corpus, pairs of 128 tokens and training settings, so a comparison compares the ideas.
    # RoBERTa: masked-LM only, on full sentences that run across documents; no pooler (nothing reads it);
    # position ids start after the padding id, which costs pad_token_id + 1 rows: block_size 129 = 128 + 1
    # with WordPiece's [PAD] = 0; one token type (RoBERTa's type_vocab_size).
    "roberta-small": {
        "model": dict(_SMALL_MODEL, block_size=129, pooler=False, positions_after_padding=True, type_vocab_size=1),
        "train": dict(_SMALL_TRAIN, out_dir="out/roberta-small", max_iters=2400, warmup_iters=100,
                      eval_interval=250, log_interval=50, metric="val_mlm_acc"),
        "data": dict(objective="mlm", max_seq_len=128),
    },
    # ALBERT: word vectors of E = 64 (half the width; ALBERT-base has E = 128 for H = 768, but at H = 128 a
    # narrower E would squeeze the 4,096-piece vocabulary hard) projected to 128; one block's weights at both
    # layers; sentence-order prediction on swapped pairs. 0.51M parameters against small's 0.98M.
    "albert-small": {
        "model": dict(_SMALL_MODEL, embedding_size=64, share_layers=True),
        "train": dict(_SMALL_TRAIN, out_dir="out/albert-small", max_iters=2400, warmup_iters=100,
                      eval_interval=250, log_interval=50, metric="val_sop_acc"),
        "data": dict(objective="mlm+sop", max_seq_len=128),
    },
    # ELECTRA: a discriminator of small's shape and a generator of 1/4 its width (32, the paper's best range
    # is 1/4 to 1/2), one head of 32 (the discriminator's head width) and an MLP of 4 x 32, as deep; they share
    # the 128-wide embeddings; loss = generator MLM + 50 x replaced-token detection (the paper's λ).
    "electra-small": {
        "model": dict(_SMALL_MODEL, pooler=False, generator_n_embd=32, generator_n_head=1, generator_n_inner=128,
                      rtd_weight=50.0),
        "train": dict(_SMALL_TRAIN, out_dir="out/electra-small", max_iters=2400, warmup_iters=100,
                      eval_interval=250, log_interval=50, metric="val_rtd_auc"),
        "data": dict(objective="electra", max_seq_len=128),
    },
    # Masked digits of 12-digit palindromes (minilm/training/toy_tasks.py): needs both directions; seconds on a CPU.
    "toy": {
        "model": dict(vocab_size=15, block_size=14, n_layer=2, n_head=4, n_embd=64, n_inner=256, dropout=0.0,
                      attn_dropout=0.0, init_std=0.1),
        "train": dict(out_dir="out/bert-toy", max_iters=400, batch_size=64, lr=3e-3, warmup_iters=50,
                      eval_interval=100, eval_iters=5, log_interval=100, weight_decay=0.0,
                      metric="val_masked_acc", metric_goal="max"),
        "toy": dict(toy_task="palindrome", toy_length=12),
    },
}
