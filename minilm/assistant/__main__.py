"""python -m minilm.assistant: a customer-service assistant on chatterbot-corpus (docs/applications.md).

    python -m minilm.assistant                                  chat in the terminal (Ctrl-D or "quit" ends)
    python -m minilm.assistant --intent out/intent-minilm       ... naming each question's category too
    python -m minilm.assistant --fallback out/gpt-qa            ... a GPT answers what nothing known is close to
    python -m minilm.assistant evaluate                         top-1 / top-5 against TF-IDF; the threshold
    python -m minilm.assistant evaluate --language chinese      what the uncased vocabulary makes of Chinese
"""

import sys
from dataclasses import dataclass, field

from common.errors import ConfigError, run_command
from data.assets import BASE_MODELS, base_model_folder
from data.chatterbot import read_language, unique_questions
from data.chatterbot_paraphrases import HELD_OUT_CATEGORIES, PARAPHRASES
from data.tokenizers import named_tokenizer
from minilm.finetune.checkpoints import base_folder, load_base, load_finetuned, open_model
from minilm.training.cli import parse_args

from .assistant import Assistant, GPTFallback, IntentClassifier
from .encoder import SentenceEncoder
from .evaluation import retrieval_report
from .retrieval import EmbeddingIndex, TfidfIndex
from .vocabulary import vocabulary_coverage

# Tuned by `python -m minilm.assistant evaluate` on the validation half (docs/applications.md).
THRESHOLD = 0.55


@dataclass
class AssistantConfig:
    base: str = field(default="minilm-l6", metadata={"help": "the sentence encoder: minilm-l6 or a BERT folder"})
    intent: str | None = field(default=None, metadata={"help": "a finetune.py classify checkpoint that names "
                                                       "each question's category (e.g. out/intent-minilm)"})
    fallback: str | None = field(default=None, metadata={"help": "a GPT (train_gpt.py out_dir or checkpoint) that "
                                                         "answers when no known question is close enough"})
    threshold: float = field(default=THRESHOLD, metadata={"help": "answer from the corpus when the nearest "
                             "question's cosine similarity is at least this"})
    language: str = field(default="english", metadata={"help": "a language folder of the corpus"})
    corpus: str | None = field(default=None, metadata={"help": "a folder of language folders of .yml files "
                                                       "(default: the fetched chatterbot-corpus)"})

    def __post_init__(self):
        if not -1.0 <= self.threshold <= 1.0:
            raise ConfigError(f"--threshold is a cosine similarity, in [-1, 1]; got {self.threshold}")


def open_encoder(spec: str) -> SentenceEncoder:
    base = load_base(base_model_folder(spec) if spec in BASE_MODELS else base_folder(spec), alias=None)
    if not hasattr(base.tokenizer, "encode_plus"):
        raise ConfigError(f"--base {spec}: the sentence encoder must be a BERT with a WordPiece tokenizer")
    return SentenceEncoder(base.backbone, base.tokenizer)


def open_intent(spec: str | None):
    if spec is None:
        return None
    model, tokenizer, config = load_finetuned(spec, resolve_alias=base_model_folder)
    if config["task"] != "classify" or not hasattr(tokenizer, "encode_plus"):
        raise ConfigError(f"--intent {spec}: expected a finetune.py classify checkpoint on a BERT "
                          "(python finetune.py --recipe intent-minilm)")
    return IntentClassifier(model, tokenizer, config["labels"], config["data"]["max_length"])


def open_fallback(spec: str | None):
    if spec is None:
        return None
    gpt, tokenizer = open_model(spec, flag="--fallback", resolve_alias=base_model_folder,
                                gpt2_tokenizer=lambda: named_tokenizer("gpt2"))
    if not hasattr(gpt, "generate"):
        raise ConfigError(f"--fallback {spec}: expected a GPT (a train_gpt.py out_dir or checkpoint)")
    return GPTFallback(gpt, tokenizer)


def chat(cfg: AssistantConfig) -> None:
    questions = unique_questions(read_language(cfg.language, cfg.corpus))
    encoder = open_encoder(cfg.base)
    assistant = Assistant(EmbeddingIndex(encoder, [q.text for q in questions]), questions, cfg.threshold,
                          open_intent(cfg.intent), open_fallback(cfg.fallback))
    print(f"{len(questions)} known questions. Ask one (Ctrl-D or 'quit' to stop).")
    while True:
        try:
            text = input("> ").strip()
        except EOFError:  # Ctrl-D, or the end of piped input
            print()
            break
        if text.lower() in ("quit", "exit"):
            break
        if text:
            reply = assistant.reply(text)
            intent = f"[{reply.intent}] " if reply.intent else ""
            print(f"{intent}{reply.text}\n    ({reply.source}; nearest {reply.matched!r} at {reply.score:.2f})")


def evaluate(cfg: AssistantConfig) -> dict:
    """Retrieval on the reworded questions, MiniLM against TF-IDF; the threshold; the intent model on them."""
    questions = unique_questions(read_language(cfg.language, cfg.corpus))
    encoder = open_encoder(cfg.base)
    results = {"vocabulary": vocabulary_coverage(encoder.tokenizer, [q.text for q in questions])}
    print(f"{cfg.language}: {len(questions)} unique questions; {results['vocabulary']['unk_share']:.1%} of their "
          f"pieces are [UNK]; {results['vocabulary']['indistinct']:.1%} encode to exactly the ids of another one")
    if cfg.language != "english":
        print("(the reworded questions are English: retrieval is scored for --language english only)")
        return results
    indexed = [q for q in questions if q.category not in HELD_OUT_CATEGORIES]
    by_text = {q.text: q for q in indexed}
    queries = [(text, by_text[original]) for text, original in PARAPHRASES]
    unanswerable = [q.text for q in questions if q.category in HELD_OUT_CATEGORIES]
    indexes = {"minilm": EmbeddingIndex(encoder, [q.text for q in indexed]), "tfidf": TfidfIndex([q.text for q in indexed])}
    print(f"index: {len(indexed)} questions; held out: {len(queries)} reworded, {len(unanswerable)} unanswerable "
          f"({', '.join(HELD_OUT_CATEGORIES)})")
    for name, index in indexes.items():
        results[name] = retrieval_report(index, indexed, queries, unanswerable)
        r = results[name]
        print(f"{name:7s} top-1 {r['top1']:.1%}  top-5 {r['top5']:.1%}  threshold {r['threshold']:.3f} (validation)"
              f"  test: balanced accuracy {r['test_balanced']:.1%}, right replies {r['test_right']:.1%}")
    intent = open_intent(cfg.intent)
    if intent is not None:
        results["intent_reworded"] = sum(intent(text)[0] == target.category for text, target in queries) / len(queries)
        print(f"intent on the reworded questions: {results['intent_reworded']:.1%}")
    return results


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv[:1] in (["chat"], ["evaluate"]) else "chat"
    cfg = parse_args({}, {"assistant": AssistantConfig}, argv, prog=f"python -m minilm.assistant {command}",
                     description=__doc__.split("\n")[0])["assistant"]
    return chat(cfg) if command == "chat" else evaluate(cfg)


if __name__ == "__main__":
    sys.exit(run_command(main))
