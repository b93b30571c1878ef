"""``malmoi serve``: every trained run over HTTP (FastAPI + uvicorn), with a web page at ``/``.

    settings.py  limits, auth and batching knobs      registry.py  NAME=RUN → loaded runs
    worker.py    one inference thread per model       schemas.py   request bodies from the limits
    app.py       routes, errors, streams              (tokens: malmoi.inspect.tokens)
    metrics.py   Prometheus counters                  statuses.py  error code → HTTP status
    static/      the self-contained web page

    from malmoi.serve import create_app, parse_specs
    app = create_app(parse_specs(["runs/reviews", "chat=runs/chatbot"]))
"""
from malmoi.serve.app import create_app
from malmoi.serve.registry import ModelSpec, ServedModel, load_models, parse_specs
from malmoi.serve.settings import ServeSettings

__all__ = ["create_app", "parse_specs", "load_models", "ModelSpec", "ServedModel", "ServeSettings"]
