"""A chat language model (``train lm --source Q --target A``): the turn format, a tiny GPT that
memorises two answers, and every way of asking it (generate, stream, chat, the command line)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from malmoi.data.batching import LABEL_PAD
from malmoi.data.datasets import ChatDataset
from malmoi.errors import MalmoiError
from malmoi.tasks import train
from malmoi.use.lm import LMGenerator

PAIRS = [("오늘 뭐 먹지?", "김치찌개 어때요?"), ("너무 심심해", "산책이라도 다녀오세요.")]
TINY = dict(n_embd=32, n_layer=2, n_head=2, n_inner=64, n_positions=64,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


class CharTokenizer:
    """One id per character, 1 = bos, 2 = eos (enough for the dataset's packing)."""

    def __call__(self, texts, **kwargs):
        return {"input_ids": [[10 + ord(c) % 50 for c in t] for t in texts]}

    def convert_tokens_to_ids(self, tokens):
        return tokens


def test_a_turn_is_bos_question_eos_answer_eos_and_only_the_answer_is_learned():
    data = ChatDataset([("가나", "다"), ("라", "마바")], CharTokenizer(), 64, bos_id=1, eos_id=2)
    ga, na, da, ra, ma, ba = (10 + ord(c) % 50 for c in "가나다라마바")
    assert data[0]["input_ids"] == [1, ga, na, 2, da, 2, 1, ra, 2, ma, ba, 2]  # packed whole into one block
    assert data[0]["labels"] == [LABEL_PAD] * 4 + [da, 2] + [LABEL_PAD] * 3 + [ma, ba, 2]
    both = ChatDataset([("가나", "다")], CharTokenizer(), 64, bos_id=1, eos_id=2, answer_only=False)
    assert both[0]["labels"] == both[0]["input_ids"]


def test_turns_are_never_split_across_blocks():
    pairs = [("가나다", "라마")] * 5  # 8 ids a turn
    data = ChatDataset(pairs, CharTokenizer(), 16, bos_id=1, eos_id=2)
    assert data.lengths == [16, 16, 8]
    assert all(block[0] == 1 and block[-1] == 2 for block in data.blocks)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chat")
    data = folder / "pairs.csv"
    rows = ["Q,A"] + [f"{q},{a}" for q, a in PAIRS * 8]
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return train(task="lm", data=data, source="Q", target="A", out=folder / "run", vocab_size=80, block_size=32,
                 batch_size=8, max_steps=80, eval_every=80, lr=1e-2, progress=False, model_overrides=TINY,
                 say=lambda message: None)


@pytest.fixture(scope="module")
def generator(run):
    return LMGenerator.from_run(run.run)


def test_the_run_records_the_chat_format(run):
    meta = json.loads((run.run / "malmoi.json").read_text())
    assert meta["format"] == "chat" and meta["columns"] == {"source": "Q", "target": "A"}


@pytest.mark.parametrize("question, answer", PAIRS)
def test_a_tiny_chat_gpt_answers_its_memorised_questions(generator, question, answer):
    got = generator.generate([question], max_new_tokens=20)[0]
    assert got.text == answer
    assert len(got.tokens) < 20  # it ended the turn itself
    assert generator.reply(question) == answer
    assert "".join(generator.stream(question, max_new_tokens=20)) == answer


def test_the_generate_command_prints_the_answer_alone(generator, capsys):
    from malmoi.cli.lm import print_generations

    print_generations(generator, [PAIRS[0][0]], max_new_tokens=20)
    assert capsys.readouterr().out == PAIRS[0][1] + "\n"


def test_chat_on_a_gpt_run_answers_in_the_trained_format(run):
    asked = "\n".join(q for q, _ in PAIRS) + "\n"
    done = subprocess.run([sys.executable, "-m", "malmoi", "chat", str(run.run)], input=asked, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [a for _, a in PAIRS]


@pytest.mark.parametrize("options", [dict(source="Q"), dict(target="A"), dict(source="Q", target="A", column="Q")])
def test_source_and_target_go_together_and_not_with_column(tmp_path, options):
    data = tmp_path / "pairs.csv"
    data.write_text("Q,A\n가,나\n다,라\n", encoding="utf-8")
    with pytest.raises(MalmoiError) as e:
        train(task="lm", data=data, out=tmp_path / "run", progress=False, **options)
    assert e.value.code == "E228"
    assert not (tmp_path / "run").exists()


def test_pairs_with_bare_quotes_and_empty_answers_are_read_exactly(tmp_path):
    from malmoi.tasks.common import read_corpus
    from malmoi.tasks.lm import LMOptions

    data = tmp_path / "pairs.tsv"
    data.write_text('Q\tA\n그가 "안녕"이라 했어\t"반가워"라고 답해요\n빈 답\t\n셋\t넷\n', encoding="utf-8")
    opts = LMOptions(data=data, out=tmp_path / "run", source="Q", target="A", valid_split=0.5)
    train_pairs, valid_pairs = read_corpus(opts)
    assert sorted(train_pairs + valid_pairs) == [("그가 \"안녕\"이라 했어", "\"반가워\"라고 답해요"), ("셋", "넷")]


def test_eval_scores_a_chat_run_on_pairs(run, tmp_path):
    data = tmp_path / "test.csv"
    data.write_text("Q,A\n" + "".join(f"{q},{a}\n" for q, a in PAIRS) + "배고파,밥 먹어요.\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "malmoi", "eval", str(run.run), "--data", str(data), "--json",
                           "--errors", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)
    assert scores["pairs"] == 3 and scores["exact"] == pytest.approx(2 / 3)
    assert 60 < scores["rouge_l"] < 100 and 0 < scores["chrf"] < 100
    assert [e["source"] for e in scores["errors"]] == ["배고파"]


def test_inspect_on_a_chat_run_steps_through_its_answer(run):
    import malmoi
    from malmoi.inspect import inspect_text

    question, answer = PAIRS[1]
    record = inspect_text(malmoi.load(run.run), question, steps=30)
    assert record["generation"]["text"] == answer
