"""One project exception and the table of its codes. The CLI prints it as one line and exits non-zero;
tests match on `code`.

Every code means one thing and is listed in ``ERRORS``; ``MalmoiError`` refuses a code that is not there.
``docs/errors.md`` is generated from the table by ``errors_markdown()``; tests/test_errors.py checks it."""
from __future__ import annotations

GROUPS = {
    "E1": "Input data",
    "E2": "Arguments and options",
    "E3": "Run directories",
    "E4": "Models and inference",
    "E5": "Network",
    "E6": "Serving",
}
"""Code ranges: the first two characters of a code → the heading it is listed under."""

ERRORS: dict[str, str] = {
    # E1xx input data -- reading files (README documents E101-E107)
    "E101": "an input file is missing, is a folder, or cannot be read",
    "E102": "the input holds no usable text (empty file, header without rows, every value empty, no tokens)",
    "E103": "an input file is not valid UTF-8",
    "E104": "a named column is not in the file's header",
    "E105": "a label is empty, or is not one the model knows",
    "E106": "a CSV/TSV line has the wrong number of fields or broken quotes",
    "E107": "a JSONL line is not a valid JSON object",
    # E1xx input data -- too little or mismatched data
    "E110": "the label column holds a single class",
    "E111": "too few rows or pairs to hold out a validation split",
    "E112": "too few documents (lines) to hold out a validation split",
    "E113": "the training data is empty",
    "E114": "a collator was given an empty batch",
    "E115": "parallel inputs differ in number (texts and labels, sources and targets, lengths and examples)",
    # E1xx input data -- tagged sentences (KLUE, CoNLL, JSONL)
    "E120": "a tagged line is not a character (KLUE) or token (CoNLL) followed by its tag",
    "E121": "a tag is neither O nor PREFIX-TYPE of the file's scheme (BIO or BIOES)",
    "E122": "a tag sequence breaks its scheme (an I- that continues no entity, a BIOES entity left open)",
    "E123": "a JSONL tagged line lacks tokens and tags of the same length",
    "E124": "no training sentence holds an entity",
    # E1xx input data -- question answering (SQuAD v1.1 / KorQuAD 1.0 files)
    "E130": "a question-answering file is not JSON",
    "E131": "a question-answering file is not SQuAD v1.1 JSON (data → paragraphs → context, qas)",
    "E132": "a question in a training or evaluation file has no answers",
    "E133": "an answer's text is not at its answer_start in the context",
    "E134": "a single article cannot be split by article",
    # E2xx arguments -- general
    "E201": "an option or argument value is out of range",
    "E202": "a dataset length (max_length, block_size) is not positive",
    "E203": "a duration (--time-budget) cannot be read",
    "E204": "evaluation did not return the monitored metric",
    "E205": "a bucket sampler was given neither the example lengths nor the dataset size",
    # E2xx arguments -- tokenization
    "E210": "unknown tokenizer kind or token units",
    "E211": "the vocabulary size is too small",
    "E212": "more than one way to split text was chosen",
    "E213": "a vocabulary limit (min_freq, max_size) is out of range",
    # E2xx arguments -- presets and training options
    "E220": "unknown preset, or one this task does not train",
    "E221": "the preset is of a model type this use cannot build",
    "E222": "a length limit (--max-length, --block-size, --max-source-length, --max-target-length, "
            "--max-new-tokens, a scoring window) is out of range or exceeds the model's positions",
    "E223": "--batch-size is below 1",
    "E224": "--beams is below 1",
    "E226": "--valid-split is not a fraction between 0 and 1",
    "E228": "options that cannot be combined (--preset with --pretrained, --units or --teacher-forcing "
            "that the preset or tokenizer does not take)",
    # E2xx arguments -- tasks and commands
    "E230": "unknown task",
    "E231": "malmoi.train() got an unknown or missing option",
    "E232": "--errors is below 0",
    "E233": "nothing to predict: no texts and no --file",
    # E2xx arguments -- tagging
    "E234": "unknown tagging file format",
    "E235": "text to tag is empty, or longer than the tagger takes",
    "E236": "scoring a text generator needs its input and reference columns (--source, --target)",
    # E2xx arguments -- question answering
    "E237": "--doc-stride is negative or leaves a window no new context",
    "E238": "--max-answer-length is below 1",
    "E239": "--max-question-length is below 1 or leaves no room for the context",
    # E2xx arguments -- data download and bundled samples
    "E240": "unknown corpus",
    "E241": "the download folder cannot be created or written",
    "E242": "unknown bundled sample",
    "E243": "the download base is not an http://, https:// or file:// URL",
    # E2xx arguments -- masked-LM pretraining
    "E250": "MLM pretraining needs a BERT preset",
    "E251": "max_valid is below 1 (MLM pretraining)",
    "E252": "mlm_probability is outside (0, 1)",
    # E2xx arguments -- n-gram featurizer
    "E260": "invalid n-gram featurizer settings",
    "E261": "unsupported return_tensors",
    # E2xx arguments -- generation and language models
    "E270": "a generation setting is out of range (max_new_tokens, beams, top_k, top_p, temperature, "
            "repetition_penalty)",
    "E271": "the prompt given to generate is malformed (wrong shape, empty, several while streaming)",
    "E272": "a language model needs a GPT preset",
    "E273": "a language-model option is out of range (max_valid, sample_tokens)",
    "E274": "generation options that cannot be combined (--greedy or --beams with sampling options, "
            "--stream with --json)",
    "E275": "sampling options or --stream on a run that generates only greedily or with beams",
    # E2xx arguments -- attention maps
    "E280": "--layer names no decoder layer of this model",
    # E2xx arguments -- compressing a run
    "E290": "--bits is not one of 32, 16, 8 and 4",
    "E291": "--target-size cannot be read, or is below the smallest size the model can reach",
    "E292": "compress was given neither --target-size nor --bits, and cannot choose by validation accuracy "
            "(an encoder run, or no training data to split)",
    "E293": "the run holds a model that compress cannot make smaller",
    # E3xx run directories
    "E301": "--out already holds a run",
    "E302": "nothing to resume: the run has no checkpoints/last",
    "E303": "not a malmoi run directory (no malmoi.json)",
    "E304": "the run's malmoi.json cannot be read",
    "E305": "--out holds a run of another task, architecture or label set",
    "E306": "resuming with a different batch size, gradient accumulation, process count or data size",
    "E307": "--out exists and is not a demo run",
    "E308": "--resume on a finished run that kept no checkpoints",
    "E310": "a checkpoint is missing its weights or cannot be read",
    # E4xx models and inference -- loading models, tokenizers and vocabularies
    "E401": "not a loadable Hugging Face model folder",
    "E402": "a classifier needs at least two labels",
    "E403": "not a saved classifier (no classifier head)",
    "E404": "texts must be a list of strings",
    "E405": "the run holds a model that is not a classifier",
    "E406": "the classifier run has no trained model yet",
    "E407": "the run's label list and the model's number of labels disagree",
    "E408": "the tokenizer has more tokens than the pretrained model embeds",
    "E409": "this command does not work on this kind of run (the message names the kinds it works on)",
    "E410": "tokenizer folder not found",
    "E411": "the folder holds no tokenizer that can be loaded",
    "E412": "the vocabulary is missing or invalid",
    "E413": "the run holds a model kind this version cannot load",
    # E4xx models and inference -- sequence to sequence
    "E420": "invalid LSTM seq2seq config",
    "E421": "empty input: no tokens to answer",
    "E422": "LSTMSeq2Seq.forward was given neither labels nor decoder_input_ids",
    "E423": "the input is longer than the model takes",
    "E424": "beams is below 1 (LSTM generate)",
    "E425": "not a saved LSTM seq2seq model",
    "E426": "the run holds a model of another architecture",
    "E427": "the run has no trained model yet",
    "E428": "inputs must be strings",
    "E429": "the model has no attention weights to show",
    "E430": "the run holds a model that does not generate text",
    "E431": "a seq2seq tokenizer needs pad, bos and eos tokens",
    # E4xx models and inference -- masked LM
    "E440": "the tokenizer lacks a token MLM pretraining needs ([CLS], [SEP], [MASK])",
    "E441": "the text holds no mask token",
    "E442": "the vocabulary has no ordinary tokens for MLM to draw replacements from",
    # E4xx models and inference -- n-gram models
    "E450": "not a saved n-gram featurizer, or it cannot be read",
    "E451": "invalid n-gram classifier settings",
    "E452": "n-gram input_ids are not shaped (batch, n-grams)",
    "E453": "not a saved n-gram classifier, or it cannot be read",
    # E4xx models and inference -- training
    "E460": "the model returned no loss for a training batch (no labels)",
    "E461": "the training loss became NaN or infinite",
    "E462": "the tokenizer has no mask token (MLM collator)",
    # E4xx models and inference -- language models
    "E470": "prompt plus max_new_tokens exceeds the model's positions",
    "E471": "the tokenizer lacks the bos/eos token a language model needs",
    "E472": "no lines to score with a language model or to train a character n-gram model on",
    "E473": "a line to score or to train a character n-gram model on holds a line break or NUL",
    # E48x inspecting
    "E480": "the sentence to inspect is empty or blank",
    "E481": "no word to look up, or a word that is blank or has no tokens",
    "E482": "Kiwi's CoNg model is not available in the installed kiwipiepy-model",
    "E483": "the run has no token vectors or hidden states to compare (an n-gram or retrieval run)",
    "E484": "the embedding map's --out is neither .png nor .html",
    "E485": "the run holds a kind of model the inspector cannot read",
    # E4xx models and inference -- tagging
    "E486": "the run holds no tagger",
    # E4xx models and inference -- question answering
    "E490": "the run holds no question-answering model (no span head)",
    "E491": "question answering needs a fast tokenizer (character offsets)",
    "E492": "no question or no context to answer from, or a blank one",
    "E493": "questions and contexts differ in number",
    # E5xx network (README documents E501-E503)
    "E501": "a download failed: offline, unreachable, or the connection closed early",
    "E502": "the server answered an HTTP error",
    "E503": "a downloaded file failed its checksum and was removed",
    # E6xx serving (malmoi serve; each has an HTTP status in serve/statuses.py)
    "E601": "two served models have one name",
    "E602": "a served model is not NAME=RUN or RUN",
    "E603": "the server would listen beyond this machine without an API key",
    "E604": "no served model has that name",
    "E605": "the model does not do what the route asks (classify a GPT run, sample with an LSTM …)",
    "E606": "the request body is too large",
    "E607": "the model's queue is full",
    "E608": "the request took longer than the server's timeout",
    "E609": "the API key is missing or wrong",
    "E610": "a request field is missing, malformed or out of its limits",
    "E611": "the server is still loading its models",
}
"""Every error code → its one meaning."""

