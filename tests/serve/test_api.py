"""The HTTP API in-process (FastAPI's TestClient): every route, limit, status code and the auth rule."""
from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from malmoi.errors import MalmoiError
from malmoi.serve import ServeSettings, create_app, parse_specs
from malmoi.use import load

KEY = "sekret"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def client(served):
    with TestClient(create_app(settings=ServeSettings(api_key=KEY), models=served)) as c:
        yield c


@pytest.fixture(scope="module")
def open_client(served):
    """No key: every route is open (the server listens on loopback only)."""
    with TestClient(create_app(settings=ServeSettings(max_texts=4, max_chars=50, max_new_tokens=20,
                                                      max_body=2000), models=served)) as c:
        yield c


def events(body: str) -> list[tuple[str | None, dict]]:
    """(event name, data) of each server-sent event."""
    out = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        out.append((name, data if data == "[DONE]" else json.loads(data)))
    return out


def error_code(response) -> str:
    return response.json()["error"]["code"]


# ------------------------------------------------------------------------------------- routes


def test_health_and_models(client, runs):
    assert client.get("/health").json() == {"status": "ok", "models": ["ngram", "bert", "gpt", "chat"]}
    listed = client.get("/v1/models", headers=AUTH).json()
    assert listed["object"] == "list"
    cards = {m["id"]: m for m in listed["data"]}
    assert cards["ngram"]["task"] == "classify" and cards["ngram"]["preset"] == "ngram-small"
    assert cards["bert"]["labels"] == load(runs["bert"]).labels
    assert "classify" in cards["bert"]["routes"] and "generate" not in cards["bert"]["routes"]
    assert cards["gpt"]["routes"] == ["generate", "completions", "tokenize"] and cards["gpt"]["streams"] == "tokens"
    assert cards["chat"]["streams"] == "whole" and all(m["object"] == "model" for m in cards.values())


@pytest.mark.parametrize("name", ["ngram", "bert"])
def test_classify_matches_the_use_layer(client, runs, name):
    texts = ["배우들 연기가 정말 좋았어요", "시간 아까움 😡", "최악"]
    got = client.post("/v1/classify", json={"model": name, "texts": texts}, headers=AUTH)
    assert got.status_code == 200
    body = got.json()
    assert body["model"] == name
    expected = load(runs[name]).predict(texts)
    for p, e in zip(body["predictions"], expected):
        assert p["text"] == e.text and p["label"] == e.label
        assert p["score"] == pytest.approx(e.score, abs=1e-5)
        assert p["probabilities"] == pytest.approx(e.probabilities, abs=1e-5)
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_tokenize_subwords_with_character_offsets(client):
    text = "정말 재밌어요 😀"
    body = client.post("/v1/tokenize", json={"model": "bert", "text": text}, headers=AUTH).json()
    assert body["kind"] == "subwords"
    n = len(body["tokens"])
    assert n == len(body["input_ids"]) == len(body["token_type_ids"]) == len(body["attention_mask"])
    assert n == len(body["offsets"])
    assert body["tokens"][0] == "[CLS]" and body["tokens"][-1] == "[SEP]"
    # offsets are characters of the input, not bytes: "재" is character 3 (byte 7 in UTF-8)
    spans = [text[s:e] for s, e in body["offsets"] if e > s]
    assert spans[0] == "정" and "재" in spans and all(s in text for s in spans)
    assert max(e for _, e in body["offsets"]) <= len(text)


def test_tokenize_ngrams_with_spans(client):
    text = "영화  정말 재밌다"
    body = client.post("/v1/tokenize", json={"model": "ngram", "text": text}, headers=AUTH).json()
    assert body["kind"] == "ngrams" and body["ngrams"]
    words = [g for g in body["ngrams"] if g["kind"] == "words"]
    assert [text[g["start"]:g["end"]] for g in words if " " not in g["text"]] == ["영화", "정말", "재밌다"]
    assert all(0 <= g["start"] <= g["end"] <= len(text) and g["id"] >= 1 for g in body["ngrams"])


