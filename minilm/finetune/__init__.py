"""Fine-tuning a pretrained GPT or BERT (docs/finetuning.md).

    heads.py            SequenceClassifier and TokenTagger on a backbone
    tasks.py            the classification and tagging Tasks for the shared Trainer
    tagging_metrics.py  token accuracy; entity precision / recall / F1 for BIO tags
    checkpoints.py      base models in, fine-tuned checkpoints out (trained tensors only, or merged)

The methods that choose what trains (LoRA, adapters, ...) are minilm/peft/.
"""
