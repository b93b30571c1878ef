"""The retrieval preset of train seq2seq: the nearest training question's answer, through every
command a seq2seq run takes."""
from __future__ import annotations

import json

import numpy as np
import pytest

import malmoi
from malmoi.errors import MalmoiError
from malmoi.models.retrieval import RetrievalIndex
from malmoi.text.ngrams import NgramFeaturizer
from malmoi.use.retrieval import RetrievalGenerator

from test_seq2seq_task import write_pairs

PAIRS = [
    ("오늘 날씨 어때?", "맑고 따뜻해요"),
    ("배가 너무 고파", "맛있는 거 드세요"),
    ("잠이 안 와서 힘들어", "따뜻한 우유 한 잔 어때요?"),
    ("주말에 뭐 하지?", "영화 한 편 어때요?"),
    ("친구랑 싸웠어", "먼저 연락해 보세요"),
    ("시험 공부하기 싫다", "조금만 더 힘내요"),
    ("고양이를 키우고 싶어", "책임감이 필요해요"),
    ("회사 가기 싫어", "오늘만 버텨 봐요"),
    ("비가 많이 오네", "우산 꼭 챙기세요"),
    ("머리가 아파", "푹 쉬는 게 좋겠어요"),
]


def featurizer():
    return NgramFeaturizer(buckets=1 << 16, chars=(1, 3), words=None)


def test_a_training_question_gets_its_own_answer_and_a_paraphrase_its_neighbours():
    index = RetrievalIndex.build(featurizer(), [q for q, _ in PAIRS], [a for _, a in PAIRS])
    hits = index.search([q for q, _ in PAIRS] + ["오늘 날씨가 어때요", "배고파 죽겠다", "잠이 너무 안 와"], k=2)
    assert hits.index[:len(PAIRS), 0].tolist() == list(range(len(PAIRS)))
    assert np.allclose(hits.similarity[:len(PAIRS), 0], 1.0, atol=1e-5)
    assert hits.index[len(PAIRS):, 0].tolist() == [0, 1, 2]
    assert (hits.similarity[:, 0] >= hits.similarity[:, 1]).all()


def test_similarity_is_the_tf_idf_cosine():
    """Checked against a dense computation of the same weights."""
    f = featurizer()
    questions = [q for q, _ in PAIRS]
    index = RetrievalIndex.build(f, questions, [a for _, a in PAIRS])
    queries = ["날씨가 맑아", "고양이 키우기"]

    def dense(texts):
        enc = f.encode(texts)
        out = np.zeros((len(texts), len(f)))
        for i in range(len(texts)):
            ids, counts = np.unique(enc.row(i), return_counts=True)
            out[i, ids] = (1 + np.log(counts)) * index.idf[ids]
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    expected = dense(queries) @ dense(questions).T
    hits = index.search(queries, k=len(PAIRS))
    got = np.zeros_like(expected)
    np.put_along_axis(got, hits.index, hits.similarity, 1)
    assert np.allclose(got, expected, atol=1e-5)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("retrieval")
    data = write_pairs(tmp / "pairs.csv", PAIRS * 3)
    said: list[str] = []
    result = malmoi.train(task="seq2seq", data=data, source="Q", target="A", out=tmp / "run", preset="retrieval",
                          valid_split=0.2, say=said.append)
    return result, said


def test_training_indexes_the_split_and_scores_the_held_out_pairs(run):
    result, said = run
    assert result.train_examples == 24 and result.valid_examples == 6 and result.stopped_by == "built"
    meta = json.loads((result.run / "malmoi.json").read_text(encoding="utf-8"))
    assert meta["architecture"] == "retrieval" and meta["status"] == "done" and meta["pairs"] == 24
    assert result.metrics["chrf"] == pytest.approx(100.0) and result.metrics["exact"] == 1.0  # every pair is seen
    assert any("chrF" in line for line in said)


def test_the_run_answers_through_malmoi_load_and_reloads_to_the_same_answers(run):
    generator = malmoi.load(run[0].run)
    assert isinstance(generator, RetrievalGenerator)
    answer = generator.generate(["오늘 날씨가 어때요"])[0]
    assert answer.text == "맑고 따뜻해요" and answer.matched == "오늘 날씨 어때?" and 0 < answer.similarity < 1
    again = RetrievalGenerator.from_run(run[0].run).generate(["오늘 날씨가 어때요", "배고파"])
    assert again[0] == answer and again[1].text == "맛있는 거 드세요"
    assert "".join(generator.stream("배고파")) == "맛있는 거 드세요"


def test_an_input_sharing_nothing_gets_the_most_frequent_answer():
    pairs = PAIRS + [("또 비가 오네", "우산 꼭 챙기세요")]
    joined = NgramFeaturizer(buckets=1 << 16, chars=None, joined=(1, 3), words=None)  # no edge spaces to share
    generator = RetrievalGenerator(RetrievalIndex.build(joined, [q for q, _ in pairs], [a for _, a in pairs]))
    answer = generator.generate(["xyz"])[0]
    assert (answer.text, answer.similarity, answer.matched) == ("우산 꼭 챙기세요", 0.0, None)


def test_unseen_n_grams_lower_the_similarity_but_not_the_ranking(run):
    generator = malmoi.load(run[0].run)
    near, far = generator.generate(["배가 너무 고파", "배가 너무 고파 ㅋㅋㅋ 진짜 완전"])
    assert near.similarity == pytest.approx(1.0, abs=1e-5) and far.text == near.text
    assert 0 < far.similarity < 0.9


@pytest.mark.parametrize("call,code", [
    (lambda g: g.generate([""]), "E421"),
    (lambda g: g.generate(["배고파"], beams=3), "E275"),
    (lambda g: g.generate(["배고파"], top_k=5), "E275"),
])
def test_bad_requests_get_one_clear_error(run, call, code):
    with pytest.raises(MalmoiError) as e:
        call(malmoi.load(run[0].run))
    assert e.value.code == code


def test_generate_json_shows_the_matched_question_and_similarity(run, cli):
    code, out, err = cli("generate", run[0].run, "잠이 너무 안 와", "--json")
    assert code == 0, err
    (answer,) = json.loads(out)
    assert answer["text"] == "따뜻한 우유 한 잔 어때요?" and answer["matched"] == "잠이 안 와서 힘들어"
    assert 0 < answer["similarity"] < 1


def test_chat_answers_each_line(run, cli, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("배고파\n\n머리가 아파요\n"))
    code, out, err = cli("chat", run[0].run)
    assert code == 0, err
    assert out.splitlines() == ["맛있는 거 드세요", "푹 쉬는 게 좋겠어요"]


def test_decoder_options_are_refused_for_retrieval(tmp_path):
    data = write_pairs(tmp_path / "pairs.csv", PAIRS)
    with pytest.raises(MalmoiError) as e:
        malmoi.train(task="seq2seq", data=data, source="Q", target="A", out=tmp_path / "run", preset="retrieval",
                     units="words")
    assert e.value.code == "E228" and not (tmp_path / "run").exists()
