"""The seq2seq task end to end: training into a run directory, validation metrics, generation,
beam search, attention maps, the CLI (train seq2seq, generate, chat, attention) and clear errors."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import pytest
import sacrebleu
import torch

import malmoi
from malmoi.errors import MalmoiError
from malmoi.tasks.pairs import Seq2SeqOptions, read_pair_data
from malmoi.text.codecs import VocabCodec, split_units
from malmoi.text.vocab import Vocab
from malmoi.use import load_generator
from malmoi.use.seq2seq import Seq2SeqGenerator

pytestmark = pytest.mark.usefixtures("one_thread")

PAIRS = [
    ("안녕하세요", "반가워요 좋은 하루예요"),
    ("배고파", "맛있는 거 드세요"),
    ("오늘 날씨 어때?", "맑고 따뜻해요"),
    ("심심해", "산책 어때요?"),
    ("잠이 안 와", "따뜻한 우유 한 잔 드세요"),
    ("고마워", "천만에요"),
    ("피곤해", "오늘은 일찍 쉬세요"),
    ("주말에 뭐 하지?", "영화 한 편 어때요?"),
]
TINY = dict(emb_dim=32, hidden=64, dropout=0.0)


def write_pairs(path, pairs, repeat=1):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Q", "A"])
        for _ in range(repeat):
            writer.writerows(pairs)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seq2seq")
    return {"tmp": tmp, "train": write_pairs(tmp / "pairs.csv", PAIRS, repeat=16)}


@pytest.fixture(scope="module")
def trained(data):
    """A tiny Bahdanau model that has memorised PAIRS (word units: no Kiwi, fast)."""
    said: list[str] = []
    result = malmoi.train(task="seq2seq", data=data["train"], source="Q", target="A", out=data["tmp"] / "run",
                          preset="lstm-bahdanau", units="words", epochs=10, batch_size=16, lr=5e-3,
                          model_overrides=TINY, progress=False, say=said.append)
    return result, said


def test_training_writes_a_run_directory(trained):
    result, _ = trained
    run = result.run
    for name in ("config.json", "model.safetensors", "malmoi_vocab.json", "malmoi.json", "metrics.jsonl",
                 "curve.png"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "malmoi.json").read_text(encoding="utf-8"))
    assert meta["task"] == "seq2seq" and meta["architecture"] == "lstm-seq2seq"
    assert meta["attention"] == "bahdanau" and meta["units"] == "words" and meta["status"] == "done"
    assert meta["columns"] == {"source": "Q", "target": "A"}


def test_validation_reports_loss_perplexity_bleu_chrf_and_samples(trained):
    result, said = trained
    m = result.metrics
    assert set(m) >= {"loss", "perplexity", "bleu", "chrf"}
    assert m["perplexity"] == pytest.approx(math.exp(m["loss"]))
    assert m["bleu"] > 50 and m["chrf"] > 50  # the held-out rows repeat memorised pairs
    evals = [json.loads(line) for line in (result.run / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in evals if e["event"] == "eval"]
    assert len(evals) == 10 and all("chrf" in e for e in evals)
    assert evals[-1]["loss"] < evals[0]["loss"]
    assert sum("  Q: " in s and "\n  A: " in s for s in said) == 3 * len(evals)  # 3 samples per evaluation


def test_the_trained_model_answers_the_memorised_questions(trained):
    generator = malmoi.load(trained[0].run)
    assert isinstance(generator, Seq2SeqGenerator)
    answers = generator.generate([q for q, _ in PAIRS])
    right = sum(a.text == gold for a, (_, gold) in zip(answers, PAIRS))
    assert right >= 7, [a.text for a in answers]
    assert all(a.tokens == a.text.split() for a in answers)


def test_beams_and_reload_give_consistent_answers(trained):
    a, b = load_generator(trained[0].run), load_generator(trained[0].run)
    questions = [q for q, _ in PAIRS]
    greedy = a.generate(questions)
    assert [x.text for x in a.generate(questions, beams=1)] == [x.text for x in greedy]
    assert [x.text for x in b.generate(questions, beams=3)] == [x.text for x in a.generate(questions, beams=3)]
    assert [x.text for x in a.generate(questions, max_new_tokens=1)] == [x.text.split()[0] for x in greedy]


def test_attention_map_rows_are_distributions_over_the_source(trained, tmp_path):
    from malmoi.use import save_attention_png

    generator = load_generator(trained[0].run)
    amap = generator.attention("주말에 뭐 하지?")
    assert amap.source_tokens == ["주말에", "뭐", "하지?"]
    assert amap.target_tokens == amap.text.split()
    weights = torch.tensor(amap.weights)
    assert weights.shape == (len(amap.target_tokens), 3)
    assert torch.allclose(weights.sum(-1), torch.ones(len(weights)), atol=1e-5)
    png = save_attention_png(amap, tmp_path / "att.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("text,code", [
    ("", "E421"),                     # empty input
    ("   ", "E421"),
    ("말 " * 65, "E423"),              # longer than --max-source-length (64)
])
def test_bad_inputs_get_clear_errors(trained, text, code):
    generator = load_generator(trained[0].run)
    with pytest.raises(MalmoiError) as e:
        generator.generate([text])
    assert e.value.code == code


@pytest.mark.parametrize("units,text", [
    ("words", "오늘 날씨 정말 좋네요"),
    ("chars", "오늘 날씨  정말 좋네요!"),
    ("morphemes", "나는 너를 좋아해. 오늘 날씨 어때?"),
    ("morphemes", "밥 먹었어요?"),
])
def test_vocab_codecs_decode_back_to_the_text(units, text):
    codec = VocabCodec(Vocab.build(split_units([text], units)), units)
    ids = codec.source_encoder(text)
    assert codec.target_encoder(text) == ids + [codec.eos_id]
    expected = " ".join(text.split()) if units == "chars" else text
    assert codec.decode(ids) == expected


def test_subword_units_with_a_given_tokenizer(data, tmp_path):
    from malmoi.text.subword import train_tokenizer

    texts = [t for pair in PAIRS for t in pair]
    train_tokenizer(texts * 4, kind="bpe", vocab_size=120, out=tmp_path / "tok")
    result = malmoi.train(task="seq2seq", data=data["train"], source="Q", target="A", out=tmp_path / "run",
                          preset="lstm-luong", tokenizer=tmp_path / "tok", epochs=1, batch_size=32,
                          model_overrides=TINY, progress=False, say=lambda _: None)
    generator = malmoi.load(result.run)
    codec = generator.codec
    # targets are "y … <eos>" (the decoder adds its own <bos>); sources keep the tokenizer's [CLS] … [SEP]
    gold = codec.tokenizer("맑고 따뜻해요", add_special_tokens=False)["input_ids"]
    assert codec.target_encoder(["맑고 따뜻해요"])["input_ids"] == [gold + [codec.eos_id]]
    assert codec.decode(gold) == "맑고 따뜻해요"
    amap = generator.attention("배고파")
    assert amap.source_tokens[0] == "[CLS]" and amap.source_tokens[-1] == "[SEP]"


def test_no_attention_preset_refuses_a_heatmap(data, tmp_path):
    result = malmoi.train(task="seq2seq", data=data["train"], source="Q", target="A", out=tmp_path / "run",
                          preset="lstm", units="words", epochs=1, batch_size=32, model_overrides=TINY,
                          progress=False, say=lambda _: None)
    generator = malmoi.load(result.run)
    assert isinstance(generator.generate(["배고파"])[0].text, str)
    with pytest.raises(MalmoiError) as e:
        generator.attention("배고파")
    assert e.value.code == "E429"


@pytest.mark.parametrize("options,code", [
    (dict(preset="bert-mini"), "E220"),
    (dict(units="bytes"), "E210"),
    (dict(max_source_length=0), "E222"),
    (dict(teacher_forcing=2.0), "E201"),
])
def test_bad_options_are_refused(data, tmp_path, options, code):
    with pytest.raises(MalmoiError) as e:
        malmoi.train(task="seq2seq", data=data["train"], source="Q", target="A", out=tmp_path / "run",
                     progress=False, **options)
    assert e.value.code == code
    assert not (tmp_path / "run").exists()


def test_generators_refuse_runs_that_do_not_generate(tmp_path):
    (tmp_path / "malmoi.json").write_text(json.dumps({"task": "classify"}), encoding="utf-8")
    with pytest.raises(MalmoiError) as e:
        load_generator(tmp_path)
    assert e.value.code == "E430"


# ---------------------------------------------------------------------------------------- CLI


def test_cli_generate_prints_answers_and_json(trained, cli):
    run = trained[0].run
    code, out, _ = cli("generate", run, "배고파", "--beams", "3")
    assert code == 0 and out.strip() == load_generator(run).generate(["배고파"], beams=3)[0].text
    code, out, _ = cli("generate", run, "배고파", "심심해", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["source"] for r in rows] == ["배고파", "심심해"]
    assert set(rows[0]) == {"source", "text", "tokens", "score"}


def test_cli_errors_are_one_line(trained, cli):
    code, out, err = cli("generate", trained[0].run, "   ")
    assert code == 2 and err.count("\n") == 1 and "E421" in err and "Traceback" not in err
    code, _, err = cli("generate", trained[0].run, "배고파", "--beams", "0")
    assert code == 2 and "E224" in err


def test_cli_attention_writes_a_png(trained, tmp_path, cli):
    code, out, _ = cli("attention", trained[0].run, "오늘 날씨 어때?", "--out", tmp_path / "a.png",
                           "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["source_tokens"] == ["오늘", "날씨", "어때?"]
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_chat_answers_each_line_and_ends_cleanly_on_eof(trained):
    run = trained[0].run
    proc = subprocess.run([sys.executable, "-m", "malmoi", "chat", str(run)], input="배고파\n\n고마워\n",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = [a.text for a in load_generator(run).generate(["배고파", "고마워"])]
    assert proc.stdout.splitlines() == expected
    assert "Traceback" not in proc.stderr


def test_cli_train_seq2seq(data, tmp_path, cli):
    code, out, err = cli("train", "seq2seq", "--data", data["train"], "--source", "Q", "--target", "A",
                             "--out", tmp_path / "run", "--preset", "lstm-luong", "--units", "words",
                             "--epochs", "1", "--batch-size", "64", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result["metrics"]) >= {"loss", "perplexity", "bleu", "chrf"}
    code, _, err = cli("train", "seq2seq", "--data", data["train"], "--source", "Q", "--target", "A",
                           "--out", tmp_path / "run", "--units", "words")
    assert code == 2 and "E301" in err  # an existing run is never overwritten


def test_resume_continues_a_run_with_its_own_vocabulary_and_model(data, tmp_path):
    common = dict(task="seq2seq", data=data["train"], source="Q", target="A", out=tmp_path / "run",
                  preset="lstm-bahdanau", units="words", batch_size=32, model_overrides=TINY, progress=False,
                  say=lambda _: None)
    first = malmoi.train(epochs=1, keep_checkpoints=True, **common)
    vocab = (tmp_path / "run" / "malmoi_vocab.json").read_text(encoding="utf-8")
    # the resumed command asks for another preset: the run's own is kept
    second = malmoi.train(epochs=2, resume=True, **{**common, "preset": "lstm"})
    assert second.steps == 2 * first.steps
    assert (tmp_path / "run" / "malmoi_vocab.json").read_text(encoding="utf-8") == vocab
    meta = json.loads((tmp_path / "run" / "malmoi.json").read_text(encoding="utf-8"))
    assert meta["attention"] == "bahdanau" and meta["status"] == "done"
    assert malmoi.load(tmp_path / "run").model.config.attention == "bahdanau"


@pytest.mark.parametrize("select_by", ["chrf", "loss"])
def test_the_exported_model_is_the_evaluated_best_by_the_chosen_metric(data, tmp_path, select_by):
    """With --select-by chrf the exported checkpoint is the evaluation of highest chrF (not least
    loss), and its answers score exactly that chrF again."""
    result = malmoi.train(task="seq2seq", data=data["train"], source="Q", target="A", out=tmp_path / "run",
                          preset="lstm-bahdanau", units="words", epochs=6, batch_size=16, lr=5e-3, select_by=select_by,
                          valid_split=0.25, model_overrides=TINY, progress=False, say=lambda _: None)
    evals = [json.loads(line) for line in (result.run / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in evals if e["event"] == "eval"]
    best = max(evals, key=lambda e: e["chrf"]) if select_by == "chrf" else min(evals, key=lambda e: e["loss"])
    assert result.metrics[select_by] == best[select_by]
    meta = json.loads((result.run / "malmoi.json").read_text(encoding="utf-8"))
    split = read_pair_data(Seq2SeqOptions(data=data["train"], source="Q", target="A", out="-", valid_split=0.25),
                           lambda _: None)
    answers = [a.text for a in malmoi.load(result.run).generate(split.valid_sources)]
    chrf = sacrebleu.corpus_chrf(answers, [split.valid_targets]).score
    assert chrf == pytest.approx(best["chrf"], abs=1e-6) and meta["args"]["select_by"] == select_by


def test_an_unknown_selection_metric_is_refused(data, tmp_path):
    with pytest.raises(MalmoiError) as e:
        malmoi.train(task="seq2seq", data=data["train"], source="Q", target="A", out=tmp_path / "run",
                     select_by="accuracy")
    assert e.value.code == "E201" and "--select-by" in str(e.value)


def test_cli_eval_scores_the_answers_against_the_targets(trained, data, cli):
    run = trained[0].run
    answers = load_generator(run).generate([q for q, _ in PAIRS])
    code, out, _ = cli("eval", run, "--data", data["train"], "--json", "--errors", "2")
    scores = json.loads(out)
    assert code == 0 and scores["pairs"] == 16 * len(PAIRS)
    right = sum(a.text == gold for a, (_, gold) in zip(answers, PAIRS)) / len(PAIRS)
    assert scores["exact"] == pytest.approx(right)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf([a.text for a in answers] * 16,
                                                                 [[g for _, g in PAIRS] * 16]).score)
    assert len(scores["errors"]) == 2
    code, out, _ = cli("eval", run, "--data", data["train"])
    assert code == 0 and out.startswith("BLEU ") and "ROUGE-L" in out


def test_cli_eval_refuses_a_file_without_the_columns(trained, data, cli):
    bad = data["tmp"] / "bad.csv"
    bad.write_text("question,answer\n배고파,맛있는 거 드세요\n", encoding="utf-8")
    code, _, err = cli("eval", trained[0].run, "--data", bad)
    assert code == 2 and "E104" in err and err.count("\n") == 1
