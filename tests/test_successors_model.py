"""BERT's successors on the shared blocks: RoBERTa's positions, ALBERT's factorised and shared weights,
ELECTRA's generator and discriminator (minilm/model/bert.py, minilm/model/electra.py)."""

import statistics

import pytest
import torch

from minilm.model import Bert, BertConfig, BertForMaskedLM, BertForPreTraining, Electra, ElectraConfig
from minilm.model.electra import sample_replacements
from minilm.model.losses import IGNORE_INDEX
from minilm.compress import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(vocab_size=50, block_size=34, n_layer=3, n_head=2, n_embd=32, n_inner=64, dropout=0.0, attn_dropout=0.0)


def roberta_config(**overrides):
    return BertConfig(**{**TINY, "positions_after_padding": True, "pad_token_id": 1, "type_vocab_size": 1,
                         **overrides})


def albert_config(**overrides):
    return BertConfig(**{**TINY, "embedding_size": 16, "share_layers": True, **overrides})


def electra_config(**overrides):
    return ElectraConfig(**{**TINY, "embedding_size": 16, "generator_n_embd": 8, "generator_n_head": 1,
                            **overrides})


def masked_batch(config, seed=0, B=4, T=12):
    """Random ids, about a quarter of them masked (id 4 stands for [MASK]); labels the originals there."""
    g = torch.Generator().manual_seed(seed)
    original = torch.randint(5, config.vocab_size, (B, T), generator=g)
    chosen = torch.rand(B, T, generator=g) < 0.25
    chosen[:, 0] = True  # every row has a masked position
    return torch.where(chosen, 4, original), torch.where(chosen, original, IGNORE_INDEX), original


# RoBERTa


def test_roberta_positions_count_real_tokens_from_after_the_padding_id():
    model = Bert(roberta_config())
    ids = torch.tensor([[7, 8, 9, 1, 1]])  # two padding tokens (id 1) at the end
    assert model.embeddings.position_ids(ids).tolist() == [[2, 3, 4, 1, 1]]


def test_a_left_padded_roberta_text_gets_the_hidden_states_of_the_unpadded_text():
    model = Bert(roberta_config()).eval()
    text = torch.tensor([[7, 8, 9, 10]])
    padded = torch.tensor([[1, 1, 7, 8, 9, 10]])
    alone, _ = model(text)
    with_padding, _ = model(padded, attention_mask=(padded != 1).long())
    assert torch.allclose(with_padding[:, 2:], alone, atol=1e-6)


def test_roberta_is_limited_to_block_size_minus_the_rows_before_the_first_position():
    config = roberta_config()
    assert config.max_length == config.block_size - 2  # positions 0 and 1 (the padding id) are never a token's
    model = Bert(config)
    model(torch.full((1, config.max_length), 7))
    with pytest.raises(ValueError, match=f"longer than the {config.max_length} positions"):
        model(torch.full((1, config.max_length + 1), 7))


# ALBERT


def test_albert_word_vectors_are_embedding_size_wide_and_projected_to_the_model_width():
    model = Bert(albert_config())
    assert model.embeddings.word.weight.shape == (50, 16)
    assert model.embed_project.weight.shape == (32, 16)
    assert model.embed(torch.tensor([[5, 6]])).shape == (1, 2, 32)


def test_shared_layers_are_one_block_object_at_every_depth():
    model = Bert(albert_config())
    assert all(block is model.blocks[0] for block in model.blocks)


def test_a_shared_layer_albert_has_the_parameters_of_a_one_layer_model():
    shared = Bert(albert_config(n_layer=6))
    one_layer = Bert(albert_config(n_layer=1, share_layers=False))
    assert shared.num_parameters() == one_layer.num_parameters()


def test_factorised_embeddings_need_fewer_parameters_than_a_bert_of_the_same_shape():
    factorised = Bert(albert_config(vocab_size=1000, share_layers=False))
    bert = Bert(BertConfig(**{**TINY, "vocab_size": 1000}))
    # V x H becomes V x E + E x H (+ the projection's bias); the position and segment tables and the
    # embeddings' LayerNorm (weight and bias) shrink from H to E too.
    V, E, H, P = 1000, 16, 32, TINY["block_size"]
    assert bert.num_parameters() - factorised.num_parameters() == (V + P + 2 + 2) * (H - E) - E * H - H


def test_the_mlm_head_of_a_factorised_model_narrows_to_the_tied_word_vectors():
    model = BertForMaskedLM(albert_config())
    assert model.mlm_head.dense.weight.shape == (16, 32)
    assert model.mlm_head.decoder.weight is model.bert.embeddings.word.weight


