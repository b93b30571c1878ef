"""The record in the terminal: rich tables and small heatmaps, one panel per stage."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

SHADES = " ░▒▓█"


def shade(weight: float) -> str:
    """One character for a weight in [0, 1]: a heatmap cell that reads in any terminal."""
    return SHADES[min(len(SHADES) - 1, int(weight * (len(SHADES) - 1) + 0.5))]


def labels(record: dict) -> list[str]:
    stage = record["text_stage"]
    return stage.get("display") or stage.get("tokens") or []


def print_record(record: dict, console: Console | None = None) -> None:
    console = console or Console()
    console.rule(f"[bold]{record['text']}[/bold]  ({record['family']} · {record.get('preset') or record.get('task')})")
    for note in record["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")
    _text(record, console)
    for key, show in (("embeddings", _embeddings), ("layers", _layers), ("classifier", _classifier),
                      ("generation", _generation), ("seq2seq", _seq2seq), ("retrieval", _retrieval),
                      ("fillings", _fillings), ("tagging", _tagging),
                      ("reading", _reading)):
        if record.get(key):
            show(record, console)


def _text(record: dict, console: Console) -> None:
    stage = record["text_stage"]
    console.print("[bold]words[/bold]  " + " | ".join(w["text"] for w in stage["words"]))
    console.print("[bold]morphemes[/bold]  " + " ".join(f"{m['form']}/{m['tag']}" for m in stage["morphemes"]))
    if stage["kind"] == "ngrams":
        table = Table(title=f"{len(stage['ngrams'])} n-grams (first 40)", title_justify="left")
        for name in ("kind", "n-gram", "bucket id", "span"):
            table.add_column(name)
        for g in stage["ngrams"][:40]:
            table.add_row(g["kind"], repr(g["text"]), str(g["id"]), f"{g['start']}–{g['end']}")
        console.print(table)
        return
    table = Table(title="tokens", title_justify="left")
    for name in ("", *labels(record)):
        table.add_column(name, justify="center")
    table.add_row("token", *stage["tokens"])
    for key, name in (("input_ids", "input_ids"), ("token_type_ids", "token_type_ids"),
                      ("attention_mask", "attention_mask")):
        table.add_row(name, *map(str, stage[key]))
    table.add_row("span", *(f"{o[0]}–{o[1]}" if o else "–" for o in stage["offsets"]))
    console.print(table)


def _embeddings(record: dict, console: Console) -> None:
    emb = record["embeddings"]
    table = Table(title=f"embeddings {emb['shape'][0]} × {emb['shape'][1]} (table of {emb['vocabulary']})",
                  title_justify="left")
    for name in ("token", "norm", "first values", "nearest by cosine"):
        table.add_column(name)
    for label, row in zip(labels(record), emb["tokens"]):
        near = ", ".join(f"{n['token']} {n['cosine']:.2f}" for n in row["nearest"])
        table.add_row(label, f"{row['norm']:.2f}", " ".join(f"{v:+.2f}" for v in row["first"][:4]), near)
    console.print(table)


def _layers(record: dict, console: Console) -> None:
    layers, names = record["layers"], labels(record)
    table = Table(title="hidden-state norm per layer (0: embeddings)", title_justify="left")
    table.add_column("layer")
    for name in names:
        table.add_column(name, justify="right")
    for i, norms in enumerate(layers["hidden_norms"]):
        table.add_row(str(i), *(f"{v:.1f}" for v in norms))
    console.print(table)
    last = layers["attention"][-1]
    mean = [[sum(h[r][c] for h in last) / len(last) for c in range(len(last[0][r]))] for r in range(len(last[0]))]
    console.print(f"[bold]attention[/bold], last layer, mean of {layers['heads']} heads (row: from, column: to)")
    width = max((len(n) for n in names), default=1)
    for name, row in zip(names, mean):
        console.print(Text(f"{name:>{width}} ") + Text("".join(shade(w) for w in row), style="cyan"))
    if layers.get("logit_lens"):
        table = Table(title="logit lens: each layer's top next token per position", title_justify="left")
        table.add_column("layer")
        for name in names:
            table.add_column(name)
        for i, row in enumerate(layers["logit_lens"], 1):
            table.add_row(str(i), *(f"{cell[0]['token']} {cell[0]['p']:.2f}" for cell in row))
        console.print(table)


def _classifier(record: dict, console: Console) -> None:
    clf = record["classifier"]
    table = Table(title=f"→ [bold]{clf['label']}[/bold] ({clf['score']:.3f})", title_justify="left")
    for name in ("label", "logit", "probability", ""):
        table.add_column(name)
    logits = clf.get("logits") or {}
    for label, p in clf["probabilities"].items():
        logit = f"{logits[label]:+.3f}" if label in logits else ""
        table.add_row(label, logit, f"{p:.4f}", "█" * round(p * 30))
    console.print(table)
    if clf.get("attributions"):
        pairs = sorted(zip(labels(record), clf["attributions"]), key=lambda x: -abs(x[1]))[:10]
        console.print("[bold]gradient × input[/bold]  " + "  ".join(f"{t} {a:+.3f}" for t, a in pairs))
    for member in clf.get("members", []):
        top = member["contributions"][:8]
        said = "  ".join(f"{c.get('text') or _ngram_text(c)} {c['contribution'][clf['label']]:+.3f}" for c in top)
        console.print(f"[bold]{member['name']}[/bold] pushes toward {clf['label']}: {said}")


def _ngram_text(contribution: dict) -> str:
    return "/".join(g["text"] for g in contribution.get("ngrams", []))


def _generation(record: dict, console: Console) -> None:
    gen = record["generation"]
    table = Table(title=f"generation ({gen['decoding']}): {record['text']}[bold]{gen['text']}[/bold]",
                  title_justify="left")
    for name in ("step", "chosen", "top next tokens"):
        table.add_column(name)
    for s in gen["steps"]:
        table.add_row(str(s["step"]), f"{s['chosen']['token']} {s['chosen']['p']:.2f}",
                      "  ".join(f"{t['token']} {t['p']:.2f}" for t in s["top"]))
    console.print(table)
    sampling = gen.get("sampling")
    if sampling:
        for t in sampling["temperature"]:
            console.print(f"temperature {t['temperature']}: entropy {t['entropy']:.2f}, top "
                          + "  ".join(f"{x['token']} {x['p']:.2f}" for x in t["top"][:3]))
        console.print("top-k keeps " + ", ".join(f"k={k['k']}: {k['mass']:.2f} of the mass" for k in sampling["top_k"])
                      + f"; top-p {sampling['top_p']['p']} keeps {sampling['top_p']['tokens_kept']} of "
                        f"{sampling['top_p']['of']} tokens")


def _seq2seq(record: dict, console: Console) -> None:
    s2s = record["seq2seq"]
    console.print(f"[bold]answer[/bold] ({s2s.get('decoding', 'greedy')}): {s2s['text']}")
    source = s2s["source_tokens"]
    width = max((len(s["chosen"]["token"]) for s in s2s["steps"]), default=1)
    if any("attention" in s for s in s2s["steps"]):
        console.print("attention over " + " ".join(source))
    for s in s2s["steps"]:
        heat = "".join(shade(w) for w in s.get("attention", []))
        top = "  ".join(f"{t['token']} {t['p']:.2f}" for t in s["top"][:3])
        console.print(Text(f"{s['chosen']['token']:>{width}} ") + Text(heat, style="cyan") + Text(f"  {top}"))


def _retrieval(record: dict, console: Console) -> None:
    r = record["retrieval"]
    console.print(f"[bold]nearest training question[/bold] {r['matched']!r} (cosine {r['similarity']:.3f}) "
                  f"→ [bold]{r['answer']}[/bold]")


def _fillings(record: dict, console: Console) -> None:
    console.print("[bold][MASK][/bold]  " + "  ".join(f"{f['token']} {f['score']:.2f}" for f in record["fillings"]))


def _tagging(record: dict, console: Console) -> None:
    t = record["tagging"]
    found = "  ".join(f"[bold]{e['text']}[/bold]/{e['type']} {e['start']}–{e['end']} ({e['score']:.2f})"
                      for e in t["entities"])
    console.print(f"[bold]entities[/bold] ({t['scheme']})  {found or '(none)'}")
    table = Table(title=f"{t['unit']}s: the chosen tag and the most probable ones", title_justify="left")
    features = any("features" in u for u in t["units"])
    for name in (t["unit"], "span", *(("bigram", "morpheme", "word") if features else ()), "tag", "top tags"):
        table.add_column(name)
    for u in t["units"]:
        f = u.get("features") or {}
        table.add_row(repr(u["text"]) if u["text"].isspace() else u["text"], f"{u['start']}–{u['end']}",
                      *((f.get("bigram", ""), f.get("morpheme", ""), f.get("word", "")) if features else ()),
                      f"[bold]{u['tag']}[/bold]" if u["tag"] != "O" else "O",
                      "  ".join(f"{x['tag']} {x['p']:.2f}" for x in u["top"]))
    console.print(table)


def _reading(record: dict, console: Console) -> None:
    r = record["reading"]
    a = r["answer"]
    console.print(f"[bold]answer[/bold] {a['text']!r} (characters {a['start']}–{a['end']} of the context, "
                  f"score {a['score']:.3f}; {r['windows']} window(s))")
    table = Table(title="the first window's context tokens most likely to start or end the answer",
                  title_justify="left")
    for name in ("token", "span", "match", "p(start)", "p(end)"):
        table.add_column(name)
    best = sorted(r["tokens"], key=lambda u: -max(u["p_start"], u["p_end"]))[:12]
    for u in sorted(best, key=lambda u: u["start"]):
        table.add_row(u["text"], f"{u['start']}–{u['end']}", str(u["match"]), f"{u['p_start']:.3f}",
                      f"{u['p_end']:.3f}")
    console.print(table)
