"""The customer-service corpus: chatterbot-corpus's question/answer pairs, read from its YAML files.

Each file is one category of one language (data/assets.py fetches the folder, `chatterbot-corpus`):

    categories:
    - tech support
    conversations:
    - - My system is overheating.                                  the question
      - Ensure air vents aren't blocked and clean any dust.        its answer(s): the rest of the list

A question may appear several times (in one file or in two); `unique_questions` merges them: one
question, every answer it was given, the categories it came from (the first is its intent label).

    python -m data.chatterbot                              count questions per English category
    python -m data.chatterbot --language chinese
    python -m data.chatterbot --qa_text qa.txt             "Q: ... / A: ..." lines, for train_gpt.py --data
"""

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from common.atomic import write_text_atomic
from common.errors import run_command
from common.output_guard import FILE, guard_output

from .assets import cache_dir, fetch
from .finetune_data import FinetuneDataError

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser when PyYAML has it: ~10x faster


@dataclass
class Conversation:
    question: str
    answers: list[str]
    category: str  # the file's name: tech_support for tech_support.yml


@dataclass
class Question:
    text: str
    answers: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    @property
    def category(self) -> str:
        return self.categories[0]


def read_conversations(path) -> list[Conversation]:
    """The conversations of one YAML file; a file without a `conversations:` list is an error naming it."""
    path = Path(path)
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except yaml.YAMLError as err:
        raise FinetuneDataError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(document, dict) or not isinstance(document.get("conversations"), list):
        raise FinetuneDataError(f"{path}: no `conversations:` list; a chatterbot file holds `categories:` and "
                                "`conversations:`, a list of [question, answer, ...] lists")
    conversations, skipped = [], []
    for number, turns in enumerate(document["conversations"], start=1):
        if not isinstance(turns, list) or len(turns) < 2:  # e.g. a question and answer that YAML read as one string
            skipped.append(number)
            continue
        question, *answers = (str(turn).strip() for turn in turns)  # YAML reads `- yes` as True, `- 42` as 42
        conversations.append(Conversation(question, answers, path.stem))
    if skipped:
        print(f"note: {path.name}: skipped conversation(s) {', '.join(map(str, skipped))}: not a list of a "
              "question and its answers")
    return conversations


def read_language(language: str = "english", root=None) -> list[Conversation]:
    """Every conversation of one language folder (default: the fetched corpus), files in name order."""
    folder = Path(root or fetch("chatterbot-corpus")) / language
    files = sorted(folder.glob("*.yml"))
    if not files:
        known = sorted(p.name for p in folder.parent.iterdir() if p.is_dir()) if folder.parent.is_dir() else []
        raise FinetuneDataError(f"{folder}: no .yml files; languages: {', '.join(known) or 'none found'}")
    return [conversation for path in files for conversation in read_conversations(path)]


def unique_questions(conversations: list[Conversation]) -> list[Question]:
    """One Question per distinct question text, in first-seen order, with all its answers and categories."""
    merged: dict[str, Question] = {}
    for conversation in conversations:
        question = merged.setdefault(conversation.question, Question(conversation.question))
        question.answers += [a for a in conversation.answers if a not in question.answers]
        if conversation.category not in question.categories:
            question.categories.append(conversation.category)
    return list(merged.values())


def write_intents_file(language: str = "english") -> Path:
    """A .jsonl file of {"text": question, "label": category}, one per unique question, for finetune.py
    (--data chatterbot-intents). It is derived from the fetched corpus and kept in the cache, not the repo."""
    questions = unique_questions(read_language(language))
    path = cache_dir() / "derived" / f"chatterbot-intents-{language}.jsonl"
    write_text_atomic(path, "".join(json.dumps({"text": q.text, "label": q.category}) + "\n" for q in questions))
    return path


def write_chat_file(language: str = "english") -> Path:
    """A .jsonl file of one conversation per question and answer, {"messages": [user: question, assistant:
    answer]}, for instruction tuning (finetune.py --task chat --data chatterbot-chat); kept in the cache."""
    questions = unique_questions(read_language(language))
    lines = [json.dumps({"messages": [{"role": "user", "content": q.text}, {"role": "assistant", "content": answer}]})
             for q in questions for answer in q.answers]
    path = cache_dir() / "derived" / f"chatterbot-chat-{language}.jsonl"
    write_text_atomic(path, "".join(line + "\n" for line in lines))
    return path


DERIVED_DATA = {"chatterbot-intents": write_intents_file,  # --data names finetune.py resolves to a file
                "chatterbot-chat": write_chat_file}


def qa_text(questions: list[Question]) -> str:
    """ "Q: question\\nA: answer\\n\\n" for every answer: a plain text of the pairs for train_gpt.py --data FILE."""
    return "".join(f"Q: {q.text}\nA: {answer}\n\n" for q in questions for answer in q.answers)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data.chatterbot", description="Count or export the "
                                     "chatterbot-corpus questions.")
    parser.add_argument("--language", default="english", help="a folder of the corpus (default english)")
    parser.add_argument("--qa_text", metavar="FILE", help="write Q:/A: lines for train_gpt.py --data FILE")
    parser.add_argument("--overwrite", action="store_true", help="replace a --qa_text FILE that exists")
    args = parser.parse_args(argv)
    if args.qa_text:  # a plain text file carries no marker: replacing one always takes --overwrite
        guard_output(args.qa_text, "--qa_text", "python -m data.chatterbot", overwrite=args.overwrite, kind=FILE)
    questions = unique_questions(read_language(args.language))
    counts = Counter(q.category for q in questions)
    for category, count in counts.most_common():
        print(f"{category:16s} {count:5d}")
    top, top_count = counts.most_common(1)[0]
    print(f"{len(questions)} unique questions; always answering {top}: {top_count / len(questions):.1%}")
    if args.qa_text:
        write_text_atomic(Path(args.qa_text), qa_text(questions))
        print(f"wrote {args.qa_text}")


if __name__ == "__main__":
    sys.exit(run_command(main))