def test_an_albert_embedding_size_above_the_hidden_size_is_refused():
    with pytest.raises(ValueError, match="embedding_size .64. is above n_embd .32.*try embedding_size=16"):
        albert_config(embedding_size=64)


def test_pruning_heads_of_a_shared_layer_model_is_refused():
    record = {**albert_config().to_dict(), "heads_per_layer": [2, 1, 2]}
    with pytest.raises(ValueError, match="share_layers uses one block"):
        build_model(Bert, BertConfig, record)


# ELECTRA


def test_the_generator_is_narrower_and_reads_the_discriminators_embeddings():
    model = Electra(electra_config())
    assert model.generator.config.n_embd == 8
    assert model.generator.bert.embeddings is model.discriminator.bert.embeddings
    assert model.generator.mlm_head.decoder.weight is model.discriminator.bert.embeddings.word.weight
    assert model.generator.bert.embed_project.weight.shape == (8, 16)  # E = 16 -> the generator's 8


def test_a_generator_wider_than_its_discriminator_is_refused():
    with pytest.raises(ValueError, match="generator_n_embd .64. is wider than the discriminator's n_embd .32."):
        electra_config(generator_n_embd=64, generator_n_head=2)


def test_the_discriminator_reads_the_original_text_except_at_masked_positions():
    model = Electra(electra_config())
    masked, labels, original = masked_batch(model.config)
    out = model(masked, mlm_labels=labels)
    unmasked = labels == IGNORE_INDEX
    assert torch.equal(out.corrupted_ids[unmasked], original[unmasked])
    assert torch.equal(out.rtd_labels, (out.corrupted_ids != original).long())


def test_a_sampled_token_equal_to_the_original_is_labelled_original():
    model = Electra(electra_config())
    masked, labels, original = masked_batch(model.config)
    token = int(original[0, 0])
    with torch.no_grad():  # the generator now always samples `token`
        model.generator.mlm_head.decoder.bias.fill_(-1e4)
        model.generator.mlm_head.decoder.bias[token] = 1e4
    out = model(masked, mlm_labels=labels)
    chosen = labels != IGNORE_INDEX
    assert torch.all(out.corrupted_ids[chosen] == token)
    assert torch.equal(out.rtd_labels[chosen], (original[chosen] != token).long())
    assert out.rtd_labels[0, 0] == 0  # the position whose original was `token`


def test_no_gradient_reaches_the_generator_through_the_sampling():
    model = Electra(electra_config())
    masked, labels, _ = masked_batch(model.config)
    model(masked, mlm_labels=labels).rtd_loss.backward()
    assert all(p.grad is None for p in model.generator.bert.blocks.parameters())
    assert model.discriminator.bert.embeddings.word.weight.grad is not None  # shared: the detector trains them


def test_a_tied_generator_reads_the_discriminators_whole_bert_and_adds_only_its_head():
    model = Electra(electra_config(tie_generator=True))
    word_vectors = model.discriminator.bert.embeddings.word.weight  # the head's output layer is tied to them
    head = sum(p.numel() for p in model.generator.mlm_head.parameters() if p is not word_vectors)
    assert model.generator.bert is model.discriminator.bert
    assert model.num_parameters() == model.discriminator.num_parameters() + head


def test_the_masked_lm_loss_of_a_tied_generator_trains_the_discriminators_blocks():
    model = Electra(electra_config(tie_generator=True))
    masked, labels, _ = masked_batch(model.config)
    model(masked, mlm_labels=labels).mlm_loss.backward()
    assert all(p.grad is not None for p in model.discriminator.bert.blocks.parameters())


def test_a_sample_is_the_first_token_whose_cumulative_probability_exceeds_the_noise():
    probs = torch.tensor([[0.5, 0.25, 0.25, 0.0]]).expand(5, 4)  # cumulative 0.5, 0.75, 1, 1
    noise = torch.tensor([[0.0, 0.9], [0.49, 0.9], [0.5, 0.9], [0.74, 0.9], [0.99, 0.9]])
    assert sample_replacements(probs, noise).tolist() == [0, 0, 1, 1, 2]  # never token 3, of probability 0


def test_below_the_uniform_share_the_second_noise_number_picks_the_token_uniformly():
    probs = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).expand(3, 4)  # the generator always says token 0
    noise = torch.tensor([[0.5, 0.1], [0.5, 0.45], [0.5, 0.6]])
    # share 0.5: 0.1 / 0.5 = 0.2 of 4 tokens -> 0; 0.45 / 0.5 = 0.9 -> 3; 0.6 is above it -> the sample, 0
    assert sample_replacements(probs, noise, uniform_share=0.5).tolist() == [0, 3, 0]