def test_tokenize_an_lstm_runs_units(client):
    body = client.post("/v1/tokenize", json={"model": "chat", "text": "오늘 날씨 어때?"}, headers=AUTH).json()
    assert body["kind"] == "units" and body["tokens"] == ["오늘", "날씨", "어때?"]
    assert body["offsets"] == [[0, 2], [3, 5], [6, 9]]


def test_generate_gpt_and_seq2seq_match_the_use_layer(client, runs):
    got = client.post("/v1/generate", json={"model": "gpt", "prompt": "영화가", "max_new_tokens": 12}, headers=AUTH)
    assert got.status_code == 200
    assert got.json()["text"] == load(runs["gpt"]).generate(["영화가"], max_new_tokens=12)[0].text
    assert got.json()["finish_reason"] in ("eos", "length")
    chat = client.post("/v1/generate", json={"model": "chat", "prompt": "배고파"}, headers=AUTH).json()
    assert chat["text"] == load(runs["chat"]).reply("배고파") and chat["text"]


def test_sampling_with_a_seed_is_repeatable(client):
    ask = {"model": "gpt", "prompt": "오늘은", "max_new_tokens": 15, "temperature": 1.5, "top_k": 50, "seed": 7}
    first = client.post("/v1/generate", json=ask, headers=AUTH).json()["text"]
    assert first == client.post("/v1/generate", json=ask, headers=AUTH).json()["text"]


@pytest.mark.parametrize("prompt", ["오늘은", "배우들 연기가 😀", "한글 🇰🇷 이모지 👍🏽"])
def test_streamed_pieces_concatenate_to_the_whole_text(client, prompt):
    ask = {"model": "gpt", "prompt": prompt, "max_new_tokens": 30, "temperature": 1.3, "seed": 3}
    whole = client.post("/v1/generate", json=ask, headers=AUTH).json()
    response = client.post("/v1/generate", json={**ask, "stream": True}, headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no" and "content-encoding" not in response.headers
    got = events(response.text)
    pieces = [data["text"] for _, data in got[:-1]]
    assert all(name is None for name, _ in got)
    assert "".join(pieces) == whole["text"]
    assert all(p and "\ufffd" not in p for p in pieces)
    assert got[-1][1] == {"text": "", "finish_reason": whole["finish_reason"]}


def test_a_seq2seq_stream_is_one_piece_then_the_end(client):
    got = events(client.post("/v1/generate", json={"model": "chat", "prompt": "배고파", "stream": True},
                             headers=AUTH).text)
    whole = client.post("/v1/generate", json={"model": "chat", "prompt": "배고파"}, headers=AUTH).json()["text"]
    assert got == [(None, {"text": whole}), (None, {"text": "", "finish_reason": "eos"})]


def test_an_error_mid_stream_is_an_error_event(client):
    # the tiny GPT has 640 positions: a long prompt plus 512 new tokens does not fit, found once it runs
    response = client.post("/v1/generate", json={"model": "gpt", "prompt": "가 " * 300, "max_new_tokens": 512,
                                                 "stream": True}, headers=AUTH)
    assert response.status_code == 200
    (name, data), = events(response.text)
    assert name == "error" and data["error"]["code"] == "E470"


def test_openai_completions(client):
    body = client.post("/v1/completions", json={"model": "gpt", "prompt": "영화가", "max_tokens": 8,
                                                "temperature": 0, "user": "ignored"}, headers=AUTH).json()
    assert body["object"] == "text_completion" and body["model"] == "gpt"
    (choice,) = body["choices"]
    assert choice["finish_reason"] in ("stop", "length") and choice["index"] == 0
    assert choice["text"] == client.post("/v1/generate", json={"model": "gpt", "prompt": "영화가", "max_new_tokens": 8,
                                                               "greedy": True}, headers=AUTH).json()["text"]
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    streamed = events(client.post("/v1/completions", json={"model": "gpt", "prompt": "영화가", "max_tokens": 8,
                                                           "temperature": 0, "stream": True}, headers=AUTH).text)
    assert streamed[-1] == (None, "[DONE]")
    assert "".join(d["choices"][0]["text"] for _, d in streamed[:-1]) == choice["text"]
    assert streamed[-2][1]["choices"][0]["finish_reason"] == choice["finish_reason"]


def test_metrics_count_requests_batches_and_first_tokens(client):
    client.post("/v1/classify", json={"model": "bert", "texts": ["좋다"]}, headers=AUTH)
    client.post("/v1/generate", json={"model": "gpt", "prompt": "영화", "max_new_tokens": 3, "stream": True},
                headers=AUTH)
    text = client.get("/metrics", headers=AUTH).text
    for name in ("malmoi_requests_total", "malmoi_request_seconds_bucket", "malmoi_queue_seconds_bucket",
                 "malmoi_batch_size_bucket", "malmoi_time_to_first_token_seconds_bucket", "malmoi_errors_total"):
        assert name in text, name
    assert 'malmoi_requests_total{route="/v1/classify",status="200"}' in text


def test_the_page_and_schema(client):
    page = client.get("/")
    assert page.status_code == 200 and "charset=utf-8" in page.headers["content-type"]
    assert client.get("/openapi.json", headers=AUTH).json()["paths"].keys() >= {"/v1/classify", "/v1/generate"}
    assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN: not offered


# ------------------------------------------------------------------------------------- auth


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"},
                                     {"Authorization": KEY}])
