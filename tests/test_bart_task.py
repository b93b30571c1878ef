"""The BART-style seq2seq end to end: ``train seq2seq --preset bart-mini`` into a Hugging Face run
directory, overfitting a few Korean pairs, greedy/beam/sampled/streamed answers, save → load,
cross-attention maps, the generate/chat/attention commands and clear errors."""
from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sys

import pytest
import torch

import malmoi
from malmoi.use.bart import BartGenerator
from malmoi.errors import MalmoiError
from malmoi.use import load_generator

pytestmark = pytest.mark.usefixtures("one_thread")

PAIRS = [
    ("안녕하세요", "반가워요 좋은 하루예요"),
    ("배고파", "맛있는 거 드세요"),
    ("오늘 날씨 어때?", "맑고 따뜻해요"),
    ("심심해", "산책 어때요?"),
]
TINY = dict(d_model=32, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=64, decoder_ffn_dim=64, dropout=0.0)
# every pair in one batch, a large constant step: 40 steps memorise the four answers
FAST = dict(batch_size=4, lr=1e-2, warmup=0.0, max_steps=40, eval_every=20, model_overrides=TINY, progress=False)


def write_pairs(path, pairs):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Q", "A"])
        writer.writerows(pairs)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from malmoi.text.subword import train_tokenizer

    tmp = tmp_path_factory.mktemp("bart")
    pairs = write_pairs(tmp / "pairs.csv", PAIRS)
    # a plain BPE tokenizer keeps most tests off Kiwi; one test trains the default morpheme BPE
    train_tokenizer([t for pair in PAIRS for t in pair] * 4, kind="bpe", vocab_size=80, out=tmp / "tok")
    return {"tmp": tmp, "pairs": pairs, "tokenizer": tmp / "tok"}


@pytest.fixture(scope="module")
def trained(data):
    """A tiny BART that has memorised PAIRS (validated on the same pairs)."""
    said: list[str] = []
    result = malmoi.train(task="seq2seq", data=data["pairs"], valid=data["pairs"], source="Q", target="A",
                          out=data["tmp"] / "run", preset="bart-mini", tokenizer=data["tokenizer"],
                          say=said.append, **FAST)
    return result, said


@pytest.fixture(scope="module")
def generator(trained):
    return load_generator(trained[0].run)


# ---------------------------------------------------------------------------------------- training


def test_the_run_is_a_hugging_face_bart_folder_with_consistent_ids(trained):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    run = trained[0].run
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "malmoi.json",
                 "metrics.jsonl", "curve.png"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "malmoi.json").read_text(encoding="utf-8"))
    assert (meta["task"], meta["architecture"], meta["preset"], meta["status"]) == \
        ("seq2seq", "bart-seq2seq", "bart-mini", "done")
    tok = AutoTokenizer.from_pretrained(run)
    config = AutoModelForSeq2SeqLM.from_pretrained(run).config
    assert config.model_type == "mbart" and config.d_model == 32 and config.vocab_size == len(tok)
    assert config.pad_token_id == tok.pad_token_id == 0
    assert config.decoder_start_token_id == config.bos_token_id == tok.bos_token_id == tok.cls_token_id
    assert config.eos_token_id == tok.eos_token_id == tok.sep_token_id
    assert config.forced_eos_token_id is None  # nothing overwrites the last token at the length limit


def test_the_decoder_starts_from_cls_in_training_as_in_generation(generator):
    """mBART's own label shift would start the decoder from the last token of the target ([SEP])."""
    from transformers.models.bart.modeling_bart import shift_tokens_right

    model, codec = generator.model, generator.codec
    labels = torch.tensor(codec.target_encoder(["맑고 따뜻해요"])["input_ids"])
    src = torch.tensor(generator._encode(["오늘 날씨 어때?"]))
    shifted = shift_tokens_right(labels, codec.pad_id, codec.bos_id)
    assert shifted[0, 0] == codec.bos_id == model.config.decoder_start_token_id
    with torch.inference_mode():
        implicit = model(input_ids=src, labels=labels)
        explicit = model(input_ids=src, decoder_input_ids=shifted, labels=labels)
    assert torch.equal(implicit.logits, explicit.logits) and torch.equal(implicit.loss, explicit.loss)


