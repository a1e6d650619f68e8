"""BERT pretraining: NSP pair construction, dynamic masking, the pretraining task, exact resume, bad corpora."""

import json
import signal

import numpy as np
import pytest
import torch

from data.bert_pairs import (IS_NEXT, PairSampler, cached_tokenize_documents, tokenize_documents,
                             truncate_longest_first)
from minilm import BertConfig, BertForPreTraining
from minilm.model.losses import IGNORE_INDEX
from minilm.training.trainer import Trainer, TrainConfig
from tokenizer.wordpiece import truncate_longest_first as truncate_lists
from data.bert_corpus import DataConfig
from minilm.training.bert_task import PretrainingTask, mask_pairs
from minilm.training.checkpoint import load_checkpoint
import train_bert

PAD, UNK, CLS, SEP, MASK = range(5)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and two threads stall badly on a shared, busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class PositionTokenizer:
    """Every word of the corpus gets its own id, so an id says which document and position it came from."""

    def __init__(self, documents):
        words = [w for doc in documents for line in doc.splitlines() for w in line.split()]
        self.word_id = {w: i + 5 for i, w in enumerate(words)}
        self.vocab_size = len(words) + 5
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = PAD, UNK, CLS, SEP, MASK

    def encode(self, line):
        return [self.word_id[w] for w in line.split()]


def make_documents(n_docs=6, n_lines=40, seed=0):
    """Documents of lines of 1-12 unique words: word "d3_17" is document 3's 17th word."""
    rng = np.random.default_rng(seed)
    documents = []
    for d in range(n_docs):
        lines, k = [], 0
        for _ in range(n_lines):
            n = int(rng.integers(1, 13))
            lines.append(" ".join(f"d{d}_{k + j}" for j in range(n)))
            k += n
        documents.append("\n".join(lines))
    return documents


def make_sampler(max_seq_len=32, short_seq_prob=0.1, **kwargs):
    documents = make_documents(**kwargs)
    tokenizer = PositionTokenizer(documents)
    docs = tokenize_documents(documents, tokenizer)
    return PairSampler(docs, max_seq_len, CLS, SEP, PAD, short_seq_prob), tokenizer


def sample(sampler, n=512, seed=0):
    return sampler.sample(n, torch.Generator().manual_seed(seed))


def segments(batch, i):
    """(A ids, B ids) of pair i, read back through the two [SEP] positions."""
    ids = batch["input_ids"][i].tolist()
    first, second = [t for t, x in enumerate(ids) if x == SEP][:2]
    return ids[1:first], ids[first + 1:second]


def doc_lookup(tokenizer):
    """id -> the document its word came from."""
    return {i: int(w[1:].split("_")[0]) for w, i in tokenizer.word_id.items()}


# ---- pairs ---------------------------------------------------------------------------------------------

def test_about_half_of_the_pairs_have_a_random_second_segment():
    sampler, _ = make_sampler()
    labels = sample(sampler, n=4000)["nsp_labels"].float()
    assert 0.47 < labels.mean().item() < 0.53


def test_random_second_segments_never_come_from_the_first_segments_document():
    sampler, tokenizer = make_sampler()
    batch, doc = sample(sampler), doc_lookup(tokenizer)
    for i, label in enumerate(batch["nsp_labels"].tolist()):
        a, b = segments(batch, i)
        docs_a, docs_b = {doc[t] for t in a}, {doc[t] for t in b}
        assert len(docs_a) == 1 and len(docs_b) == 1
        assert (docs_a == docs_b) == (label == IS_NEXT)


def test_a_true_next_segment_starts_right_after_the_first_one_ends():
    sampler, tokenizer = make_sampler()
    batch = sample(sampler)
    for i in np.flatnonzero(batch["nsp_labels"].numpy() == IS_NEXT):
        a, b = segments(batch, i)
        assert np.all(np.diff(a + b) == 1)  # ids are corpus positions: A then B is one unbroken stretch


