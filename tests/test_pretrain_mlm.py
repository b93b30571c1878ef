"""MLM pretraining end to end on tiny models: packing, the sparse head, overfitting a tiny corpus,
the run directory as a Hugging Face folder, fine-tuning it with `train classify --pretrained`,
exact resume after a crash, and one-line CLI errors."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from malmoi.data import batching
from malmoi.errors import MalmoiError
from malmoi.data.datasets import pack_blocks
from malmoi.data.splits import split_texts
from malmoi.models.mlm import build_mlm
from malmoi.tasks import train
from malmoi.tasks.mlm import MLMOptions
from malmoi.use.mask_filler import MaskFiller

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
CORPUS = [
    "나는 너를 정말 좋아해",
    "오늘 날씨가 정말 좋다",
    "이 영화는 배우 연기가 최고다",
    "주말에 친구랑 영화 보러 갔다",
    "스토리가 지루하고 음악도 별로",
    "다음 주에 다시 만나자",
    "배가 고파서 라면을 끓였다",
    "비가 와서 우산을 챙겼다",
]


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def options(tmp_path, **overrides):
    base = dict(data=write_lines(tmp_path / "corpus.txt", CORPUS * 4), out=tmp_path / "mlm", preset="bert-tiny",
                model_overrides=TINY, vocab_size=120, max_length=24, valid_split=0.1, batch_size=8, lr=3e-3,
                epochs=2, progress=False)
    return {**base, **overrides}


def train_losses(run) -> list[float]:
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    return [e["loss"] for e in events if e["event"] == "train"]


# ---------------------------------------------------------------------------------------- data


@pytest.mark.parametrize("docs, max_length, pack, expected", [
    # two short documents share a block; [CLS]=2 first, [SEP]=3 after each document
    ([[10, 11], [12]], 8, True, [[2, 10, 11, 3, 12, 3]]),
    # the next document does not fit: it opens a new block
    ([[10, 11, 12], [13, 14]], 6, True, [[2, 10, 11, 12, 3], [2, 13, 14, 3]]),
    # a document longer than a block is cut into block-sized pieces
    ([[10, 11, 12, 13, 14]], 4, True, [[2, 10, 11, 3], [2, 12, 13, 3], [2, 14, 3]]),
    # without packing: one block per document, truncated; empty documents vanish
    ([[10, 11, 12, 13, 14], [], [15]], 4, False, [[2, 10, 11, 3], [2, 15, 3]]),
])
def test_pack_blocks(docs, max_length, pack, expected):
    blocks = pack_blocks(docs, max_length, cls_id=2, sep_id=3, pack=pack)
    assert blocks == expected
    assert all(len(b) <= max_length for b in blocks)


def test_split_is_seeded_and_keeps_order():
    texts = [f"문장 {i}" for i in range(100)]
    train, valid = split_texts(texts, 0.1, max_valid=5, seed=1)
    assert len(valid) == 5 and len(train) == 95
    assert sorted(train + valid, key=texts.index) == texts
    assert train == sorted(train, key=texts.index)
    assert split_texts(texts, 0.1, 5, seed=1) == (train, valid)
    assert split_texts(texts, 0.1, 5, seed=2) != (train, valid)


# ---------------------------------------------------------------------------------------- model


def test_sparse_head_scores_the_masked_positions_like_bert_for_masked_lm():
    from malmoi.text.subword import train_tokenizer

    tok = train_tokenizer(CORPUS, vocab_size=80)
    model = build_mlm("bert-tiny", tok, TINY).eval()
    batch = batching.PadCollator()([{"input_ids": ids} for ids in tok(CORPUS[:3])["input_ids"]])
    torch.manual_seed(0)
    masked, labels = batching.MLMCollator.from_tokenizer(tok, mlm_probability=0.5).mask(batch["input_ids"])
    attention = (batch["input_ids"] != tok.pad_token_id).long()
    with torch.no_grad():
        sparse = model(input_ids=masked, attention_mask=attention, labels=labels)
        full = model.mlm(input_ids=masked, attention_mask=attention, labels=labels)
    where = labels != -100
    assert sparse.logits.shape == (int(where.sum()), len(tok))
    torch.testing.assert_close(sparse.logits, full.logits[where], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sparse.loss, full.loss, rtol=1e-5, atol=1e-5)


def test_a_batch_without_masked_tokens_gives_zero_loss_with_gradients():
    from malmoi.text.subword import train_tokenizer

    model = build_mlm("bert-tiny", train_tokenizer(CORPUS, vocab_size=80), TINY)
    ids = torch.tensor([[2, 10, 11, 3]])
    out = model(input_ids=ids, labels=torch.full_like(ids, -100))
    assert out.loss.item() == 0.0
    out.loss.backward()  # no error: the graph reaches the parameters


# ---------------------------------------------------------------------------------------- pretraining


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny encoder trained until it has memorised the corpus (one sentence per block, no dropout)."""
    tmp = tmp_path_factory.mktemp("mlm")
    memoriser = {**TINY, "hidden_size": 64, "intermediate_size": 128, "hidden_dropout_prob": 0.0,
                 "attention_probs_dropout_prob": 0.0}
    result = train(task="mlm", **options(tmp, epochs=60, batch_size=4, log_every=5, mlm_probability=0.3, pack=False,
                                valid_split=0.25, model_overrides=memoriser, keep_checkpoints=True))
    return result


