"""The same data, preset and seed give bit-identical weights in separate processes.

Every case below is trained twice, each time in a fresh Python: one with ``PYTHONHASHSEED=1`` and
the tokenizers library single-threaded, the other with ``PYTHONHASHSEED=2`` and its thread pool on
(and the Rust hash maps inside ``tokenizers`` seeded at random in each, as always). The weights, and
the tokenizer or vocabulary the run trained, must come out as the same bytes. The subword tokenizers
are trained, not given: WordPiece for ``bert-tiny``, BPE over Kiwi morphemes for the LSTM, BPE for
the GPT; every kind ``train_tokenizer`` knows is also trained alone, with and without the morpheme
cut. Models and data are tiny: the two processes take about 20 s (most of it imports and Kiwi's
model); a slow test does the tokenizers again at NSMC size.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REVIEWS = [
    ("이 영화 정말 재밌어요 배우들 연기가 최고예요", "1"),
    ("시간 가는 줄 모르고 봤네요 강력 추천합니다", "1"),
    ("음악이 아름답고 장면 하나하나가 그림 같아요", "1"),
    ("가족이랑 같이 보기 좋은 따뜻한 영화였어요", "1"),
    ("마지막 장면에서 눈물이 났어요 감동입니다", "1"),
    ("두 번 봐도 또 보고 싶은 영화예요", "1"),
    ("주인공의 연기가 자연스럽고 이야기가 탄탄해요", "1"),
    ("기대 이상으로 재밌었고 웃음이 끊이지 않았어요", "1"),
    ("친구에게 꼭 보라고 말해 줄 거예요", "1"),
    ("오랜만에 마음이 따뜻해지는 영화를 만났네요", "1"),
    ("연출이 훌륭하고 대사 하나하나가 좋았어요", "1"),
    ("극장에서 박수가 나올 만큼 멋진 결말이었어요", "1"),
    ("너무 지루해서 중간에 잠들었어요", "0"),
    ("돈이 아까운 영화예요 다시는 안 봅니다", "0"),
    ("이야기가 엉망이고 배우들 연기도 어색해요", "0"),
    ("광고만 요란하고 내용은 텅 비었네요", "0"),
    ("결말이 허무해서 화가 났어요", "0"),
    ("두 시간이 너무 길게 느껴졌어요 별로예요", "0"),
    ("음악이 시끄럽고 장면이 너무 어두워요", "0"),
    ("기대했는데 실망만 하고 나왔어요", "0"),
    ("억지 웃음에 억지 감동이라 불편했어요", "0"),
    ("주인공이 왜 그러는지 하나도 모르겠어요", "0"),
    ("친구가 추천해서 봤는데 최악이었어요", "0"),
    ("대사가 유치하고 연출도 엉성해요", "0"),
]
PAIRS = [
    ("안녕하세요", "반가워요 오늘 하루 어땠어요?"),
    ("배가 고파요", "따뜻한 밥 한 그릇 드세요"),
    ("오늘 날씨가 어때요?", "맑고 바람이 시원해요"),
    ("너무 심심해요", "가까운 공원에 산책 가 보세요"),
    ("잠이 안 와요", "따뜻한 우유를 마셔 보세요"),
    ("정말 고마워요", "천만에요 언제든지 말해요"),
    ("오늘 많이 피곤해요", "일찍 자고 푹 쉬세요"),
    ("주말에 뭐 할까요?", "영화 한 편 보는 건 어때요?"),
    ("친구랑 싸웠어요", "먼저 솔직하게 이야기해 보세요"),
    ("비가 와요", "우산 꼭 챙기세요"),
    ("시험이 걱정돼요", "지금까지 열심히 했으니 잘할 거예요"),
    ("커피 마시고 싶어요", "근처 카페에 가 볼까요?"),
]
DOCS = [
    "말모이는 우리말 낱말을 모아 사전을 만든 일이다.",
    "아침마다 창문을 열면 새소리가 들린다.",
    "고양이가 햇볕이 드는 창가에서 낮잠을 잔다.",
    "도서관에는 오래된 책 냄새가 가득하다.",
    "겨울이 오면 할머니는 김장을 하신다.",
    "비 오는 날에는 따뜻한 국수가 생각난다.",
    "버스를 기다리며 친구에게 편지를 썼다.",
    "산 위에 오르니 마을이 한눈에 내려다보였다.",
    "바닷가 모래 위에 작은 발자국이 남았다.",
    "저녁 하늘이 붉게 물들고 바람이 잦아들었다.",
    "동생은 새로 산 자전거를 타고 학교에 갔다.",
    "시장에서 산 사과가 달고 맛있었다.",
]
SEED = 7


def write_data(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    reviews = folder / "reviews.tsv"
    reviews.write_text("document\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in REVIEWS * 2), encoding="utf-8")
    pairs = folder / "pairs.csv"
    with open(pairs, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("Q", "A")] + PAIRS * 2)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(DOCS * 2) + "\n", encoding="utf-8")
    return {"reviews": reviews, "pairs": pairs, "corpus": corpus}


def cases(data: dict[str, Path]) -> dict[str, dict]:
    """``malmoi.train`` keywords of each case, without ``out``."""
    loop = dict(batch_size=8, max_steps=4, seed=SEED)
    reviews = dict(task="classify", data=str(data["reviews"]), text="document", label="label")
    return {
        # the default preset (ngram: Kiwi morphemes, hashed n-grams, naive Bayes ratios), a small table
        "classify-ngram": dict(**reviews, **loop, model_overrides=dict(buckets=1 << 12)),
        "classify-bert-tiny": dict(**reviews, **loop, preset="bert-tiny", vocab_size=120, max_length=32,
                                   model_overrides=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                        intermediate_size=32)),
        "seq2seq-lstm-bahdanau": dict(task="seq2seq", data=str(data["pairs"]), source="Q", target="A", **loop,
                                      preset="lstm-bahdanau", vocab_size=100, eval_samples=1,
                                      model_overrides=dict(emb_dim=16, hidden=32, dropout=0.1)),
        "lm-gpt-mini": dict(task="lm", data=str(data["corpus"]), **loop, vocab_size=100, block_size=32,
                            sample_tokens=4, model_overrides=dict(n_embd=16, n_layer=1, n_head=2, n_inner=32,
                                                                   n_positions=32)),
    }


VOCAB_SIZES = {("wordpiece", False): 455, ("wordpiece", True): 405, ("bpe", False): 330, ("bpe", True): 317,
               ("unigram", False): 300, ("unigram", True): 290}
"""About halfway between the alphabet (with WordPiece's ``##`` pieces) and every merge the texts allow."""
TOKENIZERS = {f"{kind}{'-morphemes' if morphemes else ''}": dict(kind=kind, morphemes=morphemes, vocab_size=size)
              for (kind, morphemes), size in VOCAB_SIZES.items()}
"""``train_tokenizer`` keywords: every kind malmoi trains, with and without the morpheme cut."""

WORKER = """
import json, sys
import torch
torch.set_num_threads(1)
import malmoi
from malmoi.text.subword import train_tokenizer
plan = json.loads(sys.argv[1])
for out, kwargs in plan.get("runs", {}).items():
    malmoi.train(out=out, progress=False, say=lambda message: None, **kwargs)
texts = open(plan["texts"], encoding="utf-8").read().splitlines() if "texts" in plan else []
for out, kwargs in plan.get("tokenizers", {}).items():
    kwargs = dict(kwargs)
    train_tokenizer(texts[:kwargs.pop("lines", None)], out=out, **kwargs)
"""
"""Trains ``plan["runs"]`` ({out: malmoi.train keywords}) and ``plan["tokenizers"]`` ({out: train_tokenizer
keywords, ``lines``: how many lines of the ``plan["texts"]`` file}) in this order."""

COMPARED = ("*.safetensors", "tokenizer.json", "vocab.txt", "malmoi_vocab.json", "ngrams.json")
"""Files of a run that must be the same bytes: the weights (exported and checkpointed) and what the run
trained to read text with."""

PROCESSES = {"a": {"PYTHONHASHSEED": "1", "TOKENIZERS_PARALLELISM": "false"},
             "b": {"PYTHONHASHSEED": "2", "TOKENIZERS_PARALLELISM": "true"}}


def train_twice(root: Path, runs: dict[str, dict], tokenizers: dict[str, dict], texts: Path | None = None,
                timeout: float = 600) -> dict[str, dict[str, Path]]:
    """{process: {name: folder}}: every run and tokenizer trained once in each of two fresh processes,
    which run at the same time."""
    outs = {p: {name: root / p / name for name in [*runs, *tokenizers]} for p in PROCESSES}
    procs = {}
    for p, env in PROCESSES.items():
        plan = {"runs": {str(outs[p][name]): kwargs for name, kwargs in runs.items()},
                "tokenizers": {str(outs[p][name]): kwargs for name, kwargs in tokenizers.items()}}
        if texts is not None:
            plan["texts"] = str(texts)
        procs[p] = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(plan)], env={**os.environ, **env},
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for p, proc in procs.items():
        _, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"process {p} failed:\n{err[-3000:]}"
    return outs


