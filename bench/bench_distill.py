"""A distilled student against its teacher: parameters, size on disk, CPU latency per sentence and held-out
accuracy, all in the same run (docs/distillation.md).

Latency: one sentence at a time (batch 1, no padding), each held-out sentence through every model in
turn, the order of the models alternating from one sentence to the next, so that whatever else runs on
the machine slows them alike; the median per sentence is reported, and ratio = model / teacher (below 1:
faster). Accuracy: the held-out split the checkpoints were trained without (their config.json names it);
"agrees with teacher": the share of those sentences on which a model picks the teacher's label.

    python -m bench.bench_distill --teacher out/sentiment-minilm --models out/sentiment-distill
    python -m bench.bench_distill --teacher out/sentiment-minilm --models out/sentiment-distill \\
        out/sentiment-student-ce --threads 2 --sentences 400
"""

import argparse
import statistics
import time
from pathlib import Path

import torch

from data.assets import ASSETS, base_model_folder, fetch
from data.finetune_data import held_out_split, read_classification_file, subsample
from minilm.finetune.encode import encode_text
from data.tokenizers import named_tokenizer
from minilm.finetune.checkpoints import load_finetuned
from minilm.finetune.tasks import pad_batch


def load(folder: str):
    """(model in eval mode, tokenizer, config, the folder holding model.safetensors)."""
    model, tokenizer, config = load_finetuned(folder, resolve_alias=base_model_folder,
                                              gpt2_tokenizer=lambda: named_tokenizer("gpt2"))
    weights = Path(folder) / "best" if (Path(folder) / "best").is_dir() else Path(folder)
    return model, tokenizer, config, weights


def held_out(config: dict):
    """The validation examples of the run that wrote config (as finetune.py holds them out)."""
    data = config["data"]

    def read(name):
        path = name if Path(name).exists() or name not in ASSETS else fetch(name)
        return read_classification_file(path, data["text_column"], data["label_column"], data["text_b_column"])

    if data["val_data"] is not None:
        return read(data["val_data"])
    examples = read(data["data"])
    if data["max_examples"]:
        examples = subsample(examples, data["max_examples"])
    return held_out_split(examples, data["val_fraction"])[1]


def encoded(examples, tokenizer, config: dict) -> list[dict]:
    label_ids = {label: i for i, label in enumerate(config["labels"])}
    rows = []
    for example in examples:
        row = encode_text(tokenizer, "bert", example.text, None, config["data"]["max_length"])
        rows.append({"input_ids": row["input_ids"], "token_type_ids": row["token_type_ids"],
                     "labels": label_ids[example.label]})
    return rows


@torch.no_grad()
def predictions(model, rows: list[dict], batch_size: int = 64) -> torch.Tensor:
    """The label id the model picks for each row: (len(rows),)."""
    picked = []
    for start in range(0, len(rows), batch_size):
        batch = pad_batch(rows[start:start + batch_size], pad_id=0)
        logits, _ = model(**batch)  # (B, num_labels)
        picked.append(logits.argmax(dim=-1))
    return torch.cat(picked)


@torch.no_grad()
def latencies(models: dict, rows: list[dict], warmup: int = 10) -> dict[str, list[float]]:
    """Seconds per sentence for each model, batch 1; the models take turns, in alternating order."""
    inputs = [(torch.tensor([r["input_ids"]]), torch.tensor([r["token_type_ids"]])) for r in rows]
    for ids, types in inputs[:warmup]:
        for model in models.values():
            model(ids, token_type_ids=types)
    times = {name: [] for name in models}
    for i, (ids, types) in enumerate(inputs):
        order = list(models.items()) if i % 2 == 0 else list(reversed(models.items()))
        for name, model in order:
            start = time.perf_counter()
            model(ids, token_type_ids=types)
            times[name].append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", required=True, help="the teacher's finetune.py out_dir (or best/)")
    parser.add_argument("--models", nargs="+", required=True, help="students (finetune.py out_dirs) to compare")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the 2-core figure: 2)")
    parser.add_argument("--sentences", type=int, default=400, help="held-out sentences timed (accuracy: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    loaded = {name: load(name) for name in [args.teacher, *args.models]}
    _, tokenizer, config, _ = loaded[args.teacher]
    rows = encoded(held_out(config), tokenizer, config)
    models = {name: model for name, (model, _, _, _) in loaded.items()}
    times = latencies(models, rows[:args.sentences])
    teacher_ms = 1000 * statistics.median(times[args.teacher])
    print(f"{len(rows)} held-out sentences (accuracy), {min(args.sentences, len(rows))} timed one at a time, "
          f"{torch.get_num_threads()} threads")
    gold = torch.tensor([r["labels"] for r in rows])
    picked = {name: predictions(model, rows) for name, model in models.items()}
    print(f"{'model':40s} {'blocks':>6s} {'parameters':>12s} {'MB on disk':>10s} {'ms/sentence':>11s} "
          f"{'ratio':>6s} {'accuracy':>8s} {'agrees with teacher':>19s}")
    for name, (model, _, _, weights) in loaded.items():
        ms = 1000 * statistics.median(times[name])
        megabytes = (weights / "model.safetensors").stat().st_size / 1e6
        accuracy = (picked[name] == gold).float().mean().item()
        agreement = (picked[name] == picked[args.teacher]).float().mean().item()
        print(f"{name:40s} {model.backbone.config.n_layer:6d} {sum(p.numel() for p in model.parameters()):12,d} "
              f"{megabytes:10.1f} {ms:11.2f} {ms / teacher_ms:6.2f} {accuracy:8.2%} {agreement:19.2%}")


if __name__ == "__main__":
    main()
