"""The chat page (GET /chat, minilm/serve/static/chat.html) in headless Chromium against a real uvicorn server with
--api_key: the page asks for the key, holds a conversation of two turns by itself (#selftest), and reports what
it showed while each answer streamed in, into <pre id="selftest">, which the test reads through Chromium's DevTools
protocol (`--dump-dom`, as tests/test_viz_attention.py uses it, would not wait for a streamed answer).

    python tests/test_serve_chat_page.py --screenshot docs/img/serve_chat_page.png    the picture of docs/serving.md
                                                                                      (SmolLM2, about a minute)
"""

import argparse
import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the project's packages

from minilm.serve.app import create_app  # noqa: E402
from minilm.serve.chat_routes import PAGE  # noqa: E402
from minilm.serve.config import ServeConfig  # noqa: E402
from minilm.serve.metrics import Metrics  # noqa: E402
from minilm.serve.service import Service  # noqa: E402
from serve_chat_fixtures import running_server, scripted_chat  # noqa: E402

KEY = "a-long-enough-key"
ANSWER = "Bonjour! Paris est la capitale de la France."
SOURCE = {"id": "faq-3", "title": "What is the capital of France?", "text": "Paris.", "score": 0.91}


class Chromium:
    """Headless Chromium driven through the DevTools protocol over a pipe (--remote-debugging-pipe: JSON messages
    ending in a NUL byte, commands on its fd 3, answers on its fd 4), so a test can wait, in real time, for what
    the page does and photograph it. No websocket, no extra package."""

    def __init__(self, url: str, size=(1000, 720)):
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if browser is None:
            pytest.fail("chromium is not installed, and the page must be checked in a real browser: "
                        "apt-get install -y chromium")
        self.profile = tempfile.TemporaryDirectory()
        to_browser, self.commands = os.pipe()
        self.answers, from_browser = os.pipe()
        # above 9, so that making them fds 3 and 4 below cannot overwrite one with the other
        to_browser, from_browser = (self._above_9(fd) for fd in (to_browser, from_browser))
        flags = ["--headless=new", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
                 f"--user-data-dir={self.profile.name}", f"--window-size={size[0]},{size[1]}",
                 "--remote-debugging-pipe", url]
        # bash (dash reads one-digit fds only) hands the pipe ends to chromium as its fds 3 and 4
        shell = f'exec 3<&{to_browser} 4>&{from_browser} {to_browser}<&- {from_browser}>&-; exec "$0" "$@"'
        self.process = subprocess.Popen(["bash", "-c", shell, browser, *flags], pass_fds=(to_browser, from_browser),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_browser)
        os.close(from_browser)
        self.buffer, self.next_id = b"", 0
        page = next(t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]

    @staticmethod
    def _above_9(fd: int) -> int:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
        os.close(fd)
        return high

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session  # a command to the page, not to the browser
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                ready, _, _ = select.select([self.answers], [], [], 60)
                chunk = os.read(self.answers, 1 << 20) if ready else b""
                assert chunk, f"chromium stopped answering; it said:\n{self.process.stderr.read1(4000)!r}"
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.next_id:
                assert "error" not in answer, answer["error"]
                return answer["result"]

    def evaluate(self, expression: str):
        answer = self.send("Runtime.evaluate", self.session, expression=expression, returnByValue=True)
        return answer["result"].get("value")

    def wait_for(self, expression: str, seconds: float = 120):
        end = time.monotonic() + seconds
        while not (value := self.evaluate(expression)):
            assert time.monotonic() < end, f"the page never gave {expression}"
            time.sleep(0.1)
        return value

    def screenshot(self, out: Path) -> None:
        png = self.send("Page.captureScreenshot", self.session, format="png")["data"]
        out.write_bytes(base64.b64decode(png))

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        os.close(self.commands)
        os.close(self.answers)
        self.profile.cleanup()


def selftest_url(base: str, key: str | None, says: list[str]) -> str:
    """The page, told to hold a conversation itself: the key to give when asked, then each message in turn."""
    return f"{base}/chat#selftest&" + urlencode([*([("key", key)] if key else []), *[("say", s) for s in says]])


def run_selftest(url: str, screenshot: Path | None = None) -> dict:
    """The self-test's report (and the page photographed when it is written)."""
    browser = Chromium(url)
    try:
        report = json.loads(browser.wait_for("document.getElementById('selftest').textContent"))
        if screenshot is not None:
            browser.screenshot(screenshot)
        return report
    finally:
        browser.close()


@pytest.fixture(scope="module")
def page_run():
    """Two turns on a server with --api_key and a retriever; (the report, the scripted model's prompts)."""
    says = scripted_chat("says", ANSWER, block_size=512, delay=0.01)  # 10 ms a token: the answer streams visibly
    service = Service({"says": says}, ServeConfig(ckpt=["says"], api_key=KEY), Metrics(),
                      retriever=lambda messages: (messages, [SOURCE]))
    with running_server(create_app(service)) as base:
        report = run_selftest(selftest_url(base, KEY, ["Hi!", "And again?"]))
    return report, [says.tokenizer.decode(prompt) for prompt in says.model.prompts]


def test_the_page_asks_for_the_key_and_every_request_then_carries_it(page_run):
    report, _ = page_run
    assert report["asked_for_key"] is True
    assert report["errors"] == []  # a request without the key would have shown its 401 here


def test_two_turns_are_shown_and_the_second_request_carries_the_first(page_run):
    report, prompts = page_run
    assert [t["answer"] for t in report["turns"]] == [ANSWER, ANSWER]
    assert [m["role"] for m in report["history"]] == ["user", "assistant", "user", "assistant"]
    assert report["messages_shown"] == 4
    assert "Hi!" in prompts[0] and "And again?" not in prompts[0]
    assert all(part in prompts[1] for part in ("Hi!", ANSWER, "And again?"))


def test_the_answer_appears_piece_by_piece_while_it_streams(page_run):
    report, _ = page_run
    for turn in report["turns"]:
        shown = [text for text in turn["shown"] if text]
        assert len(shown) >= 5, shown  # many states of the growing answer, not one at the end
        assert all(later.startswith(earlier) for earlier, later in zip(shown, shown[1:]))


def test_the_sources_retrieval_used_are_shown_under_the_answer(page_run):
    report, _ = page_run
    assert report["turns"][0]["sources"] == [f"{SOURCE['title']} (0.91): {SOURCE['text']}"]


def test_the_page_is_one_file_that_fetches_nothing_from_elsewhere():
    html = PAGE.read_text(encoding="utf-8")
    assert not re.search(r"https?://|\bsrc=|\bhref=|@import|url\(", html)


# ---- the picture of docs/serving.md ----------------------------------------------------------------------

def screenshot(out: Path) -> None:
    """SmolLM2 behind the service, asked two questions on the page, photographed when both answers are in."""
    from data.assets import model_path
    from minilm.chat.load import load_chat_model
    from minilm.serve.models import served_chat_model

    served = served_chat_model("smollm2", load_chat_model(model_path("smollm2")), 0.0)
    service = Service({"smollm2": served}, ServeConfig(ckpt=["smollm2"], api_key=KEY, max_new_tokens=80), Metrics())
    with running_server(create_app(service)) as base:
        run_selftest(selftest_url(base, KEY, ["What is the capital of France?",
                                              "And what is it famous for? One sentence."]), screenshot=out)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The screenshot of the chat page for docs/serving.md.")
    parser.add_argument("--screenshot", type=Path, required=True, help="the PNG to write")
    screenshot(parser.parse_args().screenshot)
