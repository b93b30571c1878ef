"""The hybrid preset of train seq2seq: retrieved answers reranked by a dual encoder, a generator
where nothing similar is found, through every command a seq2seq run takes."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_retrieval import PAIRS, featurizer
from test_seq2seq_task import write_pairs

import malmoi
from malmoi.errors import MalmoiError
from malmoi.models.dual import DualEncoder, train_dual
from malmoi.models.hybrid import HybridConfig, HybridRanker
from malmoi.models.presets import get_preset
from malmoi.models.retrieval import RetrievalIndex
from malmoi.use.hybrid import HybridGenerator
from malmoi.use.retrieval import RetrievalGenerator

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"dual": {"dim": 16, "epochs": 30, "batch_size": 8, "lr": 0.05, "scale": 20.0},
        "generator_overrides": {"emb_dim": 16, "hidden": 16}}


def pairs_encoded(f, pairs):
    return f.encode([q for q, _ in pairs]), f.encode([a for _, a in pairs])


def test_the_dual_encoder_learns_which_answer_fits_which_question():
    f = featurizer()
    questions, answers = pairs_encoded(f, PAIRS)
    dual = DualEncoder.for_texts(questions, answers, dim=16)
    before = (dual.encode_questions(questions) @ dual.encode_answers(answers).T).argmax(1)
    stats = train_dual(dual, questions, answers, [a for _, a in PAIRS], epochs=40, batch_size=10, lr=0.05,
                       scale=20.0, seed=0)
    with torch.no_grad():
        after = (dual.encode_questions(questions) @ dual.encode_answers(answers).T).argmax(1)
    assert after.tolist() == list(range(len(PAIRS))) != before.tolist()
    assert stats["epochs"] == 40 and stats["loss"] < 0.5


def test_the_dual_encoder_reloads_to_identical_vectors(tmp_path):
    f = featurizer()
    questions, answers = pairs_encoded(f, PAIRS)
    dual = DualEncoder.for_texts(questions, answers, dim=8)
    train_dual(dual, questions, answers, [a for _, a in PAIRS], epochs=2, batch_size=4, lr=0.05, scale=20.0, seed=0)
    dual.save(tmp_path)
    again = DualEncoder.load(tmp_path)
    unseen = f.encode(["처음 보는 문장이에요"])
    assert torch.equal(dual.encode_questions(unseen), again.encode_questions(unseen))
    assert torch.equal(dual.encode_answers(answers), again.encode_answers(answers))


def test_switched_off_the_model_ranks_exactly_as_retrieval():
    """The ablation: both weights at 0 gives the retrieval preset's answers, ties included."""
    f = featurizer()
    pairs = PAIRS + [("오늘 날씨 어때요", "흐려요"), ("배고파요", "밥 드세요")]
    index = RetrievalIndex.build(f, [q for q, _ in pairs], [a for _, a in pairs])
    questions, answers = pairs_encoded(f, pairs)
    dual = DualEncoder.for_texts(questions, answers, dim=8)
    off = HybridRanker(index, dual, HybridConfig(answer_weight=0.0, question_weight=0.0, fallback_below=0.0))
    texts = ["오늘 날씨", "배고파", "주말 영화", "비 와", "친구랑 싸움"]
    chosen = [index.answers[i] for i in off.choose(texts).pair]
    assert chosen == [a.text for a in RetrievalGenerator(index).generate(texts)]


def test_an_input_unlike_every_question_goes_to_the_generator():
    f = featurizer()
    index = RetrievalIndex.build(f, [q for q, _ in PAIRS], [a for _, a in PAIRS])
    choices = HybridRanker(index, None, HybridConfig(fallback_below=0.05)).choose(["xyz 123", "오늘 날씨 어때?"])
    assert choices.generate.tolist() == [True, False]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hybrid")
    data = write_pairs(tmp / "pairs.csv", PAIRS * 3)
    said: list[str] = []
    result = malmoi.train(task="seq2seq", data=data, source="Q", target="A", out=tmp / "run", preset="hybrid",
                          valid_split=0.2, epochs=2, batch_size=8, model_overrides=TINY, say=said.append)
    return result, said


def test_training_builds_every_part_and_reports_the_ablation(run):
    result, said = run
    meta = json.loads((result.run / "malmoi.json").read_text(encoding="utf-8"))
    assert meta["architecture"] == "hybrid" and meta["status"] == "done" and meta["generator"] == "generator"
    assert meta["ranking"] == get_preset("hybrid").config["ranking"]  # what loading the run uses
    assert (result.run / "dual.safetensors").is_file() and (result.run / "generator" / "model.safetensors").is_file()
    assert result.steps > 0 and result.train_examples == 24 and result.valid_examples == 6
    m = result.metrics
    assert m["chrf"] == pytest.approx(100.0) and m["retrieval_chrf"] == pytest.approx(100.0) and m["differ"] == 0.0
    assert any("retrieval alone" in line for line in said)


