"""The named recipes of finetune.py (`--recipe NAME`) and the learning rate each method starts from.

Like minilm/training/presets.py for train_gpt.py and train_bert.py: plain tables, read by finetune.py's
command line. Timings and results of each recipe: docs/finetuning.md.
"""

# Each recipe sets data, training and method fields; any flag overrides them. Timings: docs/finetuning.md.
RECIPES = {
    "sentiment-minilm": {
        # all-MiniLM-L6-v2 was trained to give mean-pooled sentence vectors; its pooler never trained.
        "data": dict(task="classify", base="minilm-l6", data="sentiment-pang-lee", text_column="1",
                     label_column="0", max_length=64, pooling="mean"),
        "peft": dict(lora_targets="q_proj,k_proj,v_proj,out_proj"),
        "train": dict(out_dir="out/sentiment-minilm", max_iters=150, batch_size=32, warmup_iters=15,
                      eval_interval=50, eval_iters=4, log_interval=25, weight_decay=0.01, patience=3,
                      metric="val_acc", metric_goal="max"),
    },
    "spam-minilm": {  # the second classification set: 250 e-mails, long, so cut to 128 tokens
        "data": dict(task="classify", base="minilm-l6", data="spam-apache", text_column="1", label_column="0",
                     max_length=128, val_fraction=0.2, pooling="mean"),
        "train": dict(out_dir="out/spam-minilm", max_iters=60, batch_size=16, warmup_iters=6, eval_interval=20,
                      eval_iters=4, log_interval=10, weight_decay=0.01, patience=2, metric="val_acc",
                      metric_goal="max"),
    },
    "pos-minilm": {
        "data": dict(task="tag", base="minilm-l6", data="pos-oanc", max_examples=3000, max_length=96),
        "train": dict(out_dir="out/pos-minilm", max_iters=150, batch_size=32, warmup_iters=15,
                      eval_interval=50, eval_iters=4, log_interval=25, weight_decay=0.01, patience=3,
                      metric="val_acc", metric_goal="max"),
    },
    "sentiment-distill": {  # DistilBERT-style: blocks 0, 2, 4 of the full fine-tune (docs/distillation.md)
        "data": dict(task="classify", data="sentiment-pang-lee", text_column="1", label_column="0", max_length=64,
                     pooling="mean"),
        "distill": dict(teacher="out/sentiment-minilm", student_layers="0,2,4", temperature=2.0),
        "train": dict(out_dir="out/sentiment-distill", max_iters=150, batch_size=32, warmup_iters=15,
                      eval_interval=50, eval_iters=4, log_interval=25, weight_decay=0.01, patience=3,
                      metric="val_acc", metric_goal="max"),
    },
    "sentiment-distill-few": {  # the few-label regime: 500 labels, the other 3,100 sentences labelled by the teacher
        "data": dict(task="classify", data="sentiment-pang-lee", text_column="1", label_column="0", max_length=64,
                     pooling="mean"),
        # 64 transfer sentences a step (150 steps show each of the 3,100 about 3 times), and the teacher's
        # probabilities weigh 3x the 500 labels, which alone over-fit (docs/distillation.md, Results)
        "distill": dict(teacher="out/sentiment-minilm", student_layers="0,2,4", temperature=2.0, student_init="base",
                        labelled_examples=500, transfer_batch=64, kd_weight=3.0),
        "train": dict(out_dir="out/sentiment-distill-few", max_iters=150, batch_size=32, warmup_iters=15,
                      eval_interval=50, eval_iters=4, log_interval=25, weight_decay=0.01, patience=3,
                      metric="val_acc", metric_goal="max"),
    },
    "ner-minilm": {  # named entities in tweets (WNUT-16 style, 10 types); docs/applications.md
        "data": dict(task="tag", base="minilm-l6", data="ner-wnut16", max_length=64),
        "train": dict(out_dir="out/ner-minilm", max_iters=250, batch_size=32, warmup_iters=25,
                      eval_interval=50, eval_iters=2, log_interval=25, weight_decay=0.01, patience=3,
                      metric="val_f1", metric_goal="max"),
    },
    "intent-minilm": {  # the category of a customer's question (chatterbot-corpus, 21 English categories)
        "data": dict(task="classify", base="minilm-l6", data="chatterbot-intents", max_length=48,
                     val_fraction=0.2, pooling="mean"),
        "train": dict(out_dir="out/intent-minilm", max_iters=150, batch_size=32, warmup_iters=15,
                      eval_interval=25, eval_iters=2, log_interval=25, weight_decay=0.01, patience=3,
                      metric="val_acc", metric_goal="max"),
    },
    "assistant-smollm2": {  # instruction tuning: SmolLM2-135M-Instruct learns the chatterbot-corpus answers
        # 1,178 one-turn conversations, ~54 tokens each with SmolLM2's default system message (p90 69, max 347):
        # 128 tokens keeps 97% of them. A LoRA step on 8 of them costs ~30 CPU-seconds (float32; the whole 135M
        # model runs forward and back although 1.8% of its numbers train), ~20 s on 2 cores, and evaluating 4%
        # held out (47) ~45 s; so 15 minutes hold 32 steps (256 conversations, a fifth of the set), an evaluation
        # before and after, and loading. LoRA at 1e-3 on every Linear moves the answers' loss within a few steps
        # (docs/finetuning.md, "Instruction tuning").
        "data": dict(task="chat", base="smollm2", data="chatterbot-chat", max_length=128, val_fraction=0.04),
        "peft": dict(method="lora", lora_targets="q_proj,k_proj,v_proj,out_proj,gate_proj,up_proj,down_proj"),
        "train": dict(out_dir="out/assistant-smollm2", max_iters=32, batch_size=8, warmup_iters=3,
                      eval_interval=32, eval_iters=1, log_interval=4, metric="val_loss", metric_goal="min"),
    },
    "shakespeare-lm": {
        "data": dict(task="lm", base="out/gpt-small", data=None, max_length=128),
        "train": dict(out_dir="out/shakespeare-lm", max_iters=300, batch_size=16, warmup_iters=0,
                      eval_interval=100, eval_iters=20, log_interval=50, patience=2),
    },
}
# The learning rate each method starts from unless --lr is given: the whole model moves in small
# steps; a few fresh matrices need large ones.
METHOD_LR = {"full": 5e-5, "freeze": 1e-3, "lora": 2e-3, "adalora": 2e-3, "adapter": 1e-3, "prefix": 3e-3}
# Instruction tuning nudges a model that already chats: the whole of it in small steps (below classification's
# 5e-5, as it should keep what it knows), LoRA's fresh matrices in larger ones.
CHAT_METHOD_LR = {"full": 3e-5, "freeze": 3e-4, "lora": 1e-3, "adalora": 2e-3, "adapter": 1e-3, "prefix": 3e-3}
LM_METHOD_LR = {"full": 3e-4, "freeze": 3e-4, "lora": 1e-3, "adalora": 2e-3, "adapter": 1e-3, "prefix": 3e-3}
# A fresh head with many labels needs larger steps (pos-minilm, 45 tags, at 1e-4: 87.1%).
RECIPE_METHOD_LR = {"pos-minilm": {"full": 3e-4}, "ner-minilm": {"full": 3e-4}, "intent-minilm": {"full": 3e-4},
                    "sentiment-distill": {"full": 1e-4},  # a 3-block student moves further from its start
                    "sentiment-distill-few": {"full": 1e-4}}


def derived_defaults(values: dict, recipe: str | None, given: set[str]) -> dict:
    """The defaults that depend on other choices (a flag given on the command line still wins): the
    learning rate per method (and recipe), AdaLoRA's schedule per max_iters and, without a recipe, the
    metric that picks the best checkpoint per task. --help shows them."""
    by_task = {"lm": LM_METHOD_LR, "chat": CHAT_METHOD_LR}
    table = {**by_task.get(values["task"], METHOD_LR), **RECIPE_METHOD_LR.get(recipe, {})}
    tinit = values["adalora_tinit"] if "adalora_tinit" in given else values["max_iters"] // 10
    derived = {"lr": table[values["method"]], "adalora_tinit": tinit,
               "adalora_tfinal": max(values["max_iters"] * 4 // 5, tinit + 1)}
    if recipe is None:  # a recipe names its metric; a tagging set's BIO tags switch val_acc to val_f1 later
        lm = values["task"] in ("lm", "chat")  # the models that write text: the loss on what they write
        derived["metric"], derived["metric_goal"] = ("val_loss", "min") if lm else ("val_acc", "max")
    return derived
