/* malmoi inspect: draws every view of the page from the record in <script id="record">.
   Plain DOM and inline SVG; nothing is fetched. Text from the record only ever goes in as text. */
"use strict";
(() => {
  const record = JSON.parse(document.getElementById("record").textContent);
  const stage = record.text_stage || {};
  const labels = arr(stage.display).length ? stage.display : arr(stage.tokens);
  // the SVG namespace, read off a parsed <svg> rather than spelled out: the page holds no URL at all
  const SVG = (() => {
    const d = document.createElement("div");
    d.innerHTML = "<svg></svg>";
    return d.firstChild.namespaceURI;
  })();
  const BLUE = [47, 111, 222], ORANGE = [217, 72, 15];
  const SPECIAL = /^(\[[^[\]\s]+\]|<[^<>\s]+>)$/;

  // ------------------------------------------------------------------ helpers
  function arr(x) { return Array.isArray(x) ? x : []; }
  function num(x) { return typeof x === "number" && isFinite(x); }
  function fmt(x, d = 3) { return num(x) ? x.toFixed(d) : "–"; }
  function signed(x, d = 3) { return num(x) ? (x >= 0 ? "+" : "") + x.toFixed(d) : "–"; }
  function span(o) { return Array.isArray(o) ? `${o[0]}–${o[1]}` : "–"; }
  /** Small values keep their digits: 0.00042 rather than 0.000. */
  function small(x, d = 3) {
    if (!num(x)) return "–";
    return x === 0 || Math.abs(x) >= 10 ** -(d - 1) ? x.toFixed(d) : x.toPrecision(2);
  }
  function signedSmall(x, d = 3) { return num(x) && x > 0 ? "+" + small(x, d) : small(x, d); }
  /** Spaces made visible (an n-gram or a piece that is only a space would be an empty cell). */
  function visible(s) { return String(s ?? "").replace(/ /g, "␣"); }
  /** A vocabulary piece as a reader sees it: WordPiece's ## dropped, Metaspace's ▁ shown as ␣. */
  function piece(t) {
    const s = String(t ?? "");
    return s.startsWith("##") && s.length > 2 ? s.slice(2) : s.replace(/▁/g, "␣");
  }
  /** Whether token i of the text stage is a special token: a [CLS]- or <s>-style label covering no text. */
  function special(i) {
    const o = arr(stage.offsets)[i];
    return !(Array.isArray(o) && o[1] > o[0]) && SPECIAL.test(String(labels[i] ?? ""));
  }
  /** Token i's readable label; a piece that is only a space (Metaspace's lone ▁) reads ␣. */
  function label(i) {
    const raw = String(arr(stage.tokens)[i] ?? "");
    const shown = labels[i] ?? String(i);
    return /^▁+$/.test(raw) || !String(shown).trim() ? "␣" : shown;
  }

  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "style") node.style.cssText = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid !== null && kid !== undefined && kid !== false) node.append(kid instanceof Node ? kid : String(kid));
    }
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function mix(t, rgb) {
    const x = Math.max(0, Math.min(1, num(t) ? t : 0));
    return `rgb(${rgb.map((c) => Math.round(255 + (c - 255) * x)).join(",")})`;
  }
  function textWidth(s, font) {  // rough: Hangul and other wide characters about one em, the rest ~0.6 em
    let w = 0;
    for (const ch of String(s)) w += ch.codePointAt(0) > 0x2e80 ? font : 0.6 * font;
    return w;
  }

  /** A table in a horizontal scroller; a cell is a value, a Node, or {v, cls, title, style, th}. */
  function table(head, rows, cls) {
    const cell = (c) => (c !== null && typeof c === "object" && !(c instanceof Node)
      ? el(c.th ? "th" : "td", { class: c.cls, title: c.title, style: c.style }, c.v)
      : el("td", {}, c));
    const t = el("table", { class: cls });
    if (head) t.append(el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))));
    t.append(el("tbody", {}, rows.map((row) => el("tr", {}, row.map(cell)))));
    return el("div", { class: "scroll" }, t);
  }
  function chip(text, tag, title, cls) {
    return el("span", { class: "chip" + (cls ? " " + cls : ""), title }, text, tag ? el("small", {}, tag) : null);
  }
  function chips(list) { return el("div", { class: "chips" }, list); }
  function h3(text) { return el("h3", { text }); }
  function muted(...kids) { return el("p", { class: "muted" }, kids); }

  /** Horizontal bars: {name, value, text, title, top}; signed bars grow both ways from a middle line. */
  function bars(items, { isSigned = false, max = 1 } = {}) {
    const grid = el("div", { class: "bars" });
    for (const it of items) {
      const v = num(it.value) ? it.value : 0;
      const fill = el("div", { class: "fill" + (v < 0 ? " neg" : "") });
      if (isSigned) {
        const w = Math.min(50, (Math.abs(v) / (max || 1)) * 50);
        fill.style.left = (v < 0 ? 50 - w : 50) + "%";
        fill.style.width = w + "%";
      } else {
        fill.style.left = "0";
        fill.style.width = Math.max(0, Math.min(100, (v / (max || 1)) * 100)) + "%";
      }
      const top = it.top ? " top" : "";
      grid.append(el("div", { class: "name" + top, title: it.title }, it.name),
        el("div", { class: "track" }, isSigned ? el("div", { class: "zero" }) : null, fill),
        el("div", { class: "p" + top }, it.text ?? fmt(v)));
    }
    return grid;
  }

  /** An SVG heatmap of matrix (rows of numbers), one rect.cell per value; cells shrink to fit `room`
      pixels. Colour runs from white at `min` to blue at `max` (default: the matrix's range). */
  function heatmap(matrix, rowNames, colNames, { room = 760, min, max, values = false, id, cls } = {}) {
    const short = (l) => {
      const c = [...String(l ?? "")];
      return c.length > 12 ? c.slice(0, 11).join("") + "…" : c.join("");
    };
    const rowLabels = rowNames.map(short), colLabels = colNames.map(short);
    const cols = Math.max(0, ...matrix.map((r) => arr(r).length));
    const all = matrix.flat().filter(num);
    const lo = min ?? (all.length ? Math.min(...all) : 0);
    const hi = max ?? (all.length ? Math.max(...all) : 1);
    const font0 = 10;
    const labelW = Math.min(120, 8 + Math.max(10, ...rowLabels.map((l) => textWidth(l, font0))));
    const cellW = Math.max(4, Math.min(values ? 40 : 26, Math.floor((room - labelW - 20) / Math.max(1, cols))));
    const cellH = values ? Math.min(cellW, 20) : cellW;
    const font = Math.max(6, Math.min(font0, cellW - 1));
    const colH = Math.min(100, 10 + 0.87 * Math.max(10, ...colLabels.map((l) => textWidth(l, font))));
    const root = svg("svg", { class: "heatmap" + (cls ? " " + cls : ""), width: labelW + cols * cellW + 20,
      height: colH + matrix.length * cellH + 4, role: "img" });
    if (id) root.id = id;
    colLabels.forEach((l, c) => {
      const x = labelW + c * cellW + cellW / 2, y = colH - 4;
      root.append(svg("text", { x, y, transform: `rotate(-60 ${x} ${y})`, "font-size": font }, l));
    });
    matrix.forEach((row, r) => {
      const y = colH + r * cellH;
      root.append(svg("text", { x: labelW - 4, y: y + cellH / 2 + font / 3, "text-anchor": "end",
        "font-size": Math.min(font0, Math.max(font, cellH - 1)) }, rowLabels[r] ?? r));
      arr(row).forEach((v, c) => {
        const t = hi > lo ? (v - lo) / (hi - lo) : 0;
        const rect = svg("rect", { class: "cell", x: labelW + c * cellW, y, width: cellW, height: cellH,
          fill: num(v) ? mix(t, BLUE) : "#eee", "data-r": r, "data-c": c });
        rect.append(svg("title", {}, `${rowNames[r] ?? r} → ${colNames[c] ?? c}: ${fmt(v, 4)}`));
        root.append(rect);
        if (values && cellW >= 30) {
          root.append(svg("text", { x: labelW + c * cellW + cellW / 2, y: y + cellH / 2 + 3, "text-anchor": "middle",
            "font-size": 9, fill: t > 0.6 ? "#fff" : "#1d2430", "pointer-events": "none" }, fmt(v, 2)));
        }
      });
    });
    return el("div", { class: "scroll" }, root,
      el("div", { class: "legend" }, `색: ${fmt(lo, 3)} (흰색) → ${fmt(hi, 3)} (파랑) · 칸에 마우스를 올리면 값`));
  }
  function select(id, options, value, onChange) {
    const s = el("select", { id }, options.map(([v, text]) => el("option", { value: v }, text)));
    s.value = String(value);
    s.addEventListener("change", onChange);
    return s;
  }

  // ------------------------------------------------------------------ views
  function textView(box) {
    const words = (w) => chips(arr(w).map((x) => chip(x.text, span([x.start, x.end]))));
    const morphs = (m) => chips(arr(m).map((x) => chip(x.form, x.tag, span([x.start, x.end]))));
    box.append(h3("단어 · words"), words(stage.words), h3("형태소 · morphemes (Kiwi)"), morphs(stage.morphemes));
    if (stage.pair) {
      box.append(h3("두 번째 문장 · pair"), words(stage.pair.words), morphs(stage.pair.morphemes));
    }
    if (stage.kind === "ngrams") {
      const grams = arr(stage.ngrams);
      box.append(h3(`n-gram ${grams.length}개 · kind, bucket id, span`), el("div", { class: "tall" },
        table(["#", "kind", "n-gram", "bucket id", "span"], grams.map((g, i) => [
          i, g.kind, { v: visible(g.text), cls: "left" }, { v: g.id, cls: "num" }, span([g.start, g.end])]),
        "ngrams")));
      return;
    }
    const T = labels.length;
    const idx = [...Array(T).keys()];
    const row = (name, values) => [{ v: name, th: true, cls: "row" }, ...values];
    const rows = [row("토큰 · token", idx.map((i) => ({ v: label(i), cls: special(i) ? "special" : "" })))];
    if (arr(stage.tokens).some((t, i) => t !== labels[i])) rows.push(row("vocab piece", arr(stage.tokens)));
    for (const key of ["input_ids", "token_type_ids", "attention_mask", "sequence_ids"]) {
      if (Array.isArray(stage[key])) rows.push(row(key, stage[key].map((x) => x ?? "–")));
    }
    rows.push(row("span", idx.map((i) => span(arr(stage.offsets)[i]))));
    box.append(h3(`토큰 ${T}개 · ${stage.kind === "units" ? "vocabulary units" : "subwords"}`),
      table(["", ...idx], rows, "tokens"));
  }

  function embeddingsView(box) {
    const emb = record.embeddings;
    const shape = arr(emb.shape), rows = arr(emb.tokens);
    const maxNorm = Math.max(1e-9, ...rows.map((r) => (num(r.norm) ? r.norm : 0)));
    box.append(muted(`${shape[0]} 토큰 × ${shape[1]} 차원 · 임베딩 표 ${emb.vocabulary}행 · ` +
      "가장 가까운 토큰: 표 전체에서 코사인 유사도"));
    box.append(el("div", { class: rows.length > 20 ? "tall" : "" },
      table(["#", "token", "id", "norm", "first values", "nearest (cosine)"], rows.map((r, i) => [
      i, { v: label(i), cls: special(i) ? "special" : "" }, arr(stage.input_ids)[i] ?? "–",
      { v: fmt(r.norm, 2), cls: "num",
        style: `background: linear-gradient(90deg, #dbe7fb ${(100 * (r.norm || 0)) / maxNorm}%, transparent 0)` },
      { v: arr(r.first).map((x) => signed(x, 2)).join(" "), cls: "left" },
      { v: chips(arr(r.nearest).map((n) => chip(piece(n.token), fmt(n.cosine, 2), `id ${n.id}: ${n.token}`))),
        cls: "left" },
    ]), "embeddings")));
  }

  function layersView(box) {
    const L = record.layers;
    const norms = arr(L.hidden_norms), attention = arr(L.attention), lens = arr(L.logit_lens);
    const hide = el("input", { type: "checkbox", id: "hide-specials" });
    const state = { layer: Math.max(0, attention.length - 1), head: "mean" };
    const normBox = el("div"), attBox = el("div", { id: "attention" }), lensBox = el("div");
    const kept = () => labels.map((_, i) => i).filter((i) => !(hide.checked && special(i)));
    const room = () => Math.max(320, box.clientWidth - 10);

    function draw() {
      const keep = kept(), names = keep.map(label);
      normBox.replaceChildren(heatmap(norms.map((r) => keep.map((i) => arr(r)[i])),
        norms.map((_, i) => (i === 0 ? "emb" : `L${i}`)), names, { room: room(), values: true, id: "norms-map" }));
      const heads = arr(attention[state.layer]);
      if (heads.length) {
        const T = arr(heads[0]).length;
        const mean = [...Array(T).keys()].map((r) => [...Array(T).keys()].map(
          (c) => heads.reduce((s, h) => s + (arr(h[r])[c] || 0), 0) / heads.length));
        const m = state.head === "mean" ? mean : heads[Number(state.head)];
        attBox.replaceChildren(heatmap(keep.map((r) => keep.map((c) => arr(m[r])[c])), names, names,
          { room: room(), min: 0, id: "attention-map" }));
      }
      if (lens.length) {
        lensBox.replaceChildren(table(["layer", ...names], lens.map((row, l) => [
          { v: `L${l + 1}`, th: true, cls: "row" },
          ...keep.map((i) => {
            const best = arr(arr(row)[i])[0] || {};
            const rest = arr(arr(row)[i]).map((x) => `${piece(x.token)} ${small(x.p, 3)}`).join("\n");
            return { v: [piece(best.token), " ", el("span", { class: "p-cell" }, small(best.p, 2))],
              style: `background:${mix(best.p, BLUE)}; color:${best.p > 0.6 ? "#fff" : ""}`, title: rest };
          })]), "lens"));
      }
    }
    hide.addEventListener("change", draw);
    box.append(el("div", { class: "controls" },
      el("label", {}, hide, " [CLS]·[SEP] 같은 특수 토큰 숨기기 (hide special tokens)")));
    box.append(h3("hidden-state norm · 레이어별 (emb: 임베딩, L1…: 각 레이어 출력)"), normBox);
    if (attention.length) {
      const H = arr(attention[0]).length;
      const layerSel = select("attention-layer", attention.map((_, i) => [i, `layer ${i + 1}`]), state.layer,
        (e) => { state.layer = Number(e.target.value); draw(); });
      const headSel = select("attention-head", [["mean", "헤드 평균 · mean of heads"],
        ...[...Array(H).keys()].map((h) => [h, `head ${h + 1}`])], "mean",
      (e) => { state.head = e.target.value; draw(); });
      box.append(h3("attention · 행: 보는 토큰 (from), 열: 보이는 토큰 (to)"),
        el("div", { class: "controls" }, el("label", {}, "레이어 ", layerSel), el("label", {}, "헤드 ", headSel)), attBox);
    }
    if (lens.length) box.append(h3("logit lens · 레이어마다 각 위치에서 가장 유력한 토큰과 확률"), lensBox);
    draw();
  }

  function classifierView(box) {
    const clf = record.classifier;
    const probs = clf.probabilities || {}, logits = clf.logits || {};
    box.append(el("p", { class: "verdict" }, "예측 → ", el("b", {}, clf.label ?? "–"), ` (${fmt(clf.score, 4)})`));
    box.append(h3("logits → softmax"), bars(Object.entries(probs).map(([lab, p]) => ({
      name: [lab, lab in logits ? el("small", {}, `  logit ${signed(logits[lab], 3)}`) : null],
      value: p, text: fmt(p, 4), top: lab === clf.label,
    }))));
    if (clf.pooled) {
      box.append(muted(`${clf.pooled.token} 벡터: norm ${fmt(clf.pooled.norm, 2)}, 처음 값 `,
        arr(clf.pooled.first).map((x) => signed(x, 2)).join(" ")));
    }
    const attributions = arr(clf.attributions);
    if (attributions.length) {
      const max = Math.max(1e-9, ...attributions.map((a) => (num(a) ? Math.abs(a) : 0)));
      box.append(h3(`gradient × input · 각 토큰이 "${clf.label}" 쪽으로 민 정도 (파랑 +, 주황 −)`),
        el("div", { class: "attr", id: "attributions" }, attributions.map((a, i) => el("span", {
          class: special(i) ? "special" : "", title: `${label(i)}: ${signed(a, 4)}`,
          style: `background:${mix(Math.abs(a) / max, a < 0 ? ORANGE : BLUE)}` +
            (Math.abs(a) / max > 0.6 ? "; color:#fff" : ""),
        }, label(i), el("small", {}, signedSmall(a, 2))))));
    }
    const members = arr(clf.members);
    members.forEach((m) => box.append(memberView(m, clf.label)));
    if (members.length) {
      box.append(h3("앙상블 · ensemble"), muted(clf.ensemble || ""), bars(Object.entries(probs).map(([lab, p]) => ({
        name: lab, value: p, text: fmt(p, 4), top: lab === clf.label }))));
    }
  }

  function memberView(m, target) {
    const box = el("div", { class: "member" });
    const byLabel = (o) => Object.entries(o || {}).map(([lab, v]) => `${lab}: ${signedSmall(v, 3)}`).join(", ");
    const reads = arr(m.reads).length ? " · reads " + m.reads.join(", ") : "";
    const softmax = Object.entries(m.probabilities || {}).map(([lab, p]) => `${lab}: ${fmt(p, 3)}`).join(", ");
    box.append(h3(`${m.name ?? "member"} (${m.kind ?? ""})${reads}`));
    box.append(muted(`bias ${byLabel(m.bias)} · logits ${byLabel(m.logits)} · softmax ${softmax}`));
    const rows = arr(m.contributions);
    const attention = arr(m.attention);
    const value = (c) => (c.contribution || {})[target];
    const max = Math.max(1e-9, ...rows.map((c) => (num(value(c)) ? Math.abs(value(c)) : 0)));
    const item = (c, i) => {
      const grams = arr(c.ngrams);
      const text = visible(c.text || grams.map((g) => g.text).join("/"));
      const first = grams[0] || {};
      const where = num(c.start) && c.end > c.start ? [c.start, c.end] : grams.length ? [first.start, first.end] : null;
      const w = arr(attention[i]);
      const extra = [c.kind || first.kind, where ? span(where) : null, grams.length > 1 ? `×${grams.length}` : null,
        w.length ? "attn " + w.map((x) => fmt(x, 3)).join("/") : null].filter(Boolean).join(" · ");
      const title = [...grams.map((g) => `${g.kind} ${g.text} ${span([g.start, g.end])}`), byLabel(c.contribution)];
      return { name: [text, el("small", {}, "  " + extra)], value: value(c), text: signedSmall(value(c), 3),
        title: title.join("\n") };
    };
    box.append(muted(`n-gram 기여: "${target}" 로짓에 더한 값 (bias를 더하면 로짓) · ${rows.length}개`));
    box.append(bars(rows.slice(0, 12).map(item), { isSigned: true, max }));
    if (rows.length > 12) {
      box.append(el("details", {}, el("summary", {}, `나머지 ${rows.length - 12}개`),
        bars(rows.slice(12).map((c, i) => item(c, i + 12)), { isSigned: true, max })));
    }
    return box;
  }

  /** Steps × their top-k, the chosen token highlighted. */
  function stepsTable(steps) {
    return table(["step", "chosen", "top-k (p)"], steps.map((s) => {
      const chosen = s.chosen || {};
      return [s.step, { v: [piece(chosen.token), " ", el("span", { class: "p-cell" }, fmt(chosen.p, 3))], cls: "left" },
        { v: chips(arr(s.top).map((t) => chip(piece(t.token), fmt(t.p, 3), `id ${t.id}: ${t.token}`,
          t.id === chosen.id && t.token === chosen.token ? "chosen" : ""))), cls: "left" }];
    }), "steps");
  }

  function generationView(box) {
    const gen = record.generation;
    box.append(el("p", { class: "answer" }, el("span", { class: "prompt" }, record.text), el("b", {}, gen.text || "")));
    const prompt = num(gen.prompt_tokens) ? ` · 프롬프트 ${gen.prompt_tokens} 토큰` : "";
    box.append(muted(`이어 쓴 부분: "${visible(gen.text)}" · decoding: ${gen.decoding || "–"}${prompt}`));
    box.append(h3("단계별 다음 토큰 · each step's top-k"), stepsTable(arr(gen.steps)));
    const s = gen.sampling;
    if (!s) return;
    box.append(h3("샘플링 효과 · 첫 단계의 분포 (temperature, top-k, top-p)"));
    box.append(table(["temperature", "entropy", "top tokens"], arr(s.temperature).map((t) => [
      t.temperature, { v: fmt(t.entropy, 3), cls: "num" },
      { v: chips(arr(t.top).map((x) => chip(piece(x.token), fmt(x.p, 3)))), cls: "left" }]), "temperature"));
    if (arr(s.top_k).length) {
      box.append(el("div", { style: "margin-top:.5rem" }, bars(s.top_k.map((k) => ({
        name: `top-k ${k.k}`, value: k.mass, text: fmt(k.mass, 3), title: "남는 확률 질량" })))));
    }
    if (s.top_p) {
      box.append(muted(`top-p ${s.top_p.p}: 확률 합이 ${s.top_p.p}에 이를 때까지 ${s.top_p.tokens_kept}개 토큰을 남김 ` +
        `(전체 ${s.top_p.of}개 중)`));
    }
  }

  function seq2seqView(box) {
    const s = record.seq2seq;
    // the source as the text stage reads it (Hangul, not pieces) when it is the same tokens; <unk> kept in sight
    const pieces = arr(s.source_tokens).map(piece);
    const source = pieces.length === labels.length
      ? pieces.map((p, i) => (label(i) === p || !SPECIAL.test(p) ? label(i) : `${label(i)} ${p}`)) : pieces;
    const steps = arr(s.steps);
    const stepNames = steps.map((x) => `${x.step}: ${piece((x.chosen || {}).token)}`);
    const room = () => Math.max(320, box.clientWidth - 10);
    box.append(el("p", { class: "answer" }, "답변 → ", el("b", {}, s.text ?? "")),
      muted(`decoding: ${s.decoding || "greedy"}`));
    const norms = arr((s.encoder || {}).norms);
    if (norms.length) {
      box.append(h3("encoder · 소스 토큰별 상태 norm"),
        heatmap([norms], ["norm"], source, { room: room(), values: true, id: "encoder-map" }));
    }
    if (steps.some((x) => Array.isArray(x.attention))) {
      box.append(h3("attention · 행: 디코딩 단계, 열: 소스 토큰"), heatmap(steps.map((x) => arr(x.attention)),
        stepNames, source, { room: room(), min: 0, id: "seq2seq-attention" }));
    }
    const cross = arr(s.cross_attention);
    if (cross.length) {
      const holder = el("div");
      const draw = (layer) => holder.replaceChildren(heatmap(arr(cross[layer]), stepNames, source,
        { room: room(), min: 0, id: "cross-attention-map" }));
      box.append(h3(`cross-attention · 레이어별 (헤드 ${s.cross_attention_heads === "mean" ? "평균" : "—"})`),
        el("div", { class: "controls" }, el("label", {}, "레이어 ", select("cross-layer",
          cross.map((_, i) => [i, `layer ${i + 1}`]), cross.length - 1, (e) => draw(Number(e.target.value))))), holder);
      draw(cross.length - 1);
    }
    box.append(h3("단계별 다음 토큰 · each step's top-k"), stepsTable(steps));
  }

  function retrievalView(box) {
    const r = record.retrieval;
    box.append(table(null, [
      [{ v: "가장 가까운 학습 질문 · matched", th: true, cls: "row" }, { v: r.matched ?? "(없음)", cls: "left" }],
      [{ v: "cosine (문자 n-gram)", th: true, cls: "row" }, { v: fmt(r.similarity, 4), cls: "num" }],
      [{ v: "답변 · answer", th: true, cls: "row" }, { v: r.answer ?? "", cls: "left" }],
    ], "retrieval"));
  }

  function fillingsView(box) {
    const list = arr(record.fillings);
    box.append(bars(list.map((f, i) => ({ name: [piece(f.token), el("small", {}, "  " + (f.text ?? ""))],
      value: f.score, text: fmt(f.score, 3), top: i === 0, title: f.text }))));
  }

  function taggingView(box) {
    const t = record.tagging;
    const text = record.text, ents = arr(t.entities);
    const marked = [];
    let at = 0;
    for (const e of ents) {
      if (e.start > at) marked.push(text.slice(at, e.start));
      marked.push(el("mark", { class: "entity", title: `${e.type} ${fmt(e.score, 3)}` }, e.text,
        el("small", {}, " " + e.type)));
      at = e.end;
    }
    if (at < text.length) marked.push(text.slice(at));
    box.append(h3(`개체 ${ents.length}개 · entities (${t.scheme})`), el("p", { class: "answer" }, marked));
    const units = arr(t.units);
    const hasFeatures = units.some((u) => u.features);
    const head = [t.unit === "character" ? "문자 · character" : "토큰 · token", "span",
      ...(hasFeatures ? ["bigram", "형태소 · morpheme", "word"] : []), "선택 · tag", "top tags (softmax)"];
    box.append(h3(`${t.unit === "character" ? "문자" : "토큰"} ${units.length}개 · units`), el("div", { class: "tall" },
      table(head, units.map((u) => [
        { v: visible(u.text), cls: "left" }, span([u.start, u.end]),
        ...(hasFeatures ? [visible(u.features.bigram), u.features.morpheme, u.features.word] : []),
        { v: u.tag, cls: u.tag === "O" ? "" : "chosen" },
        { v: arr(u.top).map((x) => `${x.tag} ${fmt(x.p, 2)}`).join("  "), cls: "left" }]), "tagging")));
  }

  function readingView(box) {
    const r = record.reading, a = r.answer || {}, context = r.context || "";
    const shown = a.end > a.start
      ? [context.slice(0, a.start), el("mark", { class: "entity", title: fmt(a.score, 3) }, context.slice(a.start, a.end)),
        context.slice(a.end)]
      : [context];
    box.append(h3(`답 · answer: ${a.text || "(없음)"} (${fmt(a.score, 3)}, 창 ${r.windows}개 · windows)`),
      el("p", { class: "answer" }, shown));
    const units = arr(r.tokens);
    box.append(h3("첫 창의 문맥 토큰 · context tokens of the first window"), el("div", { class: "tall" },
      table(["토큰 · token", "span", "match", "p(start)", "p(end)"], units.map((u) => [
        { v: visible(u.text), cls: "left" }, span([u.start, u.end]), { v: u.match, cls: "num" },
        { v: fmt(u.p_start, 3), cls: u.start === a.start ? "chosen num" : "num" },
        { v: fmt(u.p_end, 3), cls: u.end === a.end ? "chosen num" : "num" }]), "reading")));
  }

  const VIEWS = { reading: readingView, tagging: taggingView, text: textView, embeddings: embeddingsView, layers: layersView, classifier: classifierView,
    generation: generationView, seq2seq: seq2seqView, retrieval: retrievalView, fillings: fillingsView };
  for (const [id, view] of Object.entries(VIEWS)) {
    const box = document.querySelector(`#${id} > .body`);
    if (!box) continue;
    try {
      view(box);
    } catch (err) {  // one broken view must not take the others down; the console still says why
      console.error(`inspect: the ${id} view failed`, err);
      box.append(el("p", { class: "error" }, `이 화면을 그리지 못했습니다: ${err}`));
    }
  }
  document.body.dataset.rendered = "1";
})();