def test_the_run_answers_through_malmoi_load_and_never_empty(run):
    generator = malmoi.load(run[0].run)
    assert isinstance(generator, HybridGenerator)
    texts = ["오늘 날씨가 어때요", "배고파", "xyz 123", "ㅋ", "!!!"]
    answers = generator.generate(texts)
    assert [a.source for a in answers] == texts and all(a.text.strip() for a in answers)
    assert answers[0].text == "맑고 따뜻해요" and answers[0].matched == "오늘 날씨 어때?"
    assert answers[2].matched is None  # nothing similar: the generator's (or, if it said nothing, retrieval's)
    assert "".join(generator.stream("배고파")) == generator.reply("배고파")


def test_a_fresh_process_gives_the_same_answers(run):
    texts = ["오늘 날씨가 어때요", "잠이 안 와", "xyz 123"]
    here = [a.text for a in malmoi.load(run[0].run).generate(texts)]
    code = f"import json, malmoi; print(json.dumps([a.text for a in malmoi.load({str(run[0].run)!r}).generate({texts!r})]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == here


def test_generate_json_and_bad_requests(run, cli):
    code, out, err = cli("generate", run[0].run, "잠이 너무 안 와", "--json")
    assert code == 0, err
    (answer,) = json.loads(out)
    assert answer["text"] == "따뜻한 우유 한 잔 어때요?" and answer["matched"] == "잠이 안 와서 힘들어"
    with pytest.raises(MalmoiError) as e:
        malmoi.load(run[0].run).generate([""])
    assert e.value.code == "E421"
    code, out, err = cli("generate", run[0].run, "배고파", "--beams", "3")
    assert code != 0 and "E275" in err and "Traceback" not in err


def test_resume_continues_the_generator(run, tmp_path):
    data = write_pairs(tmp_path / "pairs.csv", PAIRS * 3)
    common = dict(task="seq2seq", data=data, source="Q", target="A", out=tmp_path / "run", preset="hybrid",
                  valid_split=0.2, batch_size=8, model_overrides=TINY, say=lambda _: None)
    first = malmoi.train(epochs=1, keep_checkpoints=True, **common)
    second = malmoi.train(epochs=2, resume=True, **common)
    assert second.steps > first.steps
    with pytest.raises(MalmoiError) as e:
        malmoi.train(epochs=2, resume=True, **{**common, "out": tmp_path / "none"})
    assert e.value.code == "E302"


def test_a_run_killed_before_the_generators_first_checkpoint_starts_again(tmp_path):
    data = write_pairs(tmp_path / "pairs.csv", PAIRS * 3)
    common = {"task": "seq2seq", "data": data, "source": "Q", "target": "A", "out": tmp_path / "run",
              "preset": "hybrid", "valid_split": 0.2, "batch_size": 8, "epochs": 1, "model_overrides": TINY,
              "say": lambda _: None}
    malmoi.train(**common)
    meta = json.loads((tmp_path / "run" / "malmoi.json").read_text(encoding="utf-8"))
    assert not (tmp_path / "run" / "generator" / "checkpoints").exists()  # a finished run keeps none
    generator_meta = json.loads((tmp_path / "run" / "generator" / "malmoi.json").read_text(encoding="utf-8"))
    (tmp_path / "run" / "generator" / "malmoi.json").write_text(  # as if killed before its first checkpoint
        json.dumps({**generator_meta, "status": "training"}), encoding="utf-8")
    (tmp_path / "run" / "malmoi.json").write_text(json.dumps({**meta, "status": "training"}), encoding="utf-8")
    assert malmoi.train(**common).steps > 0
    with pytest.raises(MalmoiError) as e:  # a finished run is not overwritten
        malmoi.train(**common)
    assert e.value.code == "E301"


def test_time_budget_bounds_the_whole_hybrid(tmp_path):
    data = write_pairs(tmp_path / "pairs.csv", PAIRS * 30)
    result = malmoi.train(task="seq2seq", data=data, source="Q", target="A", out=tmp_path / "run", preset="hybrid",
                          time_budget="20s", model_overrides=TINY, say=lambda _: None)
    assert result.stopped_by == "time" and result.seconds < 20 * 1.25
    meta = json.loads((tmp_path / "run" / "malmoi.json").read_text(encoding="utf-8"))
    assert meta["dual"]["seconds"] <= 20 * 0.25 + 1


def test_reranking_changes_answers_only_through_the_dual_encoder():
    """With a dual encoder that prefers one answer, that answer wins among the candidates."""
    f = featurizer()
    index = RetrievalIndex.build(f, [q for q, _ in PAIRS], [a for _, a in PAIRS])
    questions, answers = pairs_encoded(f, PAIRS)
    dual = DualEncoder.for_texts(questions, answers, dim=4)
    with torch.no_grad():
        dual.question.weight.fill_(1.0)
        dual.answer.weight.fill_(-1.0)
        favourite = f.encode(["우산 꼭 챙기세요"]).row(0)
        rows = np.searchsorted(dual.ids.numpy(), favourite)
        dual.answer.weight[torch.as_tensor(rows)] = 1.0
    ranker = HybridRanker(index, dual, HybridConfig(candidates=len(PAIRS), answer_weight=5.0, question_weight=0.0))
    assert [index.answers[i] for i in ranker.choose(["오늘 날씨 어때?", "배고파"]).pair] == ["우산 꼭 챙기세요"] * 2
