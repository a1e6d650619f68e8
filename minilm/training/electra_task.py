"""ELECTRA's pretraining Task: the generator's masked-LM plus the discriminator's replaced-token detection
(minilm/model/electra.py computes both; docs/successors.md has the math).

The sequences and their masking are MaskedLMTask's; what differs is the loss (Electra's own,
mlm_loss + rtd_weight · rtd_loss) and the metrics:

    mlm_acc       the generator's accuracy at the masked positions (beside always-the-most-frequent-token)
    rtd_acc       the discriminator's original/replaced accuracy over every real token
    rtd_original  the share of real tokens that are original: what "never replaced" scores, rtd_acc's baseline.
                  It moves during training: the better the generator, the more of its samples equal the
                  original token, and those count as original.
"""

import torch

from .bert_task import Baseline, MaskedLMTask


class ElectraTask(MaskedLMTask):

    accuracies = [("rtd_acc", "RTD"), ("mlm_acc", "generator MLM")]

    def __init__(self, *args, rtd_weight: float = 50.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.rtd_weight = rtd_weight  # the model's own λ, only to add the evaluation's two losses up

    def loss(self, model, batch):
        return model(**batch).loss

    def evaluate(self, model, cfg, device):
        """The generator samples with the global torch RNG: an evaluation forks it and seeds its own, so it
        corrupts its fixed batches alike each time and leaves the training run's random stream untouched
        (training is then the same whatever the eval_interval)."""
        with torch.random.fork_rng():  # the CPU generator, and every CUDA device's
            torch.manual_seed(0)
            return super().evaluate(model, cfg, device)

    def add_sums(self, sums, out, batch):
        super().add_sums(sums, out, batch)  # the generator's MLM
        real = batch["attention_mask"].bool()  # (B, T)
        labels = out.rtd_labels[real]  # (M,) 1: replaced
        sums["rtd_loss"] += out.rtd_loss.item() * len(labels)
        sums["rtd_correct"] += ((out.rtd_logits[real] > 0).long() == labels).sum().item()
        sums["n_original"] += (labels == 0).sum().item()
        sums["n_real"] += len(labels)

    def metrics_of(self, sums):
        mlm = super().metrics_of(sums)
        rtd_loss = sums["rtd_loss"] / sums["n_real"]
        return {"mlm_loss": mlm["mlm_loss"], "rtd_loss": rtd_loss, "loss": mlm["mlm_loss"] + self.rtd_weight * rtd_loss,
                "mlm_acc": mlm["mlm_acc"], "rtd_acc": sums["rtd_correct"] / sums["n_real"],
                "rtd_original": sums["n_original"] / sums["n_real"]}

    def baselines(self, cfg, most_frequent_id, token, metrics):
        """RTD without a clue: "original" everywhere, which scores the share of original tokens."""
        return {**super().baselines(cfg, most_frequent_id, token, metrics),
                "rtd_acc": Baseline(metrics["val_rtd_original"], "always original", curve="rtd_original")}
