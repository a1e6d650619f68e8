"""Training: the one loop every script shares, and what it needs (docs/training.md).

    trainer.py      Trainer and Task: AdamW, warm-up + cosine, accumulation, clipping, mixed precision,
                    compile, DDP, evaluation, checkpoints, exact resume
    lm_task.py      next-token prediction on a token stream (train_gpt.py, finetune.py)
    bert_task.py    masked-LM + next-sentence prediction on sentence pairs (train_bert.py)
    checkpoint.py   checkpoint folders: atomic, safe to load
    cli.py          the command line, generated from the config dataclasses
    distributed.py  the device, and the process group under torchrun
    metrics_log.py  metrics.jsonl and its plot
"""