def test_the_same_noise_gives_the_same_replacements_whatever_the_global_random_state():
    model = Electra(electra_config())
    masked, labels, _ = masked_batch(model.config)
    noise = torch.rand(*masked.shape, 2, generator=torch.Generator().manual_seed(1))
    runs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        runs.append(model(masked, mlm_labels=labels, sample_noise=noise).corrupted_ids)
    assert torch.equal(runs[0], runs[1])


def generator_certain_of(model, token: int) -> None:
    """Make the generator sample `token` at every masked position (a huge output bias)."""
    with torch.no_grad():
        model.generator.mlm_head.decoder.bias.fill_(-1e4)
        model.generator.mlm_head.decoder.bias[token] = 1e4


def test_without_a_uniform_share_every_masked_position_gets_the_generators_sample():
    model = Electra(electra_config())
    generator_certain_of(model, 7)
    masked, labels, _ = masked_batch(model.config)
    corrupted = model(masked, mlm_labels=labels).corrupted_ids
    assert (corrupted[labels != IGNORE_INDEX] == 7).all()


def test_a_uniform_share_of_one_fills_the_masked_positions_with_uniformly_random_tokens():
    model = Electra(electra_config())
    generator_certain_of(model, 7)
    masked, labels, _ = masked_batch(model.config, B=16, T=32)
    torch.manual_seed(0)
    filled = model(masked, mlm_labels=labels, uniform_share=1.0).corrupted_ids[labels != IGNORE_INDEX]  # (N,)
    counts = torch.bincount(filled, minlength=model.config.vocab_size)
    assert (filled == 7).float().mean() < 0.1  # about 1 in vocab_size, not all of them
    assert (counts > 0).sum() > 0.8 * model.config.vocab_size  # spread over (nearly) the whole vocabulary


def test_a_uniform_share_of_zero_corrupts_and_draws_randomness_exactly_as_before():
    model = Electra(electra_config())
    masked, labels, _ = masked_batch(model.config)
    runs = []
    for extra in ({}, {"uniform_share": 0.0}):
        torch.manual_seed(0)
        corrupted = model(masked, mlm_labels=labels, **extra).corrupted_ids
        runs.append((corrupted, torch.rand(3)))  # the next random numbers: nothing more was drawn
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_the_electra_loss_is_the_generator_mlm_loss_plus_rtd_weight_times_detection():
    model = Electra(electra_config(rtd_weight=50.0))
    masked, labels, _ = masked_batch(model.config)
    out = model(masked, mlm_labels=labels)
    assert torch.allclose(out.loss, out.mlm_loss + 50.0 * out.rtd_loss)


# Each tiny model overfits one batch


def overfit(model, loss_of, steps=150, lr=3e-3):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    first = None
    for _ in range(steps):
        loss = loss_of(model)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return first, loss.item()


def test_a_tiny_roberta_overfits_a_batch():
    torch.manual_seed(0)
    model = BertForMaskedLM(roberta_config(pooler=False))
    masked, labels, _ = masked_batch(model.config)
    first, last = overfit(model, lambda m: m(masked, mlm_labels=labels).loss)
    assert last < 0.1 * first


def test_a_tiny_albert_overfits_a_batch_with_sentence_order_labels():
    torch.manual_seed(0)
    model = BertForPreTraining(albert_config())
    masked, labels, _ = masked_batch(model.config)
    order = torch.tensor([0, 1, 0, 1])
    first, last = overfit(model, lambda m: m(masked, mlm_labels=labels, nsp_labels=order).loss)
    assert last < 0.1 * first


def test_a_tiny_electra_overfits_a_batch():
    torch.manual_seed(0)
    model = Electra(electra_config())
    masked, labels, _ = masked_batch(model.config)
    losses = []
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):  # the whole objective: the generator learns the masked tokens, the detector its samples
        out = model(masked, mlm_labels=labels)
        losses.append((out.mlm_loss.item(), out.rtd_loss.item()))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    # The last 20 steps' mean: the generator's loss jumps from step to step (the detector's 50x larger gradient
    # moves the embeddings they share), so a single step's value is a lottery (seeds 0-3: 0.18-0.22 x the first).
    last_mlm, last_rtd = (statistics.mean(step[i] for step in losses[-20:]) for i in (0, 1))
    assert last_mlm < 0.3 * losses[0][0]
    assert last_rtd < 0.5 * losses[0][1]  # fresh samples every step: never all memorised
