import json
import subprocess
import sys

import pytest

from malmoi.cli import main

CORPUS = ["나는 너를 좋아해.", "영화가 정말 재밌었어요!", "배우들의 연기가 좋았다", "오늘 날씨가 좋다"] * 3


def run(capsys, *argv):
    """(exit code, stdout, stderr) of the malmoi command line, in process."""
    code = 0
    try:
        main(list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, tokens, types", [
    ([], ["<bos>", "나는", "너를", "좋아해", "<eos>"], [0] * 5),
    (["--chars"], ["<bos>", "나", "는", "너", "를", "좋", "아", "해", "<eos>"], [0] * 9),
    (["--morphemes"], ["<bos>", "나", "는", "너", "를", "좋아하", "어", "<eos>"], [0] * 8),
    (["--pos"], ["<bos>", "나/NP", "는/JX", "너/NP", "를/JKO", "좋아하/VV", "어/EF", "<eos>"], [0] * 8),
    (["--pair", "나도 좋아"], ["<bos>", "나는", "너를", "좋아해", "<eos>", "나도", "좋아", "<eos>"], [0] * 5 + [1] * 3),
])
def test_tokenize_json_without_tokenizer(capsys, args, tokens, types):
    code, out, _ = run(capsys, "tokenize", "나는 너를 좋아해", *args, "--json")
    assert code == 0
    enc = json.loads(out)
    assert enc["tokens"] == tokens and enc["token_type_ids"] == types
    assert enc["attention_mask"] == [1] * len(tokens)
    assert enc["input_ids"][0] == 2 and enc["input_ids"][-1] == 3
    assert len(set(enc["input_ids"])) == len(set(tokens))  # one id per distinct token


def test_tokenize_table(capsys):
    code, out, _ = run(capsys, "tokenize", "나는 너를 좋아해")
    assert code == 0
    for cell in ("token_type_id", "attention_mask", "<bos>", "좋아해"):
        assert cell in out


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram"])
def test_train_then_tokenize(capsys, tmp_path, kind):
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(CORPUS), encoding="utf-8")
    out = tmp_path / "tok"
    code, stdout, _ = run(capsys, "tokenizer", "train", "--data", str(data), "--kind", kind,
                          "--vocab-size", "80", "--min-frequency", "1", "--out", str(out), "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["kind"] == kind and summary["texts"] == len(CORPUS) and (out / "tokenizer.json").is_file()

    code, stdout, _ = run(capsys, "tokenize", "나는 너를 좋아해", "--pair", "오늘", "--tokenizer", str(out), "--json")
    enc = json.loads(stdout)
    assert enc["tokens"][0] == "[CLS]" and enc["tokens"][-1] == "[SEP]"
    assert enc["token_type_ids"][-1] == 1 and enc["token_type_ids"][0] == 0


def test_train_from_a_table_column(capsys, tmp_path):
    data = tmp_path / "reviews.tsv"
    data.write_text("id\tdocument\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(CORPUS)), encoding="utf-8")
    code, stdout, _ = run(capsys, "tokenizer", "train", "--data", str(data), "--column", "document", "--kind", "bpe",
                          "--vocab-size", "60", "--out", str(tmp_path / "tok"), "--json")
    assert code == 0 and json.loads(stdout)["texts"] == len(CORPUS)


@pytest.mark.parametrize("argv, code", [
    (["tokenize", "나는", "--chars", "--morphemes"], "E212"),
    (["tokenize", "나는", "--tokenizer", "/nonexistent/tok"], "E410"),
    (["tokenizer", "train", "--data", "/nonexistent/x.txt", "--out", "/tmp/unused"], "E101"),
])
def test_errors_are_one_line(capsys, argv, code):
    exit_code, out, err = run(capsys, *argv)
    assert exit_code == 2
    assert err.strip().count("\n") == 0 and code in err and "Traceback" not in err


def test_missing_file_through_the_real_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "malmoi", "tokenizer", "train", "--data", str(tmp_path / "none.txt"),
                           "--kind", "bpe", "--out", str(tmp_path / "tok")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: file not found: {tmp_path / 'none.txt'} [E101]"]
    assert not (tmp_path / "tok").exists()
