"""The inputs of BERT's successors: ALBERT's sentence-order pairs and RoBERTa's full-sentence segments."""

import numpy as np
import pytest
import torch

from common.errors import DataError
from data.bert_pairs import IN_ORDER, SWAPPED, PairSampler, tokenize_documents
from data.full_sentences import FullSentenceSampler
from test_bert_pretraining import CLS, PAD, SEP, PositionTokenizer, doc_lookup, make_documents, segments


def sop_sampler(max_seq_len=32, **kwargs):
    documents = make_documents(**kwargs)
    tokenizer = PositionTokenizer(documents)
    docs = tokenize_documents(documents, tokenizer)
    return PairSampler(docs, max_seq_len, CLS, SEP, PAD, split="train", objective="sop"), tokenizer


def draw(sampler, n=512, seed=0):
    return sampler.sample(n, torch.Generator().manual_seed(seed))


def test_about_half_of_the_sop_pairs_are_swapped():
    sampler, _ = sop_sampler()
    labels = draw(sampler, n=4000)["nsp_labels"].float()
    assert 0.47 < labels.mean().item() < 0.53


def test_an_in_order_sop_pair_is_one_unbroken_stretch_of_one_document():
    sampler, tokenizer = sop_sampler()
    batch, doc = draw(sampler), doc_lookup(tokenizer)
    for i in np.flatnonzero(batch["nsp_labels"].numpy() == IN_ORDER):
        a, b = segments(batch, i)
        assert np.all(np.diff(a + b) == 1) and len({doc[t] for t in a + b}) == 1


def test_a_swapped_sop_pair_is_the_same_stretch_with_its_two_halves_exchanged():
    sampler, _ = sop_sampler()
    batch = draw(sampler)
    swapped = np.flatnonzero(batch["nsp_labels"].numpy() == SWAPPED)
    assert len(swapped) > 100
    for i in swapped:
        first, second = segments(batch, i)
        assert np.all(np.diff(second + first) == 1)  # put back in order, it reads on


def test_sop_needs_only_one_document():
    documents = make_documents(n_docs=1)
    docs = tokenize_documents(documents, PositionTokenizer(documents))
    PairSampler(docs, 32, CLS, SEP, PAD, objective="sop")
    with pytest.raises(DataError, match="at least 2"):
        PairSampler(docs, 32, CLS, SEP, PAD, objective="nsp")


def full_sampler(max_seq_len=24, **kwargs):
    documents = make_documents(**kwargs)
    tokenizer = PositionTokenizer(documents)
    return FullSentenceSampler(tokenize_documents(documents, tokenizer), max_seq_len, CLS, SEP), tokenizer


def test_full_sentences_fill_every_position_between_cls_and_sep():
    sampler, _ = full_sampler()
    batch = draw(sampler)
    ids = batch["input_ids"]
    assert ids.shape == (512, 24) and bool(batch["attention_mask"].all()) and not batch["token_type_ids"].any()
    assert bool((ids[:, 0] == CLS).all()) and bool((ids[:, -1] == SEP).all()) and not (ids == PAD).any()


def test_full_sentences_start_at_a_line_and_run_on_across_documents_with_one_separator():
    sampler, tokenizer = full_sampler(n_docs=6, n_lines=4)  # short documents: most sequences cross one
    batch, doc = draw(sampler), doc_lookup(tokenizer)
    line_firsts = {tokenizer.word_id[line.split()[0]] for text in make_documents(n_docs=6, n_lines=4)
                   for line in text.splitlines()}
    crossed = 0
    for row in batch["input_ids"][:, 1:-1].tolist():
        assert row[0] in line_firsts
        pieces = np.split(np.array(row), np.flatnonzero(np.array(row) == SEP))
        words = [piece[piece != SEP] for piece in pieces]
        for piece in words:  # between separators: one document, in order
            assert np.all(np.diff(piece) == 1) and len({doc[t] for t in piece}) <= 1
        docs_seen = [doc[piece[0]] for piece in words if len(piece)]
        assert docs_seen == sorted(docs_seen) and np.all(np.diff(docs_seen) == 1)  # the next document
        crossed += len(docs_seen) > 1
    assert crossed > 100


def test_a_text_shorter_than_one_full_sentence_is_refused():
    documents = ["a b c"]
    docs = tokenize_documents(documents, PositionTokenizer(documents))
    with pytest.raises(DataError, match="less than one sequence"):
        FullSentenceSampler(docs, 16, CLS, SEP)
