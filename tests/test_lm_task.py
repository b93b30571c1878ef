"""The lm task: a tiny GPT overfits a tiny text, then generates it back (greedy, sampled, streamed)."""
from __future__ import annotations

import json
import math

import pytest

from malmoi.errors import MalmoiError
from malmoi.data.splits import split_texts
from malmoi.tasks import train
from malmoi.use.lm import LMGenerator

DOCS = [
    "말모이는 우리말 사전을 만들기 위해 모은 낱말이다.",
    "오늘은 날씨가 맑고 바람이 시원하다.",
    "고양이가 창문 밖을 조용히 바라본다.",
]
TINY = dict(n_embd=32, n_layer=2, n_head=2, n_inner=64, n_positions=64,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    data = folder / "tiny.txt"
    data.write_text("\n".join(DOCS * 6) + "\n", encoding="utf-8")
    result = train(task="lm", data=data, out=folder / "run", vocab_size=60, block_size=32, batch_size=8, max_steps=60,
                      eval_every=60, lr=1e-2, log_every=5, progress=False, model_overrides=TINY,
                      say=lambda message: None)
    return result


@pytest.fixture(scope="module")
def generator(run):
    return LMGenerator.from_run(run.run)


def test_the_loss_falls_and_perplexity_is_its_exponential(run):
    records = [json.loads(line) for line in (run.run / "metrics.jsonl").read_text().splitlines()]
    first_train = next(r["loss"] for r in records if r.get("event") == "train")
    assert run.metrics["loss"] < 0.5 < first_train
    assert run.metrics["perplexity"] == pytest.approx(math.exp(run.metrics["loss"]))
    meta = json.loads((run.run / "malmoi.json").read_text())
    assert meta["task"] == "lm" and meta["status"] == "done"


@pytest.mark.parametrize("doc", DOCS)
def test_greedy_generation_reproduces_the_text_and_stops_at_its_end(generator, doc):
    first, rest = doc.split(" ", 1)
    answer = generator.generate([first], max_new_tokens=40)[0]
    assert answer.text == " " + rest
    assert len(answer.tokens) < 40  # ended at [SEP], not at the length limit
    assert answer.score < 0


def test_a_batch_of_prompts_gives_what_each_prompt_gives_alone(generator):
    prompts = ["말모이는", "오늘은 날씨가", "고양이가 창문"]
    together = [a.text for a in generator.generate(prompts, max_new_tokens=20)]
    assert together == [generator.generate([p], max_new_tokens=20)[0].text for p in prompts]


@pytest.mark.parametrize(
    "options",
    [dict(), dict(top_k=5, temperature=1.5, seed=3), dict(top_p=0.9, repetition_penalty=1.3, seed=4), dict(beams=2)],
)
def test_streaming_yields_exactly_the_generated_text(generator, options):
    pieces = list(generator.stream("오늘은", max_new_tokens=15, **options))
    assert "".join(pieces) == generator.generate(["오늘은"], max_new_tokens=15, **options)[0].text


def test_the_same_seed_gives_the_same_text(generator):
    def sample(seed):
        return generator.generate(["말모이는"], max_new_tokens=20, temperature=3.0, seed=seed)[0].text

    assert sample(1) == sample(1)
    assert len({sample(s) for s in range(6)}) > 1


def test_max_new_tokens_is_respected(generator):
    answer = generator.generate(["말모이는"], max_new_tokens=3)[0]
    assert len(answer.tokens) == 3


@pytest.mark.parametrize(
    "options, code",
    [
        (dict(greedy=True, top_k=5), "E274"),
        (dict(beams=2, temperature=0.7), "E274"),
        (dict(top_p=1.5), "E270"),
        (dict(max_new_tokens=0), "E201"),
    ],
)
def test_conflicting_generation_options_are_one_clear_error(generator, options, code):
    with pytest.raises(MalmoiError) as e:
        generator.generate(["말모이는"], **options)
    assert e.value.code == code


@pytest.mark.parametrize(
    "options, code",
    [(dict(preset="bert-mini"), "E272"), (dict(block_size=1), "E222"), (dict(valid_split=1.0), "E226")],
)
def test_bad_training_options_fail_before_anything_is_written(tmp_path, options, code):
    data = tmp_path / "t.txt"
    data.write_text("\n".join(DOCS), encoding="utf-8")
    with pytest.raises(MalmoiError) as e:
        train(task="lm", data=data, out=tmp_path / "run", progress=False, **options)
    assert e.value.code == code
    assert not (tmp_path / "run").exists()


def test_split_documents_holds_out_a_seeded_fraction():
    texts = [f"문서 {i}" for i in range(100)]
    train, valid = split_texts(texts, 0.1, 5, seed=1)
    assert len(valid) == 5 and len(train) == 95 and sorted(train + valid) == sorted(texts)
    assert (train, valid) == split_texts(texts, 0.1, 5, seed=1)


def test_the_generate_command_prints_the_prompt_and_its_continuation(generator, capsys):
    from malmoi.cli.lm import print_generations

    print_generations(generator, ["고양이가"], max_new_tokens=20)
    printed = capsys.readouterr().out
    print_generations(generator, ["고양이가"], max_new_tokens=20, stream=True)
    assert capsys.readouterr().out == printed == DOCS[2] + "\n"
    print_generations(generator, ["고양이가", "오늘은"], top_k=3, seed=1, as_json=True)
    answers = json.loads(capsys.readouterr().out)
    assert [a["source"] for a in answers] == ["고양이가", "오늘은"]


def test_sampling_flags_on_a_run_that_cannot_sample_are_refused():
    from malmoi.cli.lm import print_generations

    class GreedyOnly:
        def generate(self, texts, *, beams=1, max_new_tokens=None):
            raise AssertionError("not reached")

    for options in (dict(top_k=5), dict(stream=True), dict(seed=1)):
        with pytest.raises(MalmoiError) as e:
            print_generations(GreedyOnly(), ["안녕"], **options)
        assert e.value.code == "E275"


def test_the_run_loads_through_malmoi_load_and_load_generator(run):
    import malmoi
    from malmoi.use import load_generator

    assert isinstance(malmoi.load(run.run), LMGenerator)
    assert load_generator(run.run).generate(["오늘은"])[0].text == " " + DOCS[1].split(" ", 1)[1]


@pytest.mark.slow
def test_an_lm_trained_on_nsmc_generates_what_hf_generate_generates(tmp_path):
    """Real reviews, 150 steps: held-out perplexity far below the vocabulary size, and
    greedy/sampled continuations from the fast loop equal Hugging Face ``generate()``'s."""
    from pathlib import Path

    import torch

    from malmoi.models.generation import encode_prompt

    source = Path(__file__).resolve().parents[2] / "shared" / "data" / "nsmc" / "unlabeled.txt"
    if not source.is_file():
        pytest.skip(f"{source} is not there")
    with source.open(encoding="utf-8") as f:
        lines = [next(f) for _ in range(3000)]
    data = tmp_path / "reviews.txt"
    data.write_text("".join(lines), encoding="utf-8")
    result = train(task="lm", data=data, out=tmp_path / "run", vocab_size=2000, block_size=64, batch_size=16,
                      max_steps=150, eval_every=150, lr=3e-3, progress=False, say=lambda message: None,
                      model_overrides=dict(n_embd=64, n_layer=2, n_head=4, n_inner=256))
    assert result.metrics["perplexity"] < 2000 / 3, result.metrics  # uniform over the vocabulary: 2000
    generator = LMGenerator.from_run(result.run)
    model, tokenizer = generator.model, generator.tokenizer
    for prompt in ["이 영화", "배우들 연기가", "최고의"]:
        ids = torch.tensor([encode_prompt(tokenizer, prompt)])
        settings = generator.settings(max_new_tokens=40)
        with torch.inference_mode():
            expected = model.generate(ids, attention_mask=torch.ones_like(ids), **settings.hf_kwargs())
        from malmoi.models.generation import generate

        assert torch.equal(generate(model, ids, settings), expected)
        sampled = generator.settings(max_new_tokens=40, top_k=20, top_p=0.9, seed=5)
        torch.manual_seed(5)
        with torch.inference_mode():
            expected = model.generate(ids, attention_mask=torch.ones_like(ids), **sampled.hf_kwargs())
        assert torch.equal(generate(model, ids, sampled), expected)


def test_eval_on_a_free_text_run_asks_for_pairs(run, tmp_path):
    import subprocess
    import sys

    data = tmp_path / "pairs.csv"
    data.write_text("Q,A\n말모이는,사전이다\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "malmoi", "eval", str(run.run), "--data", str(data)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "E236" in done.stderr and done.stderr.count("\n") == 1
    done = subprocess.run([sys.executable, "-m", "malmoi", "eval", str(run.run), "--data", str(data), "--source", "Q",
                           "--target", "A"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "E409" in done.stderr
