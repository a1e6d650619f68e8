"""Task heads: GPT classification reads the last real token, so padding changes nothing."""

import torch

from minilm.finetune.tasks import pad_batch
from minilm.finetune.heads import SequenceClassifier, TokenTagger
from finetune_fixtures import tiny_bert, tiny_gpt


def batch_of(*sequences, pad_id=0):
    return pad_batch([{"input_ids": s, "token_type_ids": [0] * len(s), "labels": 0} for s in sequences], pad_id)


def logits_of(model, batch):
    return model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])[0]


def test_gpt_classifier_logits_do_not_change_when_the_batch_pads_the_sequence():
    model = SequenceClassifier(tiny_gpt(vocab_size=20), num_labels=3).eval()
    short, long = [5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8, 9]
    alone = logits_of(model, batch_of(short))
    padded = logits_of(model, batch_of(short, long, pad_id=11))[0]  # short + 6 padding tokens
    torch.testing.assert_close(padded, alone[0])


def test_gpt_classifier_reads_the_last_real_token_not_the_last_position():
    model = SequenceClassifier(tiny_gpt(vocab_size=20), num_labels=3).eval()
    batch = batch_of([5, 6, 7], [1, 2, 3, 4, 5])
    hidden, _ = model.backbone(batch["input_ids"], attention_mask=batch["attention_mask"])  # (B, T, C)
    features = model.features(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(features[0], hidden[0, 2])
    assert not torch.allclose(features[0], hidden[0, -1])


def test_bert_classifier_logits_do_not_change_when_the_batch_pads_the_sequence():
    model = SequenceClassifier(tiny_bert(), num_labels=2).eval()
    alone = logits_of(model, batch_of([2, 7, 8, 3]))
    padded = logits_of(model, batch_of([2, 7, 8, 3], [2, 7, 8, 9, 10, 11, 3]))[0]
    torch.testing.assert_close(padded, alone[0], atol=1e-5, rtol=1e-5)


def test_tagger_gives_one_score_vector_per_token():
    model = TokenTagger(tiny_gpt(vocab_size=20), num_labels=4).eval()
    assert logits_of(model, batch_of([1, 2, 3], [4, 5])).shape == (2, 3, 4)


def test_mean_pooling_averages_only_the_real_tokens():
    model = SequenceClassifier(tiny_bert(), num_labels=2, pooling="mean").eval()
    batch = batch_of([2, 7, 8, 3], [2, 7, 8, 9, 10, 11, 3])
    hidden, _ = model.backbone(batch["input_ids"], attention_mask=batch["attention_mask"])  # (B, T, C)
    features = model.features(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    torch.testing.assert_close(features[0], hidden[0, :4].mean(dim=0))
