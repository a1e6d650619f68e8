"""Training: the one loop every script shares, and what it needs (docs/training.md).

    minimal_loop.py the loop with only training in it: read it first (same losses as the Trainer)
    trainer.py      Trainer and Task: AdamW, warm-up + cosine, accumulation, clipping, mixed precision,
                    compile, DDP or FSDP, evaluation, checkpoints, exact resume
    train_config.py TrainConfig: every setting of a run, validated (the CLI is generated from it)
    lm_task.py      next-token prediction on a token stream (train_gpt.py, finetune.py)
    bert_task.py    masked-LM (RoBERTa), + next-sentence or sentence-order prediction (BERT, ALBERT)
    electra_task.py ELECTRA: the generator's masked-LM + the discriminator's replaced-token detection
    objectives.py   train_bert.py's --objective: the model class, sequences and Task of each
    toy_tasks.py    sorting digits (GPT) and masked palindromes (BERT): tasks that train in seconds
    presets.py      the named presets of train_gpt.py and train_bert.py
    checkpoint.py   checkpoint folders: atomic, safe to load
    run_dir.py      an out_dir is never clobbered, and written by one run at a time
    resume.py       what --resume takes from the checkpoint: the model config and the tokenizer
    stopping.py     Ctrl-C and SIGTERM stop at a step boundary; a diverged run or a full disk stops cleanly
    throughput.py   FLOPs per token and MFU
    cli.py          the command line, generated from the config dataclasses
    distributed.py  the device, and the process group under torchrun
    fsdp.py         --fsdp: each process holds a slice of every tensor; checkpoints stay whole
    metrics_log.py  metrics.jsonl and its plot
"""
