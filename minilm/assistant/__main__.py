"""python -m minilm.assistant: a customer-service assistant on chatterbot-corpus (docs/applications.md).

    python -m minilm.assistant                                  chat in the terminal (Ctrl-D or "quit" ends)
    python -m minilm.assistant --intent out/intent-minilm       ... naming each question's category too
    python -m minilm.assistant --rag                            SmolLM2 writes each answer from the nearest pairs
    python -m minilm.assistant --rag --knowledge out/kb --model FILE     ... from a built store, any chat model
    python -m minilm.assistant index --out out/kb               the store of Q/A pairs (--pairs my.jsonl / .csv)
    python -m minilm.assistant evaluate                         top-1 / top-5 against TF-IDF; the threshold
    python -m minilm.assistant evaluate --language chinese      what the uncased vocabulary makes of Chinese
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import ConfigError, run_command
from common.output_guard import guard_output
from data.assets import BASE_MODELS, base_model_folder, model_path
from data.chatterbot import read_language, unique_questions
from data.chatterbot_paraphrases import HELD_OUT_CATEGORIES, PARAPHRASES
from minilm.chat.load import load_chat_model
from minilm.finetune.checkpoints import load_finetuned
from minilm.training.cli import parse_args

from .assistant import THRESHOLD, Assistant, IntentClassifier
from .encoder import open_encoder
from .evaluation import retrieval_report
from .knowledge import INDEX_COMMAND, Knowledge, Pair, load_knowledge
from .pairs import read_pairs
from .rag import RagAssistant, Retriever
from .retrieval import EmbeddingIndex, TfidfIndex
from .vocabulary import vocabulary_coverage


@dataclass
class AssistantConfig:
    base: str = field(default="minilm-l6", metadata={"help": "the sentence encoder: minilm-l6 or a BERT folder"})
    intent: str | None = field(default=None, metadata={"help": "a finetune.py classify checkpoint that names "
                                                       "each question's category (e.g. out/intent-minilm)"})
    rag: bool = field(default=False, metadata={"help": "a chat model writes each answer from the --k nearest "
                                               "stored pairs (retrieval-augmented); without it: the stored answer"})
    model: str = field(default="smollm2", metadata={"help": "with --rag: the chat model (smollm2, a .gguf file, "
                                                    "a chat checkpoint or Hugging Face folder)"})
    knowledge: str | None = field(default=None, metadata={"help": "with --rag: a store built by `python -m "
                                                          "minilm.assistant index` (default: the corpus, "
                                                          "embedded now)"})
    k: int = field(default=3, metadata={"help": "with --rag: stored pairs put in the prompt"})
    max_new_tokens: int = field(default=80, metadata={"help": "with --rag: the longest answer, in tokens"})
    threshold: float | None = field(default=None, metadata={"help": "answer when the nearest stored question's "
                                    f"cosine similarity is at least this; below it, decline (default: {THRESHOLD}, "
                                    "or what --knowledge records)"})
    language: str = field(default="english", metadata={"help": "a language folder of the corpus"})
    corpus: str | None = field(default=None, metadata={"help": "a folder of language folders of .yml files "
                                                       "(default: the fetched chatterbot-corpus)"})

    def __post_init__(self):
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise ConfigError(f"--threshold is a cosine similarity, in [-1, 1]; got {self.threshold}")
        if self.k < 1 or self.max_new_tokens < 1:
            raise ConfigError(f"--k and --max_new_tokens must be at least 1; got {self.k} and {self.max_new_tokens}")


@dataclass
class IndexConfig:
    out: str = field(metadata={"help": "the folder to write the store into (vectors.safetensors, pairs.json)"})
    pairs: str | None = field(default=None, metadata={"help": "a .jsonl of {\"question\", \"answer\"} lines or a "
                                                      ".csv with question and answer columns (default: the corpus)"})
    base: str = field(default="minilm-l6", metadata={"help": "the sentence encoder: minilm-l6 or a BERT folder"})
    threshold: float = field(default=THRESHOLD, metadata={"help": "the cosine below which users of the store "
                                                          "decline; recorded in the store"})
    language: str = field(default="english", metadata={"help": "without --pairs: a language folder of the corpus"})
    corpus: str | None = field(default=None, metadata={"help": "without --pairs: a folder of language folders"})
    overwrite: bool = field(default=False, metadata={"help": "replace an --out this command did not write"})

    def __post_init__(self):
        if not -1.0 <= self.threshold <= 1.0:
            raise ConfigError(f"--threshold is a cosine similarity, in [-1, 1]; got {self.threshold}")


def encoder_of(spec: str):
    """The sentence encoder --base names, and the name a store records for it (an alias, or the folder's path)."""
    return open_encoder(model_path(spec), spec), spec if spec in BASE_MODELS else str(Path(spec).resolve())


def corpus_pairs(language: str, corpus: str | None) -> list[Pair]:
    """One pair per distinct question of the corpus, with its first answer (the one the assistant gives)."""
    return [Pair(q.text, q.answers[0]) for q in unique_questions(read_language(language, corpus))]


def index(cfg: IndexConfig) -> Path:
    out = guard_output(cfg.out, "--out", INDEX_COMMAND, inputs={"--pairs": cfg.pairs, "--corpus": cfg.corpus},
                       overwrite=cfg.overwrite)
    pairs = read_pairs(cfg.pairs) if cfg.pairs else corpus_pairs(cfg.language, cfg.corpus)
    encoder, name = encoder_of(cfg.base)
    Knowledge.build(encoder, name, pairs, cfg.threshold).save(out)
    print(f"wrote {out}: {len(pairs)} question/answer pairs embedded by {name}")
    return out


def open_intent(spec: str | None):
    if spec is None:
        return None
    model, tokenizer, config = load_finetuned(spec, resolve_alias=base_model_folder)
    if config["task"] != "classify" or not hasattr(tokenizer, "encode_plus"):
        raise ConfigError(f"--intent {spec}: expected a finetune.py classify checkpoint on a BERT "
                          "(python finetune.py --recipe intent-minilm)")
    return IntentClassifier(model, tokenizer, config["labels"], config["data"]["max_length"])


def open_rag(cfg: AssistantConfig) -> RagAssistant:
    """The retriever (a built store, or the corpus embedded now) and the chat model that writes the answers."""
    encoder, name = encoder_of(cfg.base)
    if cfg.knowledge is not None:
        knowledge = load_knowledge(cfg.knowledge)
    else:
        knowledge = Knowledge.build(encoder, name, corpus_pairs(cfg.language, cfg.corpus), THRESHOLD)
    retriever = Retriever(knowledge, encoder, cfg.k, cfg.threshold)  # threshold None: the store's
    return RagAssistant(retriever, load_chat_model(model_path(cfg.model)), cfg.max_new_tokens)


def questions_asked():
    """Each line typed, until Ctrl-D (or the end of piped input) or "quit"."""
    while True:
        try:
            text = input("> ").strip()
        except EOFError:
            print()
            return
        if text.lower() in ("quit", "exit"):
            return
        if text:
            yield text


def chat(cfg: AssistantConfig) -> None:
    if cfg.rag:
        return chat_rag(cfg)
    questions = unique_questions(read_language(cfg.language, cfg.corpus))
    encoder, _ = encoder_of(cfg.base)
    threshold = THRESHOLD if cfg.threshold is None else cfg.threshold
    assistant = Assistant(EmbeddingIndex(encoder, [q.text for q in questions]), questions, threshold,
                          open_intent(cfg.intent))
    print(f"{len(questions)} known questions. Ask one (Ctrl-D or 'quit' to stop).")
    for text in questions_asked():
        reply = assistant.reply(text)
        intent = f"[{reply.intent}] " if reply.intent else ""
        print(f"{intent}{reply.text}\n    ({reply.source}; nearest {reply.matched!r} at {reply.score:.2f})")


def chat_rag(cfg: AssistantConfig) -> None:
    assistant = open_rag(cfg)
    intent = open_intent(cfg.intent)
    print(f"{len(assistant.retriever.knowledge.pairs)} stored pairs; {assistant.chat.source} writes the answers. "
          "Ask one (Ctrl-D or 'quit' to stop).")
    for text in questions_asked():
        reply = assistant.reply(text)
        label = f"[{intent(text)[0]}] " if intent is not None else ""
        cited = "; ".join(f"{s['title']!r} {s['score']:.2f}" for s in reply.sources) or "nothing stored is close enough"
        print(f"{label}{reply.text}\n    [from: {cited}]")


def evaluate(cfg: AssistantConfig) -> dict:
    """Retrieval on the reworded questions, MiniLM against TF-IDF; the threshold; the intent model on them."""
    questions = unique_questions(read_language(cfg.language, cfg.corpus))
    encoder, _ = encoder_of(cfg.base)
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
    command = argv.pop(0) if argv[:1] in (["chat"], ["evaluate"], ["index"]) else "chat"
    config = IndexConfig if command == "index" else AssistantConfig
    cfg = parse_args({}, {"assistant": config}, argv, prog=f"python -m minilm.assistant {command}",
                     description=__doc__.split("\n")[0])["assistant"]
    return {"chat": chat, "evaluate": evaluate, "index": index}[command](cfg)


if __name__ == "__main__":
    sys.exit(run_command(main))
