"""Request bodies, built from a server's limits so that the OpenAPI schema states them and a
request past one is refused with 422 naming the field (``ServeSettings``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_BEAMS = 8
MAX_SEED = 2**32 - 1


@dataclass
class Schemas:
    Classify: type[BaseModel]
    Tokenize: type[BaseModel]
    Generate: type[BaseModel]
    Completions: type[BaseModel]
    Inspect: type[BaseModel]
    Tag: type[BaseModel]
    Answer: type[BaseModel]


def build_schemas(settings) -> Schemas:
    Text = Annotated[str, StringConstraints(min_length=1, max_length=settings.max_chars)]
    Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]
    NewTokens = Annotated[int, Field(ge=1, le=settings.max_new_tokens)]
    strict = ConfigDict(extra="forbid")

    class ClassifyRequest(BaseModel):
        """Texts to label with a classifier run."""

        model_config = strict
        model: Name
        texts: Annotated[list[Text], Field(min_length=1, max_length=settings.max_texts)]

    class TagRequest(BaseModel):
        """Texts whose entities a tagger run finds."""

        model_config = strict
        model: Name
        texts: Annotated[list[Text], Field(min_length=1, max_length=settings.max_texts)]

    class AnswerRequest(BaseModel):
        """Questions a question-answering run answers from one context (a span of it each)."""

        model_config = strict
        model: Name
        context: Text
        questions: Annotated[list[Text], Field(min_length=1, max_length=settings.max_texts)]

    class TokenizeRequest(BaseModel):
        """A text to cut into the model's tokens (or n-grams)."""

        model_config = strict
        model: Name
        text: Text

    class Sampling(BaseModel):
        greedy: bool | None = None
        beams: Annotated[int, Field(ge=1, le=MAX_BEAMS)] | None = None  # None: the run's default decoding
        top_k: Annotated[int, Field(ge=0, le=100_000)] | None = None
        top_p: Annotated[float, Field(gt=0, le=1)] | None = None
        temperature: Annotated[float, Field(gt=0, le=100)] | None = None
        repetition_penalty: Annotated[float, Field(gt=0, le=100)] = 1.0
        seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | None = None

    class GenerateRequest(Sampling):
        """A prompt for a text generator run: a GPT continues it, a seq2seq run answers it."""

        model_config = strict
        model: Name
        prompt: Text
        max_new_tokens: NewTokens | None = None
        stream: bool = False

    class CompletionsRequest(BaseModel):
        """OpenAI's completions request, for GPT runs (fields it does not know are ignored)."""

        model_config = ConfigDict(extra="ignore")
        model: Name
        prompt: Text | Annotated[list[Text], Field(min_length=1, max_length=settings.max_texts)]
        max_tokens: NewTokens = min(16, settings.max_new_tokens)
        temperature: Annotated[float, Field(ge=0, le=2)] = 1.0
        top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
        n: Annotated[int, Field(ge=1, le=1)] = 1
        stream: bool = False
        seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | None = None

    class InspectRequest(BaseModel):
        """A sentence to follow through every stage of a run (``malmoi inspect``)."""

        model_config = strict
        model: Name
        text: Text
        pair: Text | None = None
        top_k: Annotated[int, Field(ge=1, le=20)] = 5
        max_tokens: Annotated[int, Field(ge=2, le=256)] = 64
        steps: Annotated[int, Field(ge=1, le=32)] = 8
        format: Literal["json", "html"] = "json"

    return Schemas(ClassifyRequest, TokenizeRequest, GenerateRequest, CompletionsRequest, InspectRequest,
                   TagRequest, AnswerRequest)


def sampling_options(request: Any) -> dict:
    """The ``malmoi generate`` options a request set (None and defaults left out)."""
    options = {k: getattr(request, k) for k in ("greedy", "top_k", "top_p", "temperature", "seed")
               if getattr(request, k) is not None}
    if request.repetition_penalty != 1.0:
        options["repetition_penalty"] = request.repetition_penalty
    return options
