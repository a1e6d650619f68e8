"""Fine-tuning a pretrained GPT or BERT (docs/finetuning.md).

    config.py           FinetuneConfig: finetune.py's task, base, data and example settings
    heads.py            SequenceClassifier and TokenTagger on a backbone
    tasks.py            the classification and tagging Tasks for the shared Trainer
    sft.py              instruction tuning: conversations with only the answers scored (ChatTask)
    chat_base.py        the base of instruction tuning: its chat template and the pointer to it
    tagging_metrics.py  token accuracy; entity precision / recall / F1 for BIO tags
    checkpoints.py      base models in, fine-tuned checkpoints out (trained tensors only, or merged)
    recipes.py          the named recipes of finetune.py and each method's starting learning rate
    distill.py          knowledge distillation: a student cut from the teacher's blocks (docs/distillation.md)
    adversarial.py      FGM and PGD on the word embeddings, around any Task (docs/applications.md)
    ensemble.py         several fine-tuned checkpoints averaging their probabilities
    entity_report.py    entity spans of BIO tags, and the per-type report

The methods that choose what trains (LoRA, adapters, ...) are minilm/peft/.
"""
