"""The named presets of train_gpt.py and train_bert.py: `--config NAME` picks one, any flag overrides it.

Each preset sets fields of the model config (GPTConfig / BertConfig), the TrainConfig and the script's
DataConfig, as {group: {field: value}}. They live in the library rather than in the scripts so that
other commands can read them too (`python -m minilm.viz figures` draws each one's learning-rate schedule).
"""

from ..model import BertConfig, GPTConfig

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