def test_loss_falls_on_a_corpus_it_can_overfit(pretrained):
    losses = train_losses(pretrained.run)
    assert len(losses) >= 10
    assert sum(losses[-3:]) / 3 < 0.25 * sum(losses[:3]) / 3
    # held-out lines are copies of training lines here; guessing would score ln(120) = 4.8 and
    # 1% accuracy. Only ~20 tokens are masked in validation, so the accuracy bound leaves room for noise.
    assert pretrained.metrics["loss"] < 2.0 and pretrained.metrics["accuracy"] > 0.3
    assert pretrained.stopped_by == "epochs"


def test_run_directory_is_a_hugging_face_masked_lm_folder(pretrained, monkeypatch):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = pretrained.run
    for name in ("config.json", "model.safetensors", "tokenizer.json", "malmoi.json", "metrics.jsonl",
                 "curve.png", "checkpoints/last/state.json", "checkpoints/best/model.safetensors"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "malmoi.json").read_text(encoding="utf-8"))
    assert meta["task"] == "mlm" and meta["status"] == "done" and meta["preset"] == "bert-tiny"
    model = AutoModelForMaskedLM.from_pretrained(run, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(run, local_files_only=True)
    assert type(model).__name__ == "BertForMaskedLM"
    assert model.config.hidden_size == 64 and model.config.vocab_size == len(tok)
    assert tok.mask_token == "[MASK]"
    # the exported weights are the best checkpoint's
    best = load_file(str(run / "checkpoints/best/model.safetensors"))
    saved = model.state_dict()
    for key, value in best.items():
        torch.testing.assert_close(saved[key.removeprefix("mlm.")], value)


@pytest.mark.parametrize("text, expected", [
    ("오늘 날씨가 [MASK] 좋다", "정말"),
    ("나는 너를 [MASK] 좋아해", "정말"),
    ("다음 주에 [MASK] 만나자", "다시"),
])
def test_the_memorised_corpus_fills_masks(pretrained, text, expected):
    fills = MaskFiller.from_run(pretrained.run).fill(text, top_k=5)
    assert expected in [f.token.removeprefix("##") for f in fills]
    assert all(0 <= f.score <= 1 for f in fills)


def test_fill_needs_a_mask(pretrained):
    with pytest.raises(MalmoiError, match="E441"):
        MaskFiller.from_run(pretrained.run).fill("마스크가 없다")


def test_classify_pretrained_starts_from_the_pretrained_encoder_with_a_new_head(pretrained, tmp_path):
    """The path ``--pretrained`` takes: every encoder weight equals the pretrained one, only the head is new."""
    from transformers import AutoModelForMaskedLM

    from malmoi.tasks import ClassifyOptions, ClassifyTask
    from malmoi.text.subword import load_tokenizer

    reviews = tmp_path / "reviews.tsv"
    reviews.write_text("document\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(CORPUS)), encoding="utf-8")
    opts = ClassifyOptions(data=reviews, text="document", label="label", out=tmp_path / "cls",
                           pretrained=pretrained.run, progress=False)
    task = ClassifyTask()
    tokenizer = task.build_tokenizer(opts, CORPUS, lambda s: None)
    model = task.build_model(opts, tokenizer, num_labels=2)
    mlm = AutoModelForMaskedLM.from_pretrained(pretrained.run)
    expected = mlm.bert.state_dict()
    encoder = model.encoder.state_dict()
    assert set(encoder) == set(expected)  # no pooler, nothing newly initialised
    for key in expected:
        torch.testing.assert_close(encoder[key], expected[key], rtol=0, atol=0)
    assert tokenizer.get_vocab() == load_tokenizer(pretrained.run).get_vocab()
    assert model.head.weight.shape == (2, 64)
    assert torch.count_nonzero(model.head.bias) == 0  # a fresh head: zero bias, small random weights
    assert 0 < float(model.head.weight.detach().std()) < 0.1


def test_cli_classify_pretrained_fine_tunes_the_run(pretrained, tmp_path, cli):
    """Through the command line: a near-zero learning rate keeps the exported encoder at the pretrained weights."""
    from transformers import AutoModel, AutoModelForMaskedLM

    reviews = tmp_path / "reviews.tsv"
    reviews.write_text("document\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(CORPUS * 2)),
                       encoding="utf-8")
    out = tmp_path / "cls"
    code, stdout, err = cli("train", "classify", "--data", reviews, "--text", "document", "--label",
                                "label", "--pretrained", pretrained.run, "--out", out, "--epochs", "1",
                                "--batch-size", "8", "--lr", "1e-12", "--max-length", "16", "--json")
    assert code == 0, err
    assert json.loads(stdout)["steps"] == 2
    expected = AutoModelForMaskedLM.from_pretrained(pretrained.run).bert.state_dict()
    tuned = AutoModel.from_pretrained(out, add_pooling_layer=False).state_dict()
    assert set(tuned) == set(expected)
    for key in expected:
        torch.testing.assert_close(tuned[key], expected[key], rtol=0, atol=1e-8)
    assert (out / "head.safetensors").is_file()
    assert json.loads((out / "malmoi.json").read_text(encoding="utf-8"))["pretrained"] == str(pretrained.run)


# ---------------------------------------------------------------------------------------- resume


def test_resume_after_a_crash_gives_the_uninterrupted_weights(tmp_path, monkeypatch):
    from malmoi.text.subword import train_tokenizer

    # one tokenizer for both runs (--tokenizer): WordPiece training may break frequency ties differently
    tokenizer = tmp_path / "tokenizer"
    train_tokenizer(CORPUS, vocab_size=120, out=tokenizer)
    same = dict(eval_every=3, batch_size=4, tokenizer=tokenizer)
    whole = train(task="mlm", **options(tmp_path, out=tmp_path / "whole", **same))
    steps = whole.steps
    assert steps >= 6

    calls = {"n": 0}
    real_call = batching.MLMCollator.__call__

    def crashing(self, items):
        calls["n"] += 1
        if calls["n"] == 6:  # in step 5: steps 1-3, one validation batch at step 3, step 4
            raise RuntimeError("simulated crash")
        return real_call(self, items)

    monkeypatch.setattr(batching.MLMCollator, "__call__", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(task="mlm", **options(tmp_path, out=tmp_path / "cut", **same))
    monkeypatch.setattr(batching.MLMCollator, "__call__", real_call)
    # a resumed run takes the model and the data split from the run, whatever the command says now
    resumed = train(task="mlm", **options(tmp_path, out=tmp_path / "cut", **same, resume=True, max_length=16,
                                 valid_split=0.5))
    assert resumed.steps == steps
    events = [json.loads(l) for l in (tmp_path / "cut" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [e["step"] for e in events if e["event"] == "resume"] == [3]
    a = load_file(str(tmp_path / "whole" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


# ---------------------------------------------------------------------------------------- errors


def test_options_are_checked():
    with pytest.raises(MalmoiError, match="E250"):
        MLMOptions(data="x.txt", out="runs/x", preset="gpt-mini")
    with pytest.raises(MalmoiError, match="E222"):
        MLMOptions(data="x.txt", out="runs/x", max_length=2)
    with pytest.raises(MalmoiError, match="E226"):
        MLMOptions(data="x.txt", out="runs/x", valid_split=1.5)


@pytest.mark.parametrize("make_args, code", [
    (lambda tmp, corpus: ["--data", tmp / "missing.txt", "--out", tmp / "run"], "E101"),
    (lambda tmp, corpus: ["--data", corpus, "--out", tmp / "taken"], "E301"),
    (lambda tmp, corpus: ["--data", corpus, "--out", tmp / "run", "--preset", "gpt-mini"], "E250"),
    (lambda tmp, corpus: ["--data", corpus, "--out", tmp / "run", "--resume"], "E302"),
    (lambda tmp, corpus: ["--data", corpus, "--out", tmp / "run", "--time-budget", "soon"], "E203"),
])
def test_cli_errors_are_one_line(tmp_path, cli, make_args, code):
    corpus = write_lines(tmp_path / "corpus.txt", CORPUS)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    exit_code, out, err = cli("pretrain", "mlm", *make_args(tmp_path, corpus))
    assert exit_code == 2
    assert err.count("\n") == 1 and err.startswith("error:") and code in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()  # no half-made run directory


def test_cli_pretrains_and_prints_a_summary(tmp_path, cli):
    corpus = write_lines(tmp_path / "corpus.txt", CORPUS * 3)
    code, out, err = cli("pretrain", "mlm", "--data", corpus, "--out", tmp_path / "run", "--preset",
                             "bert-tiny", "--vocab-size", "100", "--max-length", "16", "--epochs", "1",
                             "--batch-size", "16", "--valid-split", "0.2")
    assert code == 0, err
    assert "masked-token accuracy" in out and str(tmp_path / "run") in out
    assert (tmp_path / "run" / "model.safetensors").is_file()
