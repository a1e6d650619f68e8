"""BERT: shapes, parameter count, bidirectionality, padding, the pre-training heads, training."""

import pytest
import torch
import torch.nn.functional as F

from minilm import Bert, BertConfig, BertForPreTraining
from minilm.model.losses import IGNORE_INDEX

VOCAB = 41


def tiny_config(**overrides) -> BertConfig:
    fields = dict(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=32, n_inner=64,
                  dropout=0.0, attn_dropout=0.0, init_std=0.1)
    return BertConfig(**{**fields, **overrides})


def tiny_bert(seed=0, **overrides) -> Bert:
    torch.manual_seed(seed)
    return Bert(tiny_config(**overrides)).eval()


def random_ids(B, T, seed=1):
    return torch.randint(1, VOCAB, (B, T), generator=torch.Generator().manual_seed(seed))


def test_hidden_states_and_pooled_vector_shapes():
    hidden, pooled = tiny_bert()(random_ids(3, 7))
    assert hidden.shape == (3, 7, 32) and pooled.shape == (3, 32)


def test_bert_base_with_pooler_has_109482240_parameters():
    with torch.device("meta"):  # the size of bert-base-uncased, without allocating it
        model = Bert(BertConfig.preset("bert-base"))
    assert model.num_parameters() == 109_482_240


def test_mlm_decoder_shares_the_word_embedding_matrix():
    model = BertForPreTraining(tiny_config())
    assert model.mlm_head.decoder.weight is model.bert.embeddings.word.weight


def test_changing_later_tokens_changes_earlier_outputs():
    model, ids = tiny_bert(), random_ids(2, 10)
    hidden, _ = model(ids)
    changed = ids.clone()
    changed[:, 6:] = changed[:, 6:] % (VOCAB - 1) + 1  # different, still not the pad id 0
    changed_hidden, _ = model(changed)
    for t in range(6):  # every earlier position sees the later tokens
        assert not torch.allclose(changed_hidden[:, t], hidden[:, t], atol=1e-4)


def test_token_type_ids_change_the_outputs():
    model, ids = tiny_bert(), random_ids(1, 8)
    segment_b = torch.tensor([[0] * 4 + [1] * 4])
    assert not torch.allclose(model(ids)[0], model(ids, token_type_ids=segment_b)[0], atol=1e-4)


@pytest.mark.parametrize("attn_impl", ["manual", "sdpa"])
@pytest.mark.parametrize("lengths", [[5, 9, 3], [4]])
def test_right_padding_leaves_real_token_outputs_unchanged(attn_impl, lengths):
    model, T = tiny_bert(attn_impl=attn_impl), 9
    padded = random_ids(len(lengths), T)
    mask = torch.tensor([[1] * n + [0] * (T - n) for n in lengths])
    padded = padded * mask  # pad id 0 after each sequence
    hidden, pooled = model(padded, attention_mask=mask)
    for b, n in enumerate(lengths):
        alone_hidden, alone_pooled = model(padded[b:b + 1, :n])
        torch.testing.assert_close(hidden[b, :n], alone_hidden[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(pooled[b], alone_pooled[0], rtol=0, atol=1e-5)


def test_forward_longer_than_block_size_raises_naming_block_size():
    with pytest.raises(ValueError, match="longer than block_size 16"):
        tiny_bert()(random_ids(1, 17))


def labelled_batch():
    ids = random_ids(3, 12)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labelled = torch.rand(ids.shape, generator=torch.Generator().manual_seed(5)) < 0.3
    labels[labelled] = random_ids(3, 12, seed=6)[labelled]
    return ids, labels, labelled


def test_mlm_head_runs_only_on_labelled_positions():
    torch.manual_seed(0)
    model, (ids, labels, labelled) = BertForPreTraining(tiny_config()).eval(), labelled_batch()
    seen_shapes = []
    model.mlm_head.decoder.register_forward_hook(lambda module, inputs, output: seen_shapes.append(inputs[0].shape))
    out = model(ids, mlm_labels=labels)
    assert seen_shapes == [(labelled.sum().item(), 32)]
    assert out.mlm_logits.shape == (labelled.sum().item(), VOCAB)


def test_labelled_position_logits_and_loss_equal_full_logits_then_selected():
    torch.manual_seed(0)
    model, (ids, labels, labelled) = BertForPreTraining(tiny_config()).eval(), labelled_batch()
    selected = model(ids, mlm_labels=labels)
    full_logits = model(ids).mlm_logits  # (B, T, V): every position
    torch.testing.assert_close(selected.mlm_logits, full_logits[labelled], rtol=0, atol=1e-6)
    expected_loss = F.cross_entropy(full_logits[labelled], labels[labelled])
    torch.testing.assert_close(selected.mlm_loss, expected_loss, rtol=0, atol=1e-6)


def test_pretraining_loss_is_the_sum_of_mlm_and_nsp_losses():
    torch.manual_seed(0)
    model, (ids, labels, _) = BertForPreTraining(tiny_config()).eval(), labelled_batch()
    out = model(ids, mlm_labels=labels, nsp_labels=torch.tensor([0, 1, 1]))
    assert out.nsp_logits.shape == (3, 2)
    torch.testing.assert_close(out.loss, out.mlm_loss + out.nsp_loss)


def test_tiny_bert_for_pretraining_overfits_one_batch():
    torch.manual_seed(0)
    model, (ids, labels, _) = BertForPreTraining(tiny_config()).train(), labelled_batch()
    nsp_labels = torch.tensor([0, 1, 1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(100):  # stops after ~20 steps
        loss = model(ids, mlm_labels=labels, nsp_labels=nsp_labels).loss
        if loss.item() < 0.1:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1