def differing_files(a: Path, b: Path, patterns=("*",)) -> list[str]:
    """Files (matching ``patterns``) whose bytes differ between folders ``a`` and ``b``, or that only one has."""
    def files(folder: Path) -> dict[str, bytes]:
        return {str(f.relative_to(folder)): f.read_bytes()
                for pattern in patterns for f in sorted(folder.rglob(pattern)) if f.is_file()}

    fa, fb = files(a), files(b)
    assert fa, f"nothing to compare in {a}"
    return sorted(name for name in fa.keys() | fb.keys() if fa.get(name) != fb.get(name))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("reproducible")
    data = write_data(root / "data")
    texts = root / "data" / "texts.txt"
    texts.write_text("\n".join([t for t, _ in REVIEWS] + [t for pair in PAIRS for t in pair] + DOCS) + "\n",
                     encoding="utf-8")
    return train_twice(root, cases(data), TOKENIZERS, texts)


@pytest.mark.parametrize("case", ["classify-ngram", "classify-bert-tiny", "seq2seq-lstm-bahdanau", "lm-gpt-mini"])
def test_two_processes_train_the_same_bytes(runs, case):
    a, b = runs["a"][case], runs["b"][case]
    assert (a / "model.safetensors").is_file()
    differing = differing_files(a, b, COMPARED)
    assert not differing, f"{case}: these files differ between the two processes: {differing}"


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_two_processes_train_the_same_tokenizer(runs, name):
    a, b = runs["a"][name], runs["b"][name]
    assert (a / "tokenizer.json").is_file()
    differing = differing_files(a, b)
    assert not differing, f"{name}: these files differ between the two processes: {differing}"