HINTS: dict[str, str] = {
    "E101": "check the path; --data takes a file, not a folder",
    "E102": "check the file and the column given with --text",
    "E103": "re-save the file as UTF-8 (the message names the line; CP949 from Excel is a common cause)",
    "E104": "the message lists the file's columns; name one of them",
    "E105": "fill or drop the rows with empty labels; evaluate only on labels the model was trained with",
    "E106": "quote fields that hold the separator or quotes",
    "E107": "write one JSON object per line",
    "E110": "a classifier needs at least two classes",
    "E111": "add rows, or pass --valid FILE",
    "E131": "KorQuAD 1.0 and SQuAD v1.1 files have this shape; KorQuAD 2.0 (HTML contexts) does not",
    "E133": "the message names the question id; answer_start counts characters of the context from 0",
    "E112": "add lines",
    "E203": "write it like 90s, 10m, 1.5h or 1h30m",
    "E222": "the message gives the allowed range or the model's positions",
    "E228": "leave out one of the two",
    "E241": "pass a folder you can write to --to",
    "E291": "write a size like 10MB (10^6 bytes) or 800KB; the message names the smallest size reachable",
    "E292": "pass --target-size or --bits, or --data with the run's training file",
    "E293": "compress makes classifier runs (n-gram or encoder) and encoder tagger or reader runs smaller",
    "E301": "pass --resume to continue it, or choose another --out",
    "E302": "leave out --resume to start a new run",
    "E305": "use a new --out",
    "E306": "resume with the settings and data the run was trained with, or start a new --out",
    "E307": "choose another --out",
    "E308": "train into a new --out; pass --keep-checkpoints to continue a finished run later",
    "E406": "training did not finish; continue it with --resume",
    "E423": "shorten the input, or train with a larger --max-source-length",
    "E427": "training did not finish; continue it with --resume",
    "E429": "train with --preset lstm-bahdanau or lstm-luong, or a transformer preset",
    "E461": "lower --lr or check the data",
    "E501": "check the network connection, or set MALMOI_DOWNLOAD_BASE (or --base) to a mirror",
    "E502": "check the URL or the mirror given with --base",
    "E503": "download again; the file may have changed upstream or the transfer was corrupted",
    "E601": "name them apart: malmoi serve chat=runs/a/model reviews=runs/b/model",
    "E603": "set --api-key (or MALMOI_API_KEY), or pass --insecure to serve without one",
    "E607": "retry after the seconds in the Retry-After header, or start the server with a larger --queue-size",
    "E609": "send the header Authorization: Bearer KEY",
}
"""What to do, for the codes where the message alone may not say it."""


def errors_markdown() -> str:
    """``docs/errors.md``: every code with its meaning and, where useful, what to do, grouped by range."""
    lines = ["# Error codes", "",
             "Every user-facing error is one line `error: message [CODE]`; the CLI then exits with status 2.",
             "This list is generated from the table in `malmoi/errors.py` by `errors_markdown()`.", ""]
    for prefix, title in GROUPS.items():
        lines += [f"## {prefix}xx {title.lower()}", "", "| Code | Meaning | What to do |", "|---|---|---|"]
        for code, meaning in ERRORS.items():
            if code.startswith(prefix):
                lines.append(f"| {code} | {meaning} | {HINTS.get(code, '')} |")
        lines.append("")
    return "\n".join(lines)


class MalmoiError(Exception):
    """A user-facing error: a stable code (``E1xx`` input data, ``E2xx`` arguments,
    ``E3xx`` run directories, ``E4xx`` models/inference, ``E5xx`` network) and one line of text."""

    def __init__(self, code: str, message: str):
        if code not in ERRORS:  # a programming error: every code is listed, with its meaning, in ERRORS
            raise ValueError(f"unknown error code {code!r}: add it to malmoi.errors.ERRORS")
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"
