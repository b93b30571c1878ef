"""`malmoi serve`: parse, check the runs, start uvicorn on the app of ``malmoi.serve``."""
from __future__ import annotations

import os
from typing import List, Optional

import typer

from malmoi.cli.apps import app


@app.command(short_help="Serve runs over HTTP with a web page: malmoi serve runs/reviews chat=runs/chatbot")
def serve(
    runs: List[str] = typer.Argument(..., help="Run directories, each RUN (named after its folder) or NAME=RUN."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (beyond loopback: set a key)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="MALMOI_API_KEY",
                                          help="Require Authorization: Bearer KEY on every route but / and /health."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow a non-loopback --host without a key."),
    workers: int = typer.Option(1, "--workers", help="Server processes, each with every model (more cores)."),
    threads: Optional[int] = typer.Option(None, "--threads",
                                          help="Torch threads per process (default: the cores divided by --workers)."),
    max_batch: int = typer.Option(32, "--max-batch", help="Texts gathered into one classify batch (1: no batching)."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", help="How long a batch waits for more requests."),
    queue_size: int = typer.Option(128, "--queue-size", help="Requests waiting per model before 429."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds a request may take (504 past it)."),
    max_body: int = typer.Option(1_000_000, "--max-body", help="Bytes in a request body (413 past it)."),
    max_texts: int = typer.Option(64, "--max-texts", help="Texts in one classify request."),
    max_chars: int = typer.Option(2000, "--max-chars", help="Characters in one text or prompt."),
    max_new_tokens: int = typer.Option(512, "--max-new-tokens", help="The largest max_new_tokens a request may ask."),
) -> None:
    """Serve trained runs: a JSON API (classify, tokenize, generate with streaming, OpenAI completions),
    Prometheus metrics and a web page at http://HOST:PORT/.

    Example: malmoi serve runs/reviews chat=runs/chatbot --port 8000 --api-key sekret
    """
    from malmoi.cli.train import passive_openmp

    passive_openmp()
    import uvicorn

    from malmoi.serve import ServeSettings, create_app, load_models, parse_specs
    from malmoi.serve.app import CONFIG_ENV, config_json
    from malmoi.serve.registry import check_specs

    settings = ServeSettings(host=host, port=port, api_key=api_key, insecure=insecure, workers=workers,
                             threads=threads, max_batch=max_batch, max_wait_ms=max_wait_ms, queue_size=queue_size,
                             timeout=timeout, max_body=max_body, max_texts=max_texts, max_chars=max_chars,
                             max_new_tokens=max_new_tokens)
    specs = parse_specs(runs)
    check_specs(specs)
    if workers > 1:
        print(f"serving {', '.join(s.name for s in specs)} on http://{host}:{port}/ with {workers} processes "
              f"({'key required' if settings.api_key else 'no key'})", flush=True)
        os.environ[CONFIG_ENV] = config_json(specs, settings)
        uvicorn.run("malmoi.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level="warning")
        return
    # Loaded before the port opens: whoever can connect gets answers, not 503s.
    models = load_models(specs)
    print(f"serving {', '.join(models)} on http://{host}:{port}/ "
          f"({'key required' if settings.api_key else 'no key'})", flush=True)
    uvicorn.run(create_app(settings=settings, models=models), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=3)