def test_pairs_fit_max_seq_len_with_cls_two_seps_and_matching_token_types():
    sampler, _ = make_sampler(max_seq_len=24)
    batch = sample(sampler)
    assert batch["input_ids"].shape == (512, 24)
    for ids, types, mask in zip(batch["input_ids"].tolist(), batch["token_type_ids"].tolist(),
                                batch["attention_mask"].tolist()):
        seps = [t for t, x in enumerate(ids) if x == SEP]
        assert ids[0] == CLS and len(seps) == 2 and 1 < seps[0] < seps[1] - 1
        length = seps[1] + 1
        assert types == [0] * (seps[0] + 1) + [1] * (seps[1] - seps[0]) + [0] * (24 - length)
        assert mask == [1] * length + [0] * (24 - length)
        assert ids[length:] == [PAD] * (24 - length)


def test_without_short_sequences_a_pair_is_shorter_than_max_seq_len_only_at_a_document_end():
    sampler, tokenizer = make_sampler(max_seq_len=32, short_seq_prob=0.0)
    batch = sample(sampler)
    last_words = sorted(tokenizer.word_id[doc.split()[-1]] for doc in make_documents())
    lengths = batch["attention_mask"].sum(1).tolist()
    assert 0 < sum(n < 32 for n in lengths) < len(lengths) // 4
    for i, n in enumerate(lengths):
        if n < 32:  # A's document ended inside the chunk (a random B copies the true B's length) or B's did
            a, b = segments(batch, i)
            end_of_a_document = next(last for last in last_words if last >= a[-1])
            assert a[-1] + len(b) >= end_of_a_document or b[-1] in last_words


def test_vectorised_truncation_equals_removing_tokens_from_the_longer_side():
    lengths = [(la, lb, budget) for la in range(1, 12) for lb in range(1, 12) for budget in range(2, 20)]
    la, lb, budget = (np.array(column) for column in zip(*lengths))
    keep_a, keep_b = truncate_longest_first(la, lb, budget)
    for i, (a, b, n) in enumerate(lengths):
        want_a, want_b = truncate_lists(list(range(a)), list(range(b)), n)
        assert (keep_a[i], keep_b[i]) == (len(want_a), len(want_b))


def test_cached_tokenization_is_reused_and_equals_a_fresh_one(tmp_path):
    documents = make_documents()
    tokenizer = PositionTokenizer(documents)
    first = cached_tokenize_documents(documents, tokenizer, "fingerprint", tmp_path)
    tokenizer.encode = None  # a second call must not tokenize again
    second = cached_tokenize_documents(documents, tokenizer, "fingerprint", tmp_path)
    fresh = tokenize_documents(documents, PositionTokenizer(documents))
    for name in ("tokens", "line_starts", "doc_lines"):
        assert np.array_equal(getattr(second, name), getattr(fresh, name))
        assert np.array_equal(getattr(first, name), getattr(fresh, name))


# ---- masking -------------------------------------------------------------------------------------------

def test_masking_only_touches_real_segment_tokens():
    sampler, tokenizer = make_sampler()
    pairs = sample(sampler)
    masked = mask_pairs(pairs, MASK, tokenizer.vocab_size, 0.5, torch.Generator().manual_seed(1), CLS, SEP)
    special = (pairs["input_ids"] == CLS) | (pairs["input_ids"] == SEP) | (pairs["attention_mask"] == 0)
    touched = (masked["input_ids"] != pairs["input_ids"]) | (masked["mlm_labels"] != IGNORE_INDEX)
    assert touched.any() and not (touched & special).any()


def test_the_same_pairs_are_masked_differently_on_each_draw():
    sampler, tokenizer = make_sampler()
    pairs, generator = sample(sampler), torch.Generator().manual_seed(1)
    first = mask_pairs(pairs, MASK, tokenizer.vocab_size, 0.15, generator, CLS, SEP)
    second = mask_pairs(pairs, MASK, tokenizer.vocab_size, 0.15, generator, CLS, SEP)
    assert not torch.equal(first["mlm_labels"], second["mlm_labels"])


# ---- training ------------------------------------------------------------------------------------------

