"""Pruning (minilm/compress/): heads_per_layer in the checkpoint's record, head importance from gate gradients, physical
head removal (equal to the unpruned model with those heads switched off), a pruned model that saves, loads
and resumes, and magnitude pruning of the MLP with torch.nn.utils.prune."""

import copy
import signal

import pytest
import torch

from common.errors import ConfigError, run_command
from compress_fixtures import finetuned_classifier
from minilm import GPT, Bert, BertConfig, GPTConfig
from minilm.compress import (build_model, gated_heads, head_importance, least_important, mlp_sparsity, model_record,
                             prune_heads, prune_mlp)
from minilm.compress.__main__ import main as compress
from minilm.finetune.checkpoints import load_finetuned
from minilm.training import resume
from minilm.training.trainer import Task, TrainConfig, Trainer, seed_everything

pytestmark = pytest.mark.usefixtures("one_thread")
VOCAB = 20


def tiny(kind: str, attn_impl: str = "manual", **overrides):
    torch.manual_seed(0)
    if kind == "gpt":
        return GPT(GPTConfig(vocab_size=VOCAB, block_size=16, n_layer=3, n_head=4, n_embd=32, attn_impl=attn_impl,
                             **overrides)).eval()
    return Bert(BertConfig(vocab_size=VOCAB, block_size=16, n_layer=3, n_head=4, n_embd=32, n_inner=64, dropout=0.0,
                           attn_dropout=0.0, attn_impl=attn_impl, **overrides)).eval()


def hidden(model, ids, mask=None):
    return model(ids, attention_mask=mask)[0]  # GPT: logits; Bert: hidden states


PLAN = {0: [1, 3], 1: [0, 1, 2, 3], 2: [2]}  # layer 1 loses every head


def switched_off(plan, n_layer=3, n_head=4):
    gates = [torch.ones(n_head) for _ in range(n_layer)]
    for layer, heads in plan.items():
        gates[layer][heads] = 0.0
    return gates


@pytest.mark.parametrize("attn_impl", ["manual", "sdpa"])
@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_a_pruned_model_equals_the_unpruned_one_with_those_heads_switched_off(kind, attn_impl):
    model = tiny(kind, attn_impl)
    ids, mask = torch.randint(0, VOCAB, (2, 11)), torch.ones(2, 11, dtype=torch.long)
    mask[1, 8:] = 0  # padding in the second sequence
    with gated_heads(model, switched_off(PLAN)):
        expected = hidden(model, ids, mask)
    pruned = copy.deepcopy(model)
    assert prune_heads(pruned, PLAN) == [2, 0, 3]
    assert torch.allclose(hidden(pruned, ids, mask), expected, atol=1e-5)
    assert not torch.allclose(hidden(model, ids, mask), expected, atol=1e-3)  # the heads did matter


def test_a_pruned_gpt_generates_with_the_kv_cache_as_without():
    model = tiny("gpt")
    prune_heads(model, PLAN)
    prompt = torch.randint(0, VOCAB, (1, 3))
    assert torch.equal(model.generate(prompt, 8, temperature=0), model.generate(prompt, 8, temperature=0,
                                                                                  use_cache=False))


def test_pruned_matrices_are_smaller_and_the_record_holds_the_heads_kept():
    model = tiny("bert")
    prune_heads(model, {0: [0, 2]})
    attn = model.blocks[0].attn
    assert attn.q_proj.weight.shape == (16, 32) and attn.out_proj.weight.shape == (32, 16)
    assert model_record(model)["heads_per_layer"] == [2, 4, 4]
    rebuilt = build_model(Bert, BertConfig, model_record(model))
    assert rebuilt.blocks[0].attn.v_proj.weight.shape == (16, 32)


def test_an_unpruned_models_record_is_its_config():
    model = tiny("gpt")
    assert model_record(model) == model.config.to_dict()


@pytest.mark.parametrize("counts, message", [([4, 4], "one head count per layer"), ([4, 5, 4], "between 0 and n_head"),
                                             ([4, -1, 4], "between 0 and n_head"), ([4, "4", 4], "between 0 and")])
def test_heads_per_layer_is_validated_with_a_clear_error(counts, message):
    record = {**tiny("gpt").config.to_dict(), "heads_per_layer": counts}
    with pytest.raises(ValueError, match=message):
        build_model(GPT, GPTConfig, record)


@pytest.mark.parametrize("plan, message", [({0: [0, 1, 2, 3, 0]}, "only 4"), ({0: [4]}, "no head 4"),
                                           ({3: [0]}, "has 3 layers"), ({0: [1, 1]}, "named twice")])
def test_a_plan_the_model_cannot_follow_is_refused(plan, message):
    with pytest.raises(ConfigError, match=message):
        prune_heads(tiny("gpt"), plan)


