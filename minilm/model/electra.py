"""ELECTRA: replaced-token detection (Clark et al. 2020). docs/successors.md has the math.

A small masked-LM generator fills the masked positions with tokens it samples; a discriminator (a Bert
of full width) then labels every token of the result original (0) or replaced (1):

    masked ids ──generator──> mlm_logits ──sample──> corrupted ids ──discriminator──> rtd_logits (B, T)
    loss = mlm_loss(generator) + rtd_weight · rtd_loss(discriminator)

The two share one embeddings module (word, position and segment tables and their LayerNorm); each has its
own projection from E to its width. No gradient flows through the sampling: the generator learns from its
masked-LM loss alone, the discriminator from the detection loss (and both move the shared embeddings).
After pretraining the discriminator is the model to fine-tune; the generator is thrown away.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn

from .bert import Bert, BertForMaskedLM
from .blocks import init_weights
from .config import ElectraConfig
from .losses import IGNORE_INDEX, replaced_token_labels, rtd_loss


class RTDHead(nn.Module):
    """One logit a token, "was this token replaced?": dense -> GELU -> dense to 1."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.dense = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate=config.gelu_approximate)
        self.out = nn.Linear(config.n_embd, 1, bias=config.bias)

    def forward(self, hidden):  # (B, T, C) -> (B, T)
        return self.out(self.gelu(self.dense(hidden))).squeeze(-1)


class ElectraDiscriminator(nn.Module):
    """A Bert and the replaced-token-detection head (Hugging Face's ElectraForPreTraining)."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.config = config
        self.bert = Bert(config)
        self.rtd_head = RTDHead(config)
        self.rtd_head.apply(lambda module: init_weights(module, config.init_std))

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):  # (B, T) ids -> (B, T) logits
        hidden, _ = self.bert(input_ids, token_type_ids, attention_mask)
        return self.rtd_head(hidden)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@dataclass
class ElectraOutput:
    loss: torch.Tensor | None  # mlm_loss + rtd_weight * rtd_loss (None without mlm_labels)
    mlm_loss: torch.Tensor | None
    rtd_loss: torch.Tensor | None
    mlm_logits: torch.Tensor  # (N, V): the generator's predictions at the N masked positions
    rtd_logits: torch.Tensor  # (B, T): the discriminator's "replaced?" logit for every token
    rtd_labels: torch.Tensor  # (B, T): 1 where the corrupted input differs from the original text
    corrupted_ids: torch.Tensor  # (B, T): what the discriminator read


class Electra(nn.Module):
    """Generator and discriminator, pretrained together."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.config = config
        self.discriminator = ElectraDiscriminator(config)
        self.generator = BertForMaskedLM(config.generator_config())
        # Share the embeddings: the generator reads the discriminator's tables (its own are dropped), and its
        # output layer stays tied to the shared word vectors. tie_generator shares the whole Bert.
        if config.tie_generator:
            self.generator.bert = self.discriminator.bert
        else:
            self.generator.bert.embeddings = self.discriminator.bert.embeddings
        self.generator.mlm_head.decoder.weight = self.discriminator.bert.embeddings.word.weight

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, mlm_labels=None,
                sample_noise=None, uniform_share: float = 0.0) -> ElectraOutput:
        """input_ids (B, T): the text with ~15% of positions masked; mlm_labels (B, T): the original token at
        those positions, IGNORE_INDEX elsewhere; attention_mask (B, T), 1 for real tokens.
        sample_noise (B, T, 2): uniform numbers in [0, 1) that decide the samples (sample_replacements);
        the Task draws them with the batch, so that processes and accumulation steps that cut the batch
        into slices sample exactly what one process would; None: drawn here from the global RNG.
        uniform_share: the share of masked positions filled with a uniformly random token instead of the
        generator's sample (easy replacements, for a curriculum: minilm/training/electra_task.py)."""
        if mlm_labels is None:
            raise ValueError("Electra needs mlm_labels: the generator fills exactly the masked positions")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if sample_noise is None:
            sample_noise = torch.rand(*input_ids.shape, 2, device=input_ids.device)  # (B, T, 2)
        generated = self.generator(input_ids, token_type_ids, attention_mask, mlm_labels)  # mlm_logits (N, V)
        masked = mlm_labels != IGNORE_INDEX  # (B, T)
        with torch.no_grad():  # sampling is not differentiable: the generator learns from its MLM loss only
            probs = generated.mlm_logits.float().softmax(dim=-1)  # (N, V)
            samples = sample_replacements(probs, sample_noise[masked], uniform_share)  # (N,)
        original = torch.where(masked, mlm_labels, input_ids)  # (B, T): the text before masking
        corrupted = original.clone()
        corrupted[masked] = samples
        rtd_labels = replaced_token_labels(original, corrupted)  # a sample equal to the original counts as original
        rtd_logits = self.discriminator(corrupted, token_type_ids, attention_mask)  # (B, T)
        detection = rtd_loss(rtd_logits, rtd_labels, attention_mask)
        return ElectraOutput(loss=generated.mlm_loss + self.config.rtd_weight * detection,
                             mlm_loss=generated.mlm_loss, rtd_loss=detection, mlm_logits=generated.mlm_logits,
                             rtd_logits=rtd_logits, rtd_labels=rtd_labels, corrupted_ids=corrupted)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # the shared embeddings are counted once


def sample_replacements(probs, noise, uniform_share: float = 0.0):
    """One token per masked position: probs (N, V), noise (N, 2) uniform in [0, 1) -> ids (N,).

    The sample is the inverse of the cumulative distribution at noise[:, 0]: the first token whose cumulative
    probability exceeds it, which is token v with probability probs[:, v] (torch.multinomial draws the same
    way, with numbers of its own). With probability uniform_share the token is uniform instead: noise[:, 1]
    below uniform_share picks the position, and noise[:, 1] / uniform_share, uniform in [0, 1) again, the token.
    """
    vocab_size = probs.shape[-1]
    cumulative = probs.cumsum(dim=-1)  # (N, V), rising to 1
    samples = torch.searchsorted(cumulative, noise[:, :1].contiguous(), right=True).squeeze(-1)  # (N,)
    samples = samples.clamp(max=vocab_size - 1)  # a cumulative sum can end a rounding error below 1
    if uniform_share > 0:
        chosen = noise[:, 1] < uniform_share  # (N,)
        uniform = (noise[:, 1] / uniform_share * vocab_size).long().clamp(max=vocab_size - 1)  # (N,)
        samples = torch.where(chosen, uniform, samples)
    return samples