def tiny_setup(dropout=0.0, phase1_iters=0):
    sampler, tokenizer = make_sampler(max_seq_len=16, n_docs=4, n_lines=20)
    tokenizer.vocab = [str(i) for i in range(tokenizer.vocab_size)]
    samplers = {"train": sampler, "val": sampler, "phase1": PairSampler(sampler.docs, 8, CLS, SEP, PAD)}
    task = PretrainingTask(samplers, tokenizer, mlm_prob=0.15, phase1_iters=phase1_iters, phase1_batch_size=8,
                           batch_size=4)
    config = BertConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32,
                        n_inner=64, dropout=dropout, attn_dropout=dropout)
    return task, config


def test_tiny_bert_for_pretraining_overfits_a_batch_of_pairs():
    task, config = tiny_setup()
    torch.manual_seed(0)
    model = BertForPreTraining(config).train()
    batch = task.get_batch("train", 8, torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):  # stops after ~100 steps
        loss = task.loss(model, batch)
        if loss.item() < 0.05:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05


def test_phase1_steps_draw_the_shorter_pairs_and_later_steps_max_seq_len_ones():
    task, _ = tiny_setup(phase1_iters=3)  # phase 1: 8 pairs of 8 tokens for every 4 pairs of 16
    generator = torch.Generator().manual_seed(0)
    task.on_step_start(2)
    assert task.get_batch("train", 4, generator)["input_ids"].shape == (8, 8)
    assert task.get_batch("train", 8, generator)["input_ids"].shape == (16, 8)  # 2 processes' worth
    assert task.get_batch("val", 4, generator)["input_ids"].shape == (4, 16)
    assert task.fixed_batches("train", TrainConfig(batch_size=4, eval_iters=1))[0]["input_ids"].shape == (4, 16)
    task.on_step_start(3)
    assert task.get_batch("train", 4, generator)["input_ids"].shape == (4, 16)


def test_a_phase1_length_above_max_seq_len_raises_naming_both():
    with pytest.raises(ValueError, match=r"phase1_seq_len \(128\).*max_seq_len \(64\)"):
        DataConfig(max_seq_len=64, phase1_iters=10, phase1_seq_len=128)