NSMC = Path(__file__).resolve().parents[2] / "shared" / "data" / "nsmc" / "unlabeled.txt"
NSMC_TOKENIZERS = {
    "wordpiece": dict(kind="wordpiece", vocab_size=16000, lines=30000),
    "bpe": dict(kind="bpe", vocab_size=16000, lines=30000),
    "unigram": dict(kind="unigram", vocab_size=4000, lines=10000),
    "wordpiece-morphemes": dict(kind="wordpiece", morphemes=True, vocab_size=4000, lines=3000),
    "bpe-morphemes": dict(kind="bpe", morphemes=True, vocab_size=4000, lines=3000),
    "unigram-morphemes": dict(kind="unigram", morphemes=True, vocab_size=2000, lines=3000),
}


@pytest.mark.slow  # real reviews and full-sized vocabularies (~1 min on 2 cores)
def test_nsmc_sized_tokenizers_are_the_same_in_two_processes(tmp_path):
    if not NSMC.is_file():
        pytest.skip(f"{NSMC} is not there")
    with NSMC.open(encoding="utf-8") as f:
        lines = [next(f) for _ in range(max(t["lines"] for t in NSMC_TOKENIZERS.values()))]
    texts = tmp_path / "reviews.txt"
    texts.write_text("".join(lines), encoding="utf-8")
    outs = train_twice(tmp_path, {}, NSMC_TOKENIZERS, texts, timeout=1200)
    differing = {name: differing_files(outs["a"][name], outs["b"][name]) for name in NSMC_TOKENIZERS}
    assert not any(differing.values()), differing
