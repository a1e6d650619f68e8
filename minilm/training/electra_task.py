"""ELECTRA's pretraining Task: the generator's masked-LM plus the discriminator's replaced-token detection
(minilm/model/electra.py computes both; docs/successors.md has the math).

The sequences and their masking are MaskedLMTask's; what differs is the loss (Electra's own,
mlm_loss + rtd_weight · rtd_loss) and the metrics:

    mlm_acc       the generator's accuracy at the masked positions (beside always-the-most-frequent-token)
    rtd_acc       the discriminator's original/replaced accuracy over every real token
    rtd_original  the share of real tokens that are original: what "never replaced" scores, rtd_acc's baseline.
                  It moves during training: the better the generator, the more of its samples equal the
                  original token, and those count as original.
    rtd_auc       the chance that a replaced token gets a higher "replaced?" logit than an original one (0.5:
                  no clue), averaged over the evaluation batches. At CPU scale few tokens are ever more
                  likely replaced than not, so rtd_acc can sit at its baseline while the detector learns;
                  the AUC shows it.

The curriculum (curriculum_iters > 0): at step s, a share max(0, 1 - s / curriculum_iters) of the masked
positions is filled with a uniformly random token instead of the generator's sample. Those are easy to
spot (mostly rare pieces, out of place anywhere), and they give the discriminator something to learn before
the generator's samples, which already match the word frequencies after a few dozen steps, become its whole
task. Evaluations always use the generator's samples alone. docs/successors.md shows what it does: it
lifts the discriminator off its plateau on unigram replacements, and barely on the generator's samples.
"""

import torch

from .bert_task import Baseline, MaskedLMTask


class ElectraTask(MaskedLMTask):

    accuracies = [("rtd_acc", "RTD"), ("mlm_acc", "generator MLM")]

    def __init__(self, *args, rtd_weight: float = 50.0, curriculum_iters: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.rtd_weight = rtd_weight  # the model's own λ, only to add the evaluation's two losses up
        self.curriculum_iters = curriculum_iters

    def uniform_share(self) -> float:
        """The share of uniformly random replacements at this step: 1 falling linearly to 0."""
        if self.curriculum_iters == 0:
            return 0.0
        return max(0.0, 1.0 - self.step / self.curriculum_iters)

    def draw(self, sampler, batch_size: int, generator) -> dict[str, torch.Tensor]:
        """MaskedLMTask's masked sequences, and the uniform numbers that decide the generator's samples
        (minilm/model/electra.py, sample_replacements), drawn from the data generator with them: a batch
        cut into slices (DDP, accumulation) then samples what the whole batch would, and the fixed
        evaluation batches are corrupted alike at every evaluation."""
        batch = super().draw(sampler, batch_size, generator)
        batch["sample_noise"] = torch.rand(*batch["input_ids"].shape, 2, generator=generator)  # (B, T, 2)
        return batch

    def loss(self, model, batch):
        out = model(**batch, uniform_share=self.uniform_share())
        # Each mean weighed by this slice's share of the step's masked (real) tokens: MaskedLMTask.share
        mlm_loss, rtd_loss = out.mlm_loss * self.share(batch, "masked"), out.rtd_loss * self.share(batch, "real")
        return mlm_loss + self.rtd_weight * rtd_loss

    def add_sums(self, sums, out, batch):
        super().add_sums(sums, out, batch)  # the generator's MLM
        real = batch["attention_mask"].bool()  # (B, T)
        labels = out.rtd_labels[real]  # (M,) 1: replaced
        sums["rtd_loss"] += out.rtd_loss.item() * len(labels)
        sums["rtd_correct"] += ((out.rtd_logits[real] > 0).long() == labels).sum().item()
        sums["n_original"] += (labels == 0).sum().item()
        sums["n_real"] += len(labels)
        sums["rtd_auc"] += auc(out.rtd_logits[real].float(), labels)
        sums["n_batches"] += 1

    def metrics_of(self, sums):
        mlm = super().metrics_of(sums)
        rtd_loss = sums["rtd_loss"] / sums["n_real"]
        return {"mlm_loss": mlm["mlm_loss"], "rtd_loss": rtd_loss, "loss": mlm["mlm_loss"] + self.rtd_weight * rtd_loss,
                "mlm_acc": mlm["mlm_acc"], "rtd_acc": sums["rtd_correct"] / sums["n_real"],
                "rtd_original": sums["n_original"] / sums["n_real"], "rtd_auc": sums["rtd_auc"] / sums["n_batches"]}

    def baselines(self, cfg, most_frequent_id, token, metrics):
        """RTD without a clue: "original" everywhere, which scores the share of original tokens."""
        return {**super().baselines(cfg, most_frequent_id, token, metrics),
                "rtd_acc": Baseline(metrics["val_rtd_original"], "always original", curve="rtd_original")}


def auc(scores, labels) -> float:
    """Area under the ROC curve: the chance that a random positive (label 1) scores above a random negative,
    from the ranks of the scores (Mann-Whitney U); 0.5 when there are no positives or no negatives."""
    positive = labels.bool()  # (M,)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = scores.argsort().argsort().double() + 1  # 1 = the lowest score (ties broken by position)
    return (ranks[positive].sum().item() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