@pytest.mark.parametrize("method,path", [("get", "/v1/models"), ("get", "/metrics"), ("get", "/openapi.json"),
                                         ("post", "/v1/classify"), ("post", "/v1/generate")])
def test_every_route_but_two_needs_the_key(client, headers, method, path):
    response = getattr(client, method)(path, headers=headers, **({"json": {}} if method == "post" else {}))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer" and error_code(response) == "E609"


def test_health_and_page_are_public(client):
    assert client.get("/health").status_code == 200 and client.get("/").status_code == 200


def test_without_a_key_routes_are_open(open_client):
    assert open_client.get("/v1/models").status_code == 200


# ------------------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize("body,field", [
    ({"model": "ngram", "texts": 5}, "texts"),
    ({"model": "ngram"}, "texts"),
    ({"model": "ngram", "texts": []}, "texts"),
    ({"model": "ngram", "texts": [""]}, "texts.0"),
    ({"model": "ngram", "texts": ["a"] * 5}, "texts"),
    ({"model": "ngram", "texts": ["가" * 51]}, "texts.0"),
    ({"model": "ngram", "texts": ["a"], "extra": 1}, "extra"),
    ({"texts": ["a"]}, "model"),
])
def test_bad_classify_bodies_name_the_field(open_client, body, field):
    response = open_client.post("/v1/classify", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == {"code": "E610", "field": field,
                                        "message": response.json()["error"]["message"]}
    assert response.json()["error"]["message"].startswith(field)


@pytest.mark.parametrize("body,field", [
    ({"model": "gpt", "prompt": "가", "max_new_tokens": 21}, "max_new_tokens"),
    ({"model": "gpt", "prompt": "가", "max_new_tokens": 0}, "max_new_tokens"),
    ({"model": "gpt", "prompt": "가", "top_p": 1.5}, "top_p"),
    ({"model": "gpt", "prompt": "가", "temperature": 0}, "temperature"),
    ({"model": "gpt", "prompt": "가", "beams": 99}, "beams"),
    ({"model": "gpt", "prompt": ""}, "prompt"),
])
def test_bad_generate_bodies_name_the_field(open_client, body, field):
    response = open_client.post("/v1/generate", json=body)
    assert response.status_code == 422 and response.json()["error"]["field"] == field


def test_malformed_json_and_wrong_routes(open_client):
    response = open_client.post("/v1/classify", content=b'{"model": "ngram", "texts": [', 
                                headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and error_code(response) == "E610"
    response = open_client.post("/v1/classify", content="\xff".encode("latin-1"),
                                headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert open_client.get("/v1/nothing").status_code == 404
    assert open_client.get("/v1/classify").status_code == 405


def test_unknown_model_and_wrong_family(open_client):
    assert open_client.post("/v1/classify", json={"model": "nope", "texts": ["a"]}).status_code == 404
    for route, body in [("/v1/classify", {"model": "gpt", "texts": ["a"]}),
                        ("/v1/generate", {"model": "bert", "prompt": "a"}),
                        ("/v1/generate", {"model": "chat", "prompt": "a", "top_k": 3}),
                        ("/v1/completions", {"model": "chat", "prompt": "a"}),
                        ("/v1/generate", {"model": "gpt", "prompt": "a", "greedy": True, "top_k": 3})]:
        response = open_client.post(route, json=body)
        assert response.status_code == 422 and error_code(response) in ("E605", "E274"), (route, body)


@pytest.fixture(scope="module")
def tag_client(tiny_runs):
    from malmoi.serve import load_models

    models = load_models(parse_specs([f"ner={tiny_runs['tagger']}", f"gpt={tiny_runs['gpt']}",
                                      f"reader={tiny_runs['qa']}"]))
    with TestClient(create_app(settings=ServeSettings(max_texts=4, max_chars=200), models=models)) as c:
        yield c


def test_tag_matches_the_use_layer(tag_client, tiny_runs):
    texts = ["김민준은 어제 서울에 갔다.", "오후 3시에 부산에서 만나요."]
    got = tag_client.post("/v1/tag", json={"model": "ner", "texts": texts})
    assert got.status_code == 200
    want = load(tiny_runs["tagger"]).tag(texts)
    assert [[(e["text"], e["type"], e["start"], e["end"]) for e in r["entities"]] for r in got.json()["results"]] == \
        [[(e.text, e.type, e.start, e.end) for e in t.entities] for t in want]
    card = {m["id"]: m for m in tag_client.get("/v1/models").json()["data"]}["ner"]
    assert card["task"] == "tag" and card["routes"] == ["tag", "tokenize"]
    tokens = tag_client.post("/v1/tokenize", json={"model": "ner", "text": "서울 날씨"}).json()["tokens"]
    assert tokens == list("서울 날씨")


def test_answer_matches_the_use_layer(tag_client, tiny_runs):
    context = "민준는 서울 출신이다. 서연는 부산 출신이다."
    questions = ["민준는 어디 출신이지?", "서연는 어디 출신이지?"]
    got = tag_client.post("/v1/answer", json={"model": "reader", "context": context, "questions": questions})
    assert got.status_code == 200
    want = load(tiny_runs["qa"]).answer(questions, context)
    got_spans = [(a["text"], a["start"], a["end"]) for a in got.json()["answers"]]
    assert got_spans == [(a.text, a.start, a.end) for a in want]
    for a in got.json()["answers"]:
        assert context[a["start"]:a["end"]] == a["text"]
    card = {m["id"]: m for m in tag_client.get("/v1/models").json()["data"]}["reader"]
    assert card["task"] == "qa" and card["routes"] == ["answer", "tokenize"]
    response = tag_client.post("/v1/answer", json={"model": "reader", "context": "서울", "questions": ["   "]})
    assert response.status_code == 422 and error_code(response) == "E492"


def test_tag_refuses_what_it_cannot_do(tag_client):
    response = tag_client.post("/v1/tag", json={"model": "gpt", "texts": ["서울"]})
    assert response.status_code == 422 and error_code(response) == "E605"
    response = tag_client.post("/v1/tag", json={"model": "ner", "texts": ["   "]})
    assert response.status_code == 422 and error_code(response) == "E235"
    response = tag_client.post("/v1/tag", json={"model": "ner", "texts": []})
    assert response.status_code == 422 and error_code(response) == "E610"
    response = tag_client.post("/v1/answer", json={"model": "ner", "context": "서울", "questions": ["어디?"]})
    assert response.status_code == 422 and error_code(response) == "E605"


def test_body_over_the_limit_is_413(open_client):
    big = json.dumps({"model": "ngram", "texts": ["가" * 40] * 30})
    response = open_client.post("/v1/classify", content=big.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and error_code(response) == "E606"

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b" " * 500
    response = open_client.post("/v1/classify", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


# ------------------------------------------------------------------------------------- queue, batching


def test_batched_requests_return_what_single_requests_return(served):
    texts = ["정말 재밌어요", "최악이다 진짜", "그냥 그래요", "배우들 연기가 최고 😀 강추", "ㅋㅋ", "돈 아까움"] * 3
    for name in ("ngram", "bert"):
        with TestClient(create_app(settings=ServeSettings(max_batch=1), models=served)) as alone:
            single = [alone.post("/v1/classify", json={"model": name, "texts": [t]}).json()["predictions"][0]
                      for t in texts]
        app = create_app(settings=ServeSettings(max_batch=64, max_wait_ms=200), models=served)
        with TestClient(app) as batched:
            import concurrent.futures as cf

            with cf.ThreadPoolExecutor(len(texts)) as pool:
                got = list(pool.map(lambda t: batched.post("/v1/classify", json={"model": name, "texts": [t]}).json(),
                                    texts))
            sizes = batched.get("/metrics").text
        for one, many in zip(single, got):
            (p,) = many["predictions"]
            assert p["text"] == one["text"] and p["label"] == one["label"]
            assert p["probabilities"] == pytest.approx(one["probabilities"], abs=1e-5)
        # the 18 concurrent requests did not run one by one
        count = float(next(line.split()[-1] for line in sizes.splitlines()
                           if line.startswith(f'malmoi_batch_size_count{{model="{name}"}}')))
        assert count < len(texts)


def test_a_full_queue_answers_429_with_retry_after(served):
    import concurrent.futures as cf
    import threading

    app = create_app(settings=ServeSettings(queue_size=1), models=served)
    worker = None
    release = threading.Event()
    with TestClient(app) as client:
        worker = app.state.malmoi.workers["chat"]
        original = worker.served.loaded.generate
        worker.served.loaded.generate = lambda *a, **k: (release.wait(10), original(*a, **k))[1]
        ask = {"model": "chat", "prompt": "배고파"}
        try:
            with cf.ThreadPoolExecutor(2) as pool:
                running = pool.submit(client.post, "/v1/generate", json=ask)  # holds the worker
                _until(lambda: worker.queue.qsize() == 0 and app.state.malmoi.metrics.queue_seconds
                       .labels("chat")._sum.get() > 0)
                waiting = pool.submit(client.post, "/v1/generate", json=ask)  # takes the one slot
                _until(lambda: worker.queue.qsize() == 1)
                refused = client.post("/v1/generate", json=ask)
                release.set()
                assert running.result().status_code == 200 and waiting.result().status_code == 200
        finally:
            release.set()
            worker.served.loaded.generate = original
        assert refused.status_code == 429 and error_code(refused) == "E607"
        assert refused.headers["retry-after"] == "1"


def _until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_a_request_past_the_timeout_is_504(served):
    app = create_app(settings=ServeSettings(timeout=0.3), models=served)
    with TestClient(app) as client:
        slow = app.state.malmoi.workers["chat"]
        original = slow.served.loaded.generate
        slow.served.loaded.generate = lambda *a, **k: (time.sleep(1.0), original(*a, **k))[1]
        try:
            response = client.post("/v1/generate", json={"model": "chat", "prompt": "배고파"})
        finally:
            slow.served.loaded.generate = original
        assert response.status_code == 504 and error_code(response) == "E608"


def test_health_is_503_while_models_load(runs, monkeypatch):
    import threading

    from malmoi.serve import registry

    release = threading.Event()
    real = registry.load_models
    monkeypatch.setattr("malmoi.serve.app.load_models", lambda specs: (release.wait(10), real(specs))[1])
    with TestClient(create_app(parse_specs([f"ngram={runs['ngram']}"]))) as client:
        loading = client.get("/health")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        assert client.post("/v1/classify", json={"model": "ngram", "texts": ["a"]}).status_code == 503
        release.set()
        for _ in range(100):
            if client.get("/health").status_code == 200:
                break
            time.sleep(0.05)
        assert client.get("/health").status_code == 200
        assert client.post("/v1/classify", json={"model": "ngram", "texts": ["a"]}).status_code == 200


# ------------------------------------------------------------------------------------- settings, names


def test_model_names_and_duplicates(tmp_path):
    specs = parse_specs(["runs/reviews", "chat=runs/chatbot", "runs/x/"])
    assert [(s.name, str(s.run)) for s in specs] == [("reviews", "runs/reviews"), ("chat", "runs/chatbot"),
                                                      ("x", "runs/x")]
    with pytest.raises(MalmoiError) as e:
        parse_specs(["a/reviews", "b/reviews"])
    assert e.value.code == "E601" and "reviews" in e.value.message
    with pytest.raises(MalmoiError) as e:
        parse_specs(["=runs/a"])
    assert e.value.code == "E602"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::"])
def test_listening_beyond_loopback_needs_a_key(host, monkeypatch):
    monkeypatch.delenv("MALMOI_API_KEY", raising=False)
    with pytest.raises(MalmoiError) as e:
        ServeSettings(host=host)
    assert e.value.code == "E603"
    assert ServeSettings(host=host, api_key="k").api_key == "k"
    assert ServeSettings(host=host, insecure=True).insecure
    assert ServeSettings(host="::1").host == "::1" and ServeSettings(host="localhost")


def test_the_key_can_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MALMOI_API_KEY", "from-env")
    assert ServeSettings(host="0.0.0.0").api_key == "from-env"


def test_the_server_shows_the_inspect_view(client, runs):
    from malmoi.inspect import inspect_text

    body = {"model": "bert", "text": "배우들 연기가 정말 좋았어요"}
    record = client.post("/v1/inspect", json=body, headers=AUTH).json()
    expected = inspect_text(load(runs["bert"]), body["text"])
    assert record["text_stage"]["input_ids"] == expected["text_stage"]["input_ids"]
    assert record["classifier"]["probabilities"] == pytest.approx(expected["classifier"]["probabilities"])
    page = client.post("/v1/inspect", json={**body, "format": "html"}, headers=AUTH)
    assert page.status_code == 200 and "charset=utf-8" in page.headers["content-type"]
    assert body["text"] in page.text and "http://" not in page.text and "https://" not in page.text
    assert client.post("/v1/inspect", json={"model": "bert", "text": " "}, headers=AUTH).status_code == 422


def test_a_request_without_beams_leaves_the_decoding_to_the_run():
    """A BART run records its own default decoding (greedy or beams); only a request's explicit
    ``beams`` overrides it, ``beams: 1`` included."""
    from types import SimpleNamespace

    from malmoi.serve.app import _generation_options

    served = SimpleNamespace(generates=True, name="chat", meta={}, loaded=SimpleNamespace(samples=False))
    request = SimpleNamespace(greedy=None, top_k=None, top_p=None, temperature=None, seed=None,
                              repetition_penalty=1.0, beams=None, max_new_tokens=None)
    assert _generation_options(served, request) == {}
    assert _generation_options(served, SimpleNamespace(**{**vars(request), "beams": 1})) == {"beams": 1}
