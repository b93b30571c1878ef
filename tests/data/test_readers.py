"""Readers: every format, and one clear MalmoiError for every kind of bad file."""
from __future__ import annotations

import json

import pytest

from malmoi.data.readers import read_labelled, read_pairs, read_table, read_texts
from malmoi.errors import MalmoiError


def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# ---------------------------------------------------------------- formats

def test_csv_quoting_commas_quotes_and_newlines(tmp_path):
    path = write(tmp_path, "chat.csv",
                 'Q,A,label\n'
                 '"김치찌개, 된장찌개 중에 뭐 먹지?",오늘은 김치찌개요!,0\n'
                 '"""진짜"" 맛있어?","네,\n정말요.",2\n')
    rows = read_table(path, ["Q", "A", "label"])
    assert rows == [
        {"Q": "김치찌개, 된장찌개 중에 뭐 먹지?", "A": "오늘은 김치찌개요!", "label": "0"},
        {"Q": '"진짜" 맛있어?', "A": "네,\n정말요.", "label": "2"},
    ]


def test_tsv_keeps_bare_double_quotes_nsmc_style(tmp_path):
    # NSMC documents contain unbalanced quotes; a quoting reader would glue rows together.
    path = write(tmp_path, "ratings.txt",
                 'id\tdocument\tlabel\n'
                 '1\t"인생 영화"라는 말이 딱 맞아요\t1\n'
                 '2\t"감동 실화라더니 감동 없음\t0\n'
                 '3\t재밌다"\t1\n')
    got = read_labelled(path, "document", "label")
    assert got.texts == ['"인생 영화"라는 말이 딱 맞아요', '"감동 실화라더니 감동 없음', '재밌다"']
    assert got.labels == ["1", "0", "1"]


def test_jsonl_rows_and_numbers_become_strings(tmp_path):
    lines = [{"text": "좋아요", "label": 1}, {"text": "별로", "label": 0, "extra": None}]
    path = write(tmp_path, "data.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n")
    got = read_labelled(path, "text", "label")
    assert (got.texts, got.labels) == (["좋아요", "별로"], ["1", "0"])


def test_plain_text_lines_stripped_and_blank_lines_dropped(tmp_path):
    path = write(tmp_path, "corpus.txt", "첫 문장\n\n  둘째 문장  \n\t\n셋째\n")
    assert read_texts(path) == ["첫 문장", "둘째 문장", "셋째"]


def test_read_texts_one_column(tmp_path):
    path = write(tmp_path, "d.tsv", "document\tlabel\n좋다\t1\n \t0\n싫다\t0\n")
    assert read_texts(path, "document") == ["좋다", "싫다"]


def test_utf8_bom_does_not_enter_the_first_column_name(tmp_path):
    path = write(tmp_path, "bom.csv", "\ufeffQ,A\n안녕,반가워요\n".encode("utf-8"))
    assert read_pairs(path, "Q", "A") == (["안녕"], ["반가워요"], 0)


def test_crlf_line_endings(tmp_path):
    path = write(tmp_path, "win.tsv", b"document\tlabel\r\n\xec\xa2\x8b\xeb\x8b\xa4\t1\r\n")
    got = read_labelled(path, "document", "label")
    assert (got.texts, got.labels) == (["좋다"], ["1"])


# ---------------------------------------------------------------- labels and empty texts

@pytest.mark.parametrize("raw, expected", [
    ("1 ", "1"),
    (" 0", "0"),
    ("2  ", "2"),
    (" 1 ", "1"),
])
def test_label_whitespace_is_stripped(tmp_path, raw, expected):
    path = write(tmp_path, "l.csv", f"text,label\n문장,{raw}\n")
    assert read_labelled(path, "text", "label").labels == [expected]


def test_chatbot_style_trailing_spaces_in_label_match_allowed(tmp_path):
    path = write(tmp_path, "c.csv", "Q,A,label\n헤어졌어,힘내요,1 \n안녕,반가워요,0\n")
    got = read_labelled(path, "Q", "label", allowed=["0", "1", "2"])
    assert got.labels == ["1", "0"]


def test_allowed_accepts_non_string_labels(tmp_path):
    path = write(tmp_path, "c.csv", "text,label\n좋다,1\n싫다,0\n")
    assert read_labelled(path, "text", "label", allowed=[0, 1]).labels == ["1", "0"]


def test_unexpected_labels_are_reported_with_allowed(tmp_path):
    path = write(tmp_path, "c.csv", "text,label\n좋다,1\n싫다,positive\n음,3\n")
    with pytest.raises(MalmoiError) as e:
        read_labelled(path, "text", "label", allowed=["0", "1"])
    assert e.value.code == "E105"
    assert "'3'" in e.value.message and "'positive'" in e.value.message
    assert "['0', '1']" in e.value.message


def test_empty_label_is_an_error(tmp_path):
    path = write(tmp_path, "c.csv", "text,label\n좋다,1\n싫다, \n")
    with pytest.raises(MalmoiError) as e:
        read_labelled(path, "text", "label")
    assert e.value.code == "E105" and "싫다" in e.value.message


def test_empty_texts_are_skipped_and_counted(tmp_path):
    path = write(tmp_path, "d.tsv", "document\tlabel\n좋다\t1\n\t0\n   \t1\n싫다\t0\n")
    got = read_labelled(path, "document", "label")
    assert (got.texts, got.labels, got.skipped_empty) == (["좋다", "싫다"], ["1", "0"], 2)