@pytest.mark.parametrize("preset", ["small", "long"])
def test_the_cls_state_of_a_fresh_preset_model_depends_on_the_input(preset):
    """NSP reads only the [CLS] state. With init_std 0.05 it varied across pairs ~4% as much as a word's
    state (the [CLS] attention output is an average through two small matrices) and NSP stayed at chance."""
    torch.manual_seed(0)
    config = BertConfig.from_dict(train_bert.PRESETS[preset]["model"])
    model = BertForPreTraining(config).eval()
    T = train_bert.PRESETS[preset]["data"]["max_seq_len"]
    input_ids = torch.randint(5, config.vocab_size, (64, T))  # (B, T) random pairs
    input_ids[:, 0] = CLS
    token_type_ids = (torch.arange(T) >= T // 2).long().expand(64, -1)  # A is the first half
    with torch.no_grad():
        hidden, _ = model.bert(input_ids, token_type_ids)  # (B, T, C)
    spread = hidden.std(dim=0).mean(dim=-1)  # (T,) how much each position's state varies across pairs
    assert spread[0] > 0.15 * spread[1:].mean()


class InterruptAt(PretrainingTask):
    """Presses Ctrl-C half-way through step `step` (after its backward pass)."""

    def __init__(self, task, step):
        super().__init__(task.samplers, task.tokenizer, task.mlm_prob, task.nsp_weight, task.phase1_iters,
                         task.phase1_batch_size, task.batch_size)
        self.interrupt_step = step

    def on_gradients(self, model, step):
        if step == self.interrupt_step:
            signal.raise_signal(signal.SIGINT)


def train_losses(task, config, out_dir, resume=False):
    torch.manual_seed(0)
    cfg = TrainConfig(out_dir=str(out_dir), max_iters=8, batch_size=4, eval_interval=4, eval_iters=2,
                      log_interval=1, warmup_iters=2, progress=False, resume=resume, device="cpu",
                      metric="val_nsp_acc", metric_goal="max")
    Trainer(BertForPreTraining(config), task, cfg, {"model": config.to_dict()}).run()
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


@pytest.mark.parametrize("phase1_iters", [0, 6])  # 6: the resumed run finishes phase 1, then leaves it
def test_resume_after_an_interruption_repeats_the_uninterrupted_losses(tmp_path, phase1_iters):
    task, config = tiny_setup(dropout=0.1, phase1_iters=phase1_iters)  # dropout: the torch RNG must be restored
    uninterrupted = train_losses(task, config, tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        train_losses(InterruptAt(task, step=5), config, tmp_path / "b")
    resumed = train_losses(task, config, tmp_path / "b", resume=True)
    assert len(uninterrupted) == 8 and resumed == uninterrupted


# ---- bad corpora ---------------------------------------------------------------------------------------

def test_a_corpus_with_a_single_document_raises_naming_documents():
    documents = make_documents(n_docs=1)
    docs = tokenize_documents(documents, PositionTokenizer(documents))
    with pytest.raises(ValueError, match="at least 2"):
        PairSampler(docs, 32, CLS, SEP, PAD)


def test_a_data_file_with_too_few_documents_raises_before_training(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("A single paragraph,\nwith no blank line in it.\n")
    with pytest.raises(ValueError, match="document"):
        train_bert.main(["--data", str(path), "--out_dir", str(tmp_path / "out")])


def test_a_corpus_shorter_than_one_sequence_raises_naming_the_token_count():
    documents = ["a b", "c d"]
    docs = tokenize_documents(documents, PositionTokenizer(documents))
    with pytest.raises(ValueError, match="only 4 tokens"):
        PairSampler(docs, 32, CLS, SEP, PAD)


# ---- --init_from and --resume on real runs -------------------------------------------------------------

TINY_BERT = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--n_inner", "32", "--block_size", "32",
             "--max_seq_len", "32", "--tokenizer_vocab_size", "60", "--batch_size", "4", "--max_iters", "4",
             "--eval_interval", "4", "--eval_iters", "1", "--log_interval", "2", "--device", "cpu",
             "--progress", "false"]


@pytest.fixture
def bert_run(tmp_path, monkeypatch):
    """A tiny train_bert.py run on generated documents: (text file, out_dir)."""
    monkeypatch.setenv("MINILM_CACHE", str(tmp_path / "cache"))
    text = tmp_path / "docs.txt"
    text.write_text("\n\n".join(make_documents(n_docs=6, n_lines=30)) + "\n")
    train_bert.main(["--data", str(text), "--out_dir", str(tmp_path / "out"), *TINY_BERT])
    return text, tmp_path / "out"


def test_init_from_a_train_bert_checkpoint_starts_from_its_weights_and_tokenizer(bert_run, tmp_path):
    text, out = bert_run
    train_bert.main(["--data", str(text), "--out_dir", str(tmp_path / "second"), *TINY_BERT, "--max_iters", "1",
                     "--eval_interval", "1", "--init_from", str(out), "--lr", "1e-9"])
    first, _, _ = load_checkpoint(out / "best", with_train_state=False)
    second, _, _ = load_checkpoint(tmp_path / "second" / "ckpt", with_train_state=False)
    torch.testing.assert_close(second["bert.embeddings.word.weight"], first["bert.embeddings.word.weight"],
                               rtol=0, atol=1e-6)  # one step at lr 1e-9 barely moves them
    assert (tmp_path / "second" / "ckpt" / "tokenizer" / "vocab.txt").read_text() == \
        (out / "best" / "tokenizer" / "vocab.txt").read_text()


def test_resume_continues_with_the_checkpoint_tokenizer_and_model(bert_run):
    text, out = bert_run
    train_bert.main(["--data", str(text), "--out_dir", str(out), "--resume", "--max_iters", "6",
                     "--eval_interval", "2", "--eval_iters", "1", "--device", "cpu", "--progress", "false"])
    _, config, _ = load_checkpoint(out / "ckpt", with_train_state=False)
    assert config["step"] == 6 and config["model"]["n_embd"] == 16