def test_a_post_norm_bart_run_still_loads_and_answers(trained, tmp_path):
    """Runs saved before bart-mini took pre-norm layers hold a plain Hugging Face BART."""
    from transformers import BartConfig, BartForConditionalGeneration

    run = tmp_path / "old"
    shutil.copytree(trained[0].run, run)
    config = BartConfig(**{k: v for k, v in json.loads((run / "config.json").read_text()).items()
                           if k not in ("model_type", "architectures")})
    torch.manual_seed(0)
    BartForConditionalGeneration(config).save_pretrained(run)
    old = load_generator(run)
    assert type(old.model) is BartForConditionalGeneration
    assert isinstance(old.generate(["배고파"])[0].text, str)


def test_validation_reports_loss_perplexity_bleu_chrf_and_samples(trained):
    result, said = trained
    m = result.metrics
    assert set(m) >= {"loss", "perplexity", "bleu", "chrf"}
    assert m["perplexity"] == pytest.approx(math.exp(m["loss"]))
    assert m["chrf"] > 90  # the validation pairs are the memorised ones
    evals = [json.loads(line) for line in (result.run / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in evals if e["event"] == "eval"]
    assert len(evals) == 2 and evals[-1]["loss"] < evals[0]["loss"]
    samples = [s for s in said if s.startswith("  Q: ")]
    assert len(samples) == 3 * len(evals)  # three sample answers per evaluation
    assert samples[-3:] == [f"  Q: {q}\n  A: {a}" for q, a in PAIRS[:3]]


def test_training_records_the_decoding_that_scores_higher_on_validation(trained, generator):
    from malmoi.runs import read_meta
    from malmoi.training.text_metrics import text_scores

    result, said = trained
    decoding = read_meta(result.run)["decoding"]
    questions, answers = [q for q, _ in PAIRS], [a for _, a in PAIRS]
    for beams in (1, 4):  # the recorded figures are the run's answers to its validation pairs
        chrf = text_scores([a.text for a in generator.generate(questions, beams=beams)], answers)["chrf"]
        assert decoding["chrf"][str(beams)] == pytest.approx(chrf, abs=0.01)
    assert decoding["pairs"] == len(PAIRS)
    assert decoding["beams"] == (4 if decoding["chrf"]["4"] > decoding["chrf"]["1"] else 1)
    assert any(s.startswith("decoding: ") for s in said)


def test_a_run_decodes_the_recorded_way_unless_told_otherwise(trained, tmp_path, cli):
    from malmoi.runs import read_meta, write_meta

    run = tmp_path / "beam"
    shutil.copytree(trained[0].run, run)
    write_meta(run, read_meta(run) | {"decoding": {"beams": 3}})
    beam = load_generator(run)
    questions = [q for q, _ in PAIRS]
    scores = {b: [a.score for a in beam.generate(questions, beams=b)] for b in (1, 3)}
    assert scores[1] != pytest.approx(scores[3])  # greedy sums log p, beam search normalises by length
    assert [a.score for a in beam.generate(questions)] == pytest.approx(scores[3])
    assert [a.score for a in beam.generate(questions, greedy=True)] == pytest.approx(scores[1])
    assert beam.generate(questions, top_k=5, seed=1)  # sampling asks for no beams: not refused
    code, out, err = cli("generate", run, "배고파", "--json")
    assert code == 0 and json.loads(out)[0]["score"] == pytest.approx(scores[3][1]), err
    code, out, err = cli("generate", run, "배고파", "--beams", "1", "--json")
    assert code == 0 and json.loads(out)[0]["score"] == pytest.approx(scores[1][1]), err


@pytest.mark.parametrize("question,answer", PAIRS)
def test_greedy_generation_reproduces_the_memorised_answers(generator, question, answer):
    assert isinstance(generator, BartGenerator)
    got = generator.generate([question])[0]
    assert got.text == answer
    assert got.score < 0 and math.isfinite(got.score)


def test_answers_batch_like_one_at_a_time(generator):
    questions = [q for q, _ in PAIRS]
    batched = generator.generate(questions, batch_size=3)  # a padded batch and a batch of one
    assert [a.text for a in batched] == [generator.generate(q)[0].text for q in questions]
    assert [a.score for a in batched] == pytest.approx([generator.generate(q)[0].score for q in questions], abs=1e-4)


def test_beam_width_one_is_greedy_and_greedy_is_the_argmax_chain(generator):
    questions = [q for q, _ in PAIRS]
    greedy = generator.generate(questions, greedy=True)
    assert [(a.text, a.tokens) for a in generator.generate(questions, beams=1)] == [(a.text, a.tokens) for a in greedy]
    model, codec = generator.model, generator.codec
    for question, answer in zip(questions, greedy):
        src = torch.tensor([codec.tokenizer(question)["input_ids"]])
        ids = [model.config.decoder_start_token_id]
        with torch.no_grad():  # one full pass per token, no cache: the reference greedy decoder
            while len(ids) <= generator.max_target_length:
                nxt = int(model(input_ids=src, decoder_input_ids=torch.tensor([ids])).logits[0, -1].argmax())
                if nxt == codec.eos_id:
                    break
                ids.append(nxt)
        assert codec.pieces(ids[1:]) == answer.tokens


def test_beam_search_and_sampling(generator):
    beams = generator.generate([q for q, _ in PAIRS], beams=3)
    assert [a.text for a in beams] == [a for _, a in PAIRS]
    assert all(-5 < a.score < 0 for a in beams)  # length-normalised log-probability
    first = generator.generate(["배고파"], top_k=5, temperature=1.5, seed=3)[0]
    assert generator.generate(["배고파"], top_k=5, temperature=1.5, seed=3)[0] == first  # same seed, same text
    assert generator.generate(["배고파"], max_new_tokens=2)[0].tokens == generator.generate(["배고파"])[0].tokens[:2]


def test_streaming_yields_the_answer_piece_by_piece(generator):
    for question, answer in PAIRS:
        pieces = list(generator.stream(question))
        assert "".join(pieces) == answer and len(pieces) > 1


def test_save_then_load_gives_identical_generations(generator, tmp_path):
    generator.model.save_pretrained(tmp_path)
    generator.codec.save(tmp_path)
    shutil.copy(generator.run / "malmoi.json", tmp_path / "malmoi.json")
    again = malmoi.load(tmp_path)
    questions = [q for q, _ in PAIRS]
    for options in (dict(), dict(beams=3), dict(top_p=0.9, seed=7)):
        assert again.generate(questions, **options) == generator.generate(questions, **options)
    src = torch.tensor([generator.codec.tokenizer("배고파")["input_ids"]])
    dec = torch.tensor([[generator.model.config.decoder_start_token_id]])
    with torch.no_grad():
        assert torch.equal(again.model(input_ids=src, decoder_input_ids=dec).logits,
                           generator.model(input_ids=src, decoder_input_ids=dec).logits)


# ---------------------------------------------------------------------------------------- attention


def test_attention_rows_are_distributions_over_the_source_tokens(generator):
    amap = generator.attention("오늘 날씨 어때?")
    assert amap.text == "맑고 따뜻해요"
    tok = generator.codec.tokenizer
    assert amap.source_tokens == tok.convert_ids_to_tokens(tok("오늘 날씨 어때?")["input_ids"])
    assert amap.source_tokens[0] == "[CLS]" and amap.source_tokens[-1] == "[SEP]"
    assert amap.target_tokens == generator.generate(["오늘 날씨 어때?"])[0].tokens
    weights = torch.tensor(amap.weights)
    assert weights.shape == (len(amap.target_tokens), len(amap.source_tokens))
    assert torch.allclose(weights.sum(-1), torch.ones(len(weights)), atol=1e-5)
    assert bool((weights >= 0).all())


def test_attention_equals_what_generate_returns_with_output_attentions(generator):
    """The teacher-forced pass over the answer sees what greedy generate() saw at each step."""
    model, codec = generator.model, generator.codec
    question = "안녕하세요"
    src = torch.tensor([codec.tokenizer(question)["input_ids"]])
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model.generate(src, max_new_tokens=20, do_sample=False, output_attentions=True,
                                 return_dict_in_generate=True)
    finally:
        model.set_attn_implementation("sdpa")
    for layer in (0, -1):
        steps = [step[layer][0].mean(0)[-1] for step in out.cross_attentions]  # (heads, 1, S) → (S,)
        amap = generator.attention(question, layer=layer)
        assert torch.allclose(torch.tensor(amap.weights), torch.stack(steps)[: len(amap.weights)], atol=1e-5)


def test_attention_layer_out_of_range(generator):
    with pytest.raises(MalmoiError) as e:
        generator.attention("배고파", layer=1)  # the tiny decoder has one layer
    assert e.value.code == "E280"


# ---------------------------------------------------------------------------------------- CLI


def test_cli_attention_writes_a_png(trained, tmp_path, cli):
    run = trained[0].run
    code, out, err = cli("attention", run, "오늘 날씨 어때?", "--out", tmp_path / "att.png", "--json",
                             "--layer", "0")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["text"] == "맑고 따뜻해요" and payload["source_tokens"][0] == "[CLS]"
    assert (tmp_path / "att.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_generate_prints_answers(trained, cli):
    run = trained[0].run
    code, out, err = cli("generate", run, "배고파", "--beams", "3")
    assert code == 0 and out == "맛있는 거 드세요\n", err
    code, out, _ = cli("generate", run, "배고파", "심심해", "--json")
    rows = json.loads(out)
    assert code == 0 and [(r["source"], r["text"]) for r in rows] == [PAIRS[1], PAIRS[3]]


def test_cli_generate_samples_and_streams(trained, generator, cli):
    run = trained[0].run
    code, out, err = cli("generate", run, "배고파", "--top-k", "5", "--temperature", "1.5", "--seed", "3")
    assert code == 0, err
    assert out == generator.generate(["배고파"], top_k=5, temperature=1.5, seed=3)[0].text + "\n"
    code, out, err = cli("generate", run, "배고파", "--stream")
    assert code == 0 and out == "맛있는 거 드세요\n", err
    code, out, err = cli("generate", run, "배고파", "--greedy", "--json")
    assert code == 0 and json.loads(out)[0]["text"] == "맛있는 거 드세요", err


@pytest.mark.parametrize("argv,code", [
    (["generate", "{run}", ""], "E421"),                     # empty input
    (["generate", "{run}", "   "], "E421"),
    (["generate", "{run}", "말 " * 80], "E423"),             # longer than --max-source-length (64)
    (["generate", "{run}", "배고파", "--beams", "0"], "E224"),
    (["generate", "{run}", "배고파", "--greedy", "--top-p", "0.9"], "E274"),
    (["attention", "{run}", "배고파", "--out", "{tmp}/a.png", "--layer", "3"], "E280"),
])
def test_cli_errors_are_one_line_without_a_traceback(trained, tmp_path, cli, argv, code):
    argv = [a.format(run=trained[0].run, tmp=tmp_path) for a in argv]
    exit_code, out, err = cli(*argv)
    assert exit_code == 2 and out == ""
    assert err.count("\n") == 1 and code in err and "Traceback" not in err


def test_cli_chat_answers_each_line_and_ends_on_eof(trained, cli, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("배고파\n\n   \n심심해\n"))  # then EOF
    code, out, err = cli("chat", trained[0].run, "--beams", "2")
    assert code == 0 and out.splitlines() == ["맛있는 거 드세요", "산책 어때요?"]
    assert "Traceback" not in err


def test_cli_train_seq2seq_with_the_full_preset(data, tmp_path, cli):
    """The documented command, on the real bart-mini sizes, with the default Kiwi-morpheme BPE."""
    code, out, err = cli("train", "seq2seq", "--data", data["pairs"], "--valid", data["pairs"],
                             "--source", "Q", "--target", "A", "--preset", "bart-mini", "--vocab-size", "60",
                             "--epochs", "1", "--batch-size", "4", "--out", tmp_path / "run", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result["metrics"]) >= {"loss", "perplexity", "bleu", "chrf"} and result["steps"] == 1
    generator = load_generator(tmp_path / "run")
    assert generator.model.config.d_model == 128 and generator.model.config.decoder_layers == 2
    assert json.loads((tmp_path / "run" / "tokenizer_config.json").read_text())["malmoi_morphemes"] is True


def test_the_preset_reads_its_source_and_answers_pairs_it_never_saw(tmp_path):
    """Reversing four words out of twenty cannot be learnt without reading the source. After these 150
    steps the preset gets 49 of the 50 right; with its embeddings scaled by √d_model (tied to the output
    layer) 38, and the earlier post-norm layers 256 wide with scaled embeddings (1 + 1 of them) 10."""
    import random

    from malmoi.text.subword import train_tokenizer

    words = ("사과 바다 하늘 구름 나무 강물 바람 별빛 노래 기차 "
             "우산 연필 책상 의자 창문 거울 시계 모자 신발 편지").split()
    rng = random.Random(0)
    orders = list({tuple(rng.sample(words, 4)) for _ in range(3000)})
    pairs = [(" ".join(o), " ".join(reversed(o))) for o in orders]
    train, held_out = pairs[:-50], pairs[-50:]
    train_tokenizer(words * 4, kind="bpe", vocab_size=60, out=tmp_path / "tok")
    result = malmoi.train(task="seq2seq", data=write_pairs(tmp_path / "train.csv", train),
                          valid=write_pairs(tmp_path / "valid.csv", held_out[:8]), source="Q", target="A",
                          out=tmp_path / "run", preset="bart-mini", tokenizer=tmp_path / "tok",
                          batch_size=32, max_steps=150,
                          select_by="loss", progress=False, say=lambda _: None)
    answers = [a.text for a in malmoi.load(result.run).generate([q for q, _ in held_out])]
    right = sum(a == reference for a, (_, reference) in zip(answers, held_out))
    assert right >= 45, list(zip(answers, held_out))[:5]


# ---------------------------------------------------------------------------------------- options


def test_resume_keeps_the_transformer_whatever_the_new_command_says(data, tmp_path):
    common = dict(task="seq2seq", data=data["pairs"], valid=data["pairs"], source="Q", target="A",
                  out=tmp_path / "run", tokenizer=data["tokenizer"], say=lambda _: None)
    first = malmoi.train(preset="bart-mini", keep_checkpoints=True, **{**FAST, "max_steps": 2, "eval_every": 2},
                         **common)
    second = malmoi.train(resume=True, **{**FAST, "max_steps": 4, "eval_every": 2}, **common)
    assert (first.steps, second.steps) == (2, 4)  # the command's default preset (lstm-bahdanau) is ignored
    assert isinstance(malmoi.load(tmp_path / "run"), BartGenerator)


@pytest.mark.parametrize("options,code", [
    (dict(units="words"), "E228"),            # BART reads subword tokens
    (dict(teacher_forcing=0.5), "E228"),      # its decoder reads the whole target at once
    (dict(max_target_length=600), "E222"),    # beyond the 512 positions
    (dict(preset="bart-huge"), "E220"),
])
def test_bad_options_are_refused_before_a_run_directory_exists(data, tmp_path, options, code):
    with pytest.raises(MalmoiError) as e:
        malmoi.train(task="seq2seq", data=data["pairs"], source="Q", target="A", out=tmp_path / "run",
                     tokenizer=data["tokenizer"], progress=False, **{"preset": "bart-mini", **options})
    assert e.value.code == code
    if code == "E220":
        assert "bart-mini" in str(e.value)  # the message lists the transformer preset
    assert not (tmp_path / "run").exists()


def test_default_learning_rate_follows_the_family(data, tmp_path):
    from malmoi.tasks.seq2seq import Seq2SeqOptions

    common = dict(data=data["pairs"], source="Q", target="A", out=tmp_path / "run")
    assert Seq2SeqOptions(preset="bart-mini", **common).lr == 2e-3
    assert Seq2SeqOptions(preset="bart-mini", **common).vocab_size == 4000  # the preset's, unless given
    assert Seq2SeqOptions(preset="lstm-bahdanau", **common).vocab_size == 8000
    assert Seq2SeqOptions(preset="lstm-bahdanau", **common).lr == 2e-3


@pytest.mark.parametrize("options,code", [
    (dict(greedy=True, top_k=5), "E274"),
    (dict(beams=2, temperature=0.7), "E274"),
    (dict(max_new_tokens=0), "E201"),
    (dict(max_new_tokens=5000), "E222"),
])
def test_bad_generation_options(generator, options, code):
    with pytest.raises(MalmoiError) as e:
        generator.generate(["배고파"], **options)
    assert e.value.code == code


def test_the_copy_distribution_writes_source_words_never_seen_as_targets(tmp_path):
    """Targets are the last word of three. Half the words are never a target in training, so
    the vocabulary softmax learns never to write them; only copying from the source can answer held-out
    sources ending in them. With ``copy_attention`` the tiny model answers all 40 after 150 steps; without,
    none."""
    import random

    from malmoi.text.subword import train_tokenizer

    words = "사과 바다 하늘 구름 나무 강물 바람 별빛 노래 기차 우산 연필 책상 의자 창문 거울".split()
    seen, unseen = words[:8], words[8:]
    rng = random.Random(0)

    def pairs(last_words, n):
        out = []
        for _ in range(n):
            row = [*rng.sample(words, 2), rng.choice(last_words)]
            out.append((" ".join(row), row[-1]))
        return out

    train, held_out = pairs(seen, 800), pairs(unseen, 40)
    train_tokenizer(words * 4, kind="bpe", vocab_size=120, out=tmp_path / "tok")  # one token per word

    def right(copy: bool) -> int:
        result = malmoi.train(task="seq2seq", data=write_pairs(tmp_path / "train.csv", train),
                              valid=write_pairs(tmp_path / "valid.csv", train[:8]), source="Q", target="A",
                              out=tmp_path / f"run-{copy}", preset="bart-mini", tokenizer=tmp_path / "tok",
                              batch_size=32, max_steps=150, model_overrides={**TINY, "copy_attention": copy},
                              select_by="loss", progress=False, say=lambda _: None)
        answers = malmoi.load(result.run).generate([q for q, _ in held_out])
        return sum(a.text == reference for a, (_, reference) in zip(answers, held_out))

    assert right(copy=True) >= 36
    assert right(copy=False) == 0


def test_label_smoothing_applies_to_the_training_loss_only():
    from malmoi.models.bart import model_class
    from malmoi.models.presets import hf_config

    config = hf_config("bart-mini", vocab_size=40, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                       decoder_start_token_id=1, label_smoothing=0.2, **TINY)
    model = model_class(config)(config)
    source, labels = torch.randint(3, 40, (2, 6)), torch.randint(3, 40, (2, 4))
    labels[1, 2:] = -100
    model.eval()
    out = model(input_ids=source, labels=labels)
    plain = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    smoothed = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), labels.flatten(), ignore_index=-100,
                                                 label_smoothing=0.2)
    assert torch.allclose(out.loss, plain)
    model.train()  # TINY has no dropout: the same logits in training mode
    assert torch.allclose(model(input_ids=source, labels=labels).loss, smoothed)
    assert not torch.allclose(plain, smoothed)
