"""The pictures of docs/img are drawn from the code: the steps they show are the code's own steps, and
`python -m minilm.viz figures` draws every one of them."""

import pytest
import torch

from data.assets import base_model_folder
from data.tokenizers import named_tokenizer
from minilm.model.losses import IGNORE_INDEX, mask_tokens
from minilm.viz import docs_figures
from minilm.viz.tokenizer_figures import bpe_merge_steps, wordpiece_steps
from minilm.viz.training_figures import masking_fates
from test_train_gpt import TINY_FLAGS
from tokenizer import WordPieceTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def wordpiece():
    return WordPieceTokenizer.from_vocab_file(base_model_folder("minilm-l6") / "vocab.txt", lowercase=True)


@pytest.mark.parametrize("word", [" tokenization", " unbelievable", "Hello", " 2026"])
def test_the_bpe_steps_end_at_what_encode_gives(word):
    gpt2 = named_tokenizer("gpt2")
    steps = bpe_merge_steps(gpt2, word)
    assert steps[-1][0] == gpt2.encode_ordinary(word)
    assert [len(ids) for ids, _ in steps] == sorted((len(ids) for ids, _ in steps), reverse=True)  # merges only shrink


def test_each_bpe_step_merges_the_lowest_ranked_pair_present():
    gpt2 = named_tokenizer("gpt2")
    steps = bpe_merge_steps(gpt2, " tokenization")
    for (before, _), (_, pair) in zip(steps, steps[1:]):
        present = [gpt2.merge_rank[p] for p in zip(before, before[1:]) if p in gpt2.merge_rank]
        assert gpt2.merge_rank[pair] == min(present)


@pytest.mark.parametrize("word", ["unbelievably", "transformers", "the"])
def test_the_wordpiece_steps_are_what_tokenize_gives(wordpiece, word):
    steps = wordpiece_steps(wordpiece, word)
    assert [piece for _, _, piece in steps] == wordpiece.tokenize(word)
    assert all(candidate not in wordpiece.vocab for _, tried, _ in steps for candidate in tried)


def test_the_masking_picture_shows_exactly_what_mask_tokens_did():
    input_ids = torch.arange(5, 45)[None]  # (1, 40)
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    masked, labels, fates = masking_fates(input_ids, special, mask_id=1, vocab_size=100, seed=3)
    expected_masked, expected_labels = mask_tokens(input_ids, special, 1, 100, 0.15, torch.Generator().manual_seed(3))
    assert torch.equal(masked, expected_masked) and torch.equal(labels, expected_labels)
    chosen = [fate != "kept out" for fate in fates]
    assert chosen == (labels[0] != IGNORE_INDEX).tolist()
    assert all((fate == "[MASK]") == (new == 1) for fate, new in zip(fates, masked[0].tolist()) if fate != "kept out")


@pytest.mark.slow
def test_the_figures_command_draws_every_picture_from_a_run_and_the_real_minilm(tmp_path):
    import train_gpt
    train_gpt.main(["--out_dir", str(tmp_path / "run"), *TINY_FLAGS])  # the plays, as the real figures use
    written = docs_figures.draw_all(tmp_path / "img", tmp_path / "run", base_model_folder("minilm-l6"))
    assert len(written) == 17 and all(path.stat().st_size > 10_000 for path in written)
    assert {path.name for path in written} == {path.name for path in (tmp_path / "img").iterdir()}