def test_pairs_with_an_empty_side_are_skipped_and_counted(tmp_path):
    path = write(tmp_path, "p.csv", 'Q,A\n안녕,반가워요\n"",빈 질문\n빈 답,\n고마워,천만에요\n')
    assert read_pairs(path, "Q", "A") == (["안녕", "고마워"], ["반가워요", "천만에요"], 2)


# ---------------------------------------------------------------- errors, one line each

def test_missing_file(tmp_path):
    with pytest.raises(MalmoiError) as e:
        read_texts(tmp_path / "없는파일.txt")
    assert e.value.code == "E101" and "not found" in e.value.message and "없는파일.txt" in e.value.message


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(MalmoiError) as e:
        read_table(tmp_path, ["text"])
    assert e.value.code == "E101" and "folder" in e.value.message


@pytest.mark.parametrize("name, content", [
    ("d.csv", "text,label\n좋다,1\n"),
    ("d.tsv", "text\tlabel\n좋다\t1\n"),
    ("d.jsonl", '{"text": "좋다", "label": 1}\n'),
])
def test_unknown_column_lists_existing_columns(tmp_path, name, content):
    path = write(tmp_path, name, content)
    with pytest.raises(MalmoiError) as e:
        read_labelled(path, "document", "label")
    assert e.value.code == "E104"
    assert "'document'" in e.value.message and "text, label" in e.value.message


@pytest.mark.parametrize("content", ["", "\n\n", "   \n"])
def test_empty_file(tmp_path, content):
    path = write(tmp_path, "empty.csv", content)
    with pytest.raises(MalmoiError) as e:
        read_table(path, ["text"])
    assert e.value.code == "E102" and "empty" in e.value.message


def test_empty_plain_text_file(tmp_path):
    with pytest.raises(MalmoiError) as e:
        read_texts(write(tmp_path, "e.txt", ""))
    assert e.value.code == "E102"


@pytest.mark.parametrize("name, header", [("h.csv", "text,label\n"), ("h.tsv", "text\tlabel\n\n")])
def test_header_only_file(tmp_path, name, header):
    path = write(tmp_path, name, header)
    with pytest.raises(MalmoiError) as e:
        read_labelled(path, "text", "label")
    assert e.value.code == "E102" and "no rows" in e.value.message


def test_every_text_empty(tmp_path):
    path = write(tmp_path, "d.tsv", "text\tlabel\n\t1\n \t0\n")
    with pytest.raises(MalmoiError) as e:
        read_labelled(path, "text", "label")
    assert e.value.code == "E102"


@pytest.mark.parametrize("bad_line", [2, 4])
def test_undecodable_bytes_name_the_line(tmp_path, bad_line):
    lines = ["text,label".encode(), "좋다,1".encode(), "싫다,0".encode(), "음,1".encode()]
    lines[bad_line - 1] = b"\xff\xfe broken,1"
    path = write(tmp_path, "bad.csv", b"\n".join(lines) + b"\n")
    with pytest.raises(MalmoiError) as e:
        read_labelled(path, "text", "label")
    assert e.value.code == "E103"
    assert f"line {bad_line} " in e.value.message and "UTF-8" in e.value.message


def test_cp949_file_is_named_as_such(tmp_path):
    path = write(tmp_path, "old.csv", "text,label\n재밌다,1\n".encode("cp949"))
    with pytest.raises(MalmoiError) as e:
        read_labelled(path, "text", "label")
    assert e.value.code == "E103" and "line 2" in e.value.message and "CP949" in e.value.message


@pytest.mark.parametrize("name, content, line, found", [
    ("d.tsv", "id\tdocument\tlabel\n1\t좋다\t1\n2\t탭이\t하나\t더\t0\n", 3, 5),
    ("d.tsv", "id\tdocument\tlabel\n1\t좋다\n", 2, 2),
    ("d.csv", "text,label\n좋다,1\n싫다,0,extra\n", 3, 3),
    # a quoted field over two lines: the row ends on line 4
    ("d.csv", 'text,label\n좋다,1\n"여러\n줄",0,x\n', 4, 3),
])
def test_wrong_field_count_names_the_line(tmp_path, name, content, line, found):
    path = write(tmp_path, name, content)
    with pytest.raises(MalmoiError) as e:
        read_table(path, ["label"])
    assert e.value.code == "E106"
    assert f"line {line} has {found} fields" in e.value.message


def test_unclosed_csv_quote_is_an_error_not_merged_rows(tmp_path):
    path = write(tmp_path, "d.csv", 'text,label\n좋다,"1\n싫다,0\n음,1\n')
    with pytest.raises(MalmoiError) as e:
        read_table(path, ["text", "label"])
    assert e.value.code == "E106" and "quote" in e.value.message


@pytest.mark.parametrize("content, line, what", [
    ('{"text": "좋다", "label": 1}\n{"text": "싫다", "label": 0\n', 2, "not valid JSON"),
    ('{"text": "좋다", "label": 1}\n\n["싫다", 0]\n', 3, "not a JSON object"),
    ("text,label\n", 1, "not valid JSON"),
])
def test_bad_jsonl_line(tmp_path, content, line, what):
    path = write(tmp_path, "d.jsonl", content)
    with pytest.raises(MalmoiError) as e:
        read_labelled(path, "text", "label")
    assert e.value.code == "E107"
    assert f"line {line} " in e.value.message and what in e.value.message


def test_errors_are_one_line(tmp_path):
    path = write(tmp_path, "d.csv", 'text,label\n좋다,"1\n싫다,0\n')
    with pytest.raises(MalmoiError) as e:
        read_table(path, ["text"])
    assert "\n" not in str(e.value)