def test_head_importance_is_the_mean_absolute_gate_gradient_per_example():
    model = tiny("gpt").double()  # float64, for finite differences as exact as the gradient
    batches = [{"input_ids": torch.randint(0, VOCAB, (3, 10))} for _ in range(2)]

    def loss_of(m, batch):
        ids = batch["input_ids"]
        return m(ids[:, :-1], targets=ids[:, 1:])[1]

    scores = head_importance(model, batches, loss_of)
    # By finite differences: each example's loss with one head's gate moved by ±eps.
    eps, expected = 1e-4, torch.zeros(3, 4, dtype=torch.float64)
    examples = [ids[None] for batch in batches for ids in batch["input_ids"]]
    for layer in range(3):
        for head in range(4):
            for ids in examples:
                losses = []
                for sign in (1, -1):
                    gates = [torch.ones(4, dtype=torch.float64) for _ in range(3)]
                    gates[layer][head] += sign * eps
                    with torch.no_grad(), gated_heads(model, gates):
                        losses.append(loss_of(model, {"input_ids": ids}))
                expected[layer, head] += abs(losses[0] - losses[1]) / (2 * eps)
    expected = expected / expected.norm(dim=1, keepdim=True)
    assert torch.allclose(torch.stack(scores).double(), expected, atol=1e-5)


def test_the_least_important_share_is_ranked_across_layers():
    importance = [torch.tensor([0.9, 0.1, 0.5]), torch.tensor([0.2, 0.8, 0.05])]
    assert least_important(importance, 0.5) == {0: [1], 1: [0, 2]}
    assert least_important(importance, 0.0) == {}


class WindowTask(Task):
    """Next-token windows of a fixed random stream (both splits), drawn from the trainer's generator."""

    tokens = torch.randint(VOCAB, (500,), generator=torch.Generator().manual_seed(0))

    def __init__(self, interrupt_at=None):
        self.interrupt_at, self.calls, self.losses = interrupt_at, 0, []

    def get_batch(self, split, batch_size, generator):
        starts = torch.randint(len(self.tokens) - 9, (batch_size,), generator=generator).tolist()
        windows = torch.stack([self.tokens[s:s + 9] for s in starts])
        return {"input_ids": windows[:, :-1], "targets": windows[:, 1:]}

    def loss(self, model, batch):
        loss = model(batch["input_ids"], targets=batch["targets"])[1]
        if model.training:
            self.calls += 1
            if self.calls == self.interrupt_at:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C: the step finishes, then the run stops
            self.losses.append(loss.item())
        return loss


def train_pruned(out_dir, model, task, **overrides):
    cfg = TrainConfig(out_dir=str(out_dir), max_iters=6, batch_size=4, lr=1e-2, warmup_iters=1, eval_interval=2,
                      eval_iters=1, log_interval=1, device="cpu", progress=False, seed=0, **overrides)
    seed_everything(0)
    trainer = Trainer(model.train(), task, cfg, {"model_class": "GPT", "model": model_record(model)})
    trainer.run()
    return trainer


def test_a_pruned_gpt_trains_saves_and_resumes_from_its_own_config(tmp_path):
    pruned = tiny("gpt")
    prune_heads(pruned, PLAN)
    straight = WindowTask()
    train_pruned(tmp_path / "straight", copy.deepcopy(pruned), straight)
    first = WindowTask(interrupt_at=4)
    with pytest.raises(KeyboardInterrupt):
        train_pruned(tmp_path / "resumed", copy.deepcopy(pruned), first)
    saved = resume.saved_run_config(tmp_path / "resumed", "GPT")  # what train_gpt.py --resume rebuilds from
    assert saved["model"]["heads_per_layer"] == [2, 0, 3]
    second = WindowTask()
    train_pruned(tmp_path / "resumed", build_model(GPT, GPTConfig, saved["model"]), second, resume=True)
    assert first.losses + second.losses == straight.losses


def test_mlp_magnitude_pruning_zeroes_the_smallest_weights_and_keeps_the_usual_keys():
    model = tiny("bert")
    keys = set(model.state_dict())
    fc_in = model.blocks[0].mlp.fc_in.weight.detach().clone()
    prune_mlp(model, 0.5)
    assert mlp_sparsity(model) == pytest.approx(0.5, abs=0.01)
    assert set(model.state_dict()) == keys  # prune.remove baked the mask in: no weight_orig, no weight_mask
    kept = model.blocks[0].mlp.fc_in.weight != 0
    assert fc_in[kept].abs().min() >= fc_in[~kept].abs().max()


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return finetuned_classifier(tmp_path_factory.mktemp("classifier"))


def test_the_prune_command_ranks_heads_and_writes_a_checkpoint_load_finetuned_rebuilds(classifier, tmp_path):
    out = compress(["prune", str(classifier), str(tmp_path / "pruned"), "--share", "0.5", "--mlp", "0.3"])
    model, _, config = load_finetuned(out)
    heads = config["backbone"]["model"]["heads_per_layer"]
    assert sum(heads) == 2 and [block.attn.n_head for block in model.backbone.blocks] == heads
    assert mlp_sparsity(model) == pytest.approx(0.3, abs=0.01)


def test_pruning_more_heads_than_a_layer_has_is_refused_by_the_command(classifier, tmp_path, capsys):
    assert run_command(compress, ["prune", str(classifier), str(tmp_path / "pruned"), "--heads", "0:0,1,0"]) == 2
    assert "asked to prune 3 heads but the layer has only 2" in capsys.readouterr().err
    assert not (tmp_path / "pruned").exists()


def test_a_share_of_one_or_more_is_refused_before_any_work(classifier, tmp_path, capsys):
    assert run_command(compress, ["prune", str(classifier), str(tmp_path / "pruned"), "--share", "1.5"]) == 2
    assert "--share is a share" in capsys.readouterr().err
