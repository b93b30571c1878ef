"""malmoi.generation against Hugging Face: logits, greedy and sampled tokens, eos, streaming."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

from malmoi.models.gpt2_decoder import GPT2Decoder
from malmoi.errors import MalmoiError
from malmoi.models.generation import (GenerationSettings, continuation, decode, encode_prompt, generate,
                                     generate_text, stream_text)

hf_logging.set_verbosity_error()
VOCAB = 96
EOS = 2
PAD = 0


def tiny_gpt2(vocab: int = VOCAB, seed: int = 0, **overrides) -> GPT2LMHeadModel:
    # A larger init than GPT-2's 0.02 keeps the top logits apart, so float rounding differences
    # between two correct implementations cannot flip an argmax.
    config = GPT2Config(
        n_layer=2, n_embd=32, n_head=4, vocab_size=vocab, n_positions=64, initializer_range=0.2,
        bos_token_id=1, eos_token_id=EOS, pad_token_id=PAD, **overrides,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config).eval()


def hf(model, ids, mask=None, **kwargs):
    mask = torch.ones_like(ids) if mask is None else mask
    with torch.inference_mode():
        return model.generate(ids, attention_mask=mask, pad_token_id=PAD, **kwargs)


def prompts(batch: int, length: int = 7, seed: int = 1):
    """Left-padded prompts: row i has i % 4 padding tokens."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    for i in range(batch):
        mask[i, : i % 4] = 0
    return ids.masked_fill(mask == 0, PAD), mask


@pytest.fixture(scope="module")
def model():
    return tiny_gpt2()


def test_logits_equal_hf_forward_through_prefill_and_steps(model):
    ids, mask = prompts(3)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    decoder = GPT2Decoder(model)
    with torch.inference_mode():
        cache = decoder.new_cache(mask, 3, 12)
        ours = [decoder.prefill(ids, positions, cache)]
        full_ids, full_mask = ids, mask
        for t in range(7, 11):
            token = ours[-1].argmax(-1)
            full_ids = torch.cat([full_ids, token[:, None]], 1)
            full_mask = torch.cat([full_mask, torch.ones(3, 1, dtype=torch.long)], 1)
            ours.append(decoder.step(token, positions[:, -1] + t - 6, cache, t))
        full_pos = (full_mask.cumsum(-1) - 1).clamp(min=0)
        theirs = model(full_ids, attention_mask=full_mask, position_ids=full_pos).logits[:, 6:]
    torch.testing.assert_close(torch.stack(ours, 1), theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("batch", [1, 5])
def test_step_logits_are_hf_generates_bit_for_bit(model, batch):
    from malmoi.models.generation import _DecodeLoop

    ids, mask = prompts(batch)
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False, eos_token_id=None,
                             pad_token_id=PAD, output_logits=True, return_dict_in_generate=True)
    loop = _DecodeLoop(GPT2Decoder(model), model, ids, mask, GenerationSettings(max_new_tokens=8, eos_token_id=[]))
    ours = []
    with torch.inference_mode():
        while loop.advance() is not None:
            ours.append(loop.logits.clone())
    assert torch.equal(torch.stack(ours, 1), torch.stack(out.logits, 1))  # the same kernels on the same shapes


def test_greedy_equals_hf_generate_at_batch_1(model):
    ids, _ = prompts(1)
    expected = hf(model, ids, max_new_tokens=25, do_sample=False, eos_token_id=None)
    assert torch.equal(generate(model, ids, max_new_tokens=25, eos_token_id=[]), expected)


def test_greedy_equals_hf_generate_on_a_left_padded_batch_with_eos(model):
    ids, mask = prompts(8)
    free = hf(model, ids, mask, max_new_tokens=30, do_sample=False, eos_token_id=None)
    eos = int(free[0, 7 + 5])  # a token row 0 produces early: rows then stop at different steps
    expected = hf(model, ids, mask, max_new_tokens=30, do_sample=False, eos_token_id=eos)
    ours = generate(model, ids, attention_mask=mask, max_new_tokens=30, eos_token_id=eos, pad_token_id=PAD)
    assert torch.equal(ours, expected)
    assert (ours[0, 7 + 6 :] == PAD).all()  # row 0 ended at its eos and was padded after


@pytest.mark.parametrize(
    "options",
    [
        dict(top_k=0, top_p=1.0, temperature=1.0),
        dict(top_k=5, top_p=1.0, temperature=1.0),
        dict(top_k=0, top_p=0.8, temperature=0.7),
        dict(top_k=20, top_p=0.9, temperature=1.3, repetition_penalty=1.3),
    ],
)
def test_sampling_draws_what_hf_draws_from_the_same_seed(model, options):
    ids, mask = prompts(4)
    torch.manual_seed(123)
    expected = hf(model, ids, mask, max_new_tokens=25, do_sample=True, eos_token_id=None, **options)
    ours = generate(model, ids, attention_mask=mask, max_new_tokens=25, greedy=False, seed=123, eos_token_id=[], **options)
    assert torch.equal(ours, expected)


def test_same_seed_same_tokens_and_other_seed_other_tokens(model):
    ids, _ = prompts(1)
    run = lambda seed: generate(model, ids, max_new_tokens=30, greedy=False, top_k=50, seed=seed, eos_token_id=[])
    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))


def test_top_k_1_sampling_is_greedy(model):
    ids, mask = prompts(4)
    greedy = generate(model, ids, attention_mask=mask, max_new_tokens=20, eos_token_id=[])
    sampled = generate(model, ids, attention_mask=mask, max_new_tokens=20, greedy=False, top_k=1, seed=3, eos_token_id=[])
    assert torch.equal(sampled, greedy)


@pytest.mark.parametrize("penalty", [1.5, 0.7])
def test_repetition_penalty_matches_hf_in_greedy_mode(model, penalty):
    ids, mask = prompts(4)
    expected = hf(model, ids, mask, max_new_tokens=20, do_sample=False, eos_token_id=None, repetition_penalty=penalty)
    ours = generate(model, ids, attention_mask=mask, max_new_tokens=20, repetition_penalty=penalty, eos_token_id=[])
    assert torch.equal(ours, expected)
    assert not torch.equal(ours, generate(model, ids, attention_mask=mask, max_new_tokens=20, eos_token_id=[]))


@pytest.mark.parametrize("n", [0, 1, 17])
def test_max_new_tokens_is_respected(model, n):
    ids, mask = prompts(2)
    out = generate(model, ids, attention_mask=mask, max_new_tokens=n, eos_token_id=[])
    assert out.shape == (2, 7 + n)
    assert torch.equal(out[:, :7], ids)


def test_eos_stops_a_single_sequence(model):
    ids, _ = prompts(1)
    free = generate(model, ids, max_new_tokens=30, eos_token_id=[])
    eos = int(free[0, 7 + 9])
    first = (free[0, 7:] == eos).nonzero()[0, 0].item()
    out = generate(model, ids, max_new_tokens=30, eos_token_id=eos)
    assert out.shape[1] == 7 + first + 1 and out[0, -1] == eos


def test_the_model_generation_config_gives_the_default_eos(model):
    ids, _ = prompts(1)
    free = generate(model, ids, max_new_tokens=10, eos_token_id=[])[0, 7:]
    model.generation_config.eos_token_id = int(free[3])
    try:
        assert generate(model, ids, max_new_tokens=10).shape[1] == 7 + (free == free[3]).nonzero()[0, 0] + 1
    finally:
        model.generation_config.eos_token_id = EOS


def test_streamed_tokens_equal_the_returned_sequences(model):
    ids, mask = prompts(3)
    settings = GenerationSettings(max_new_tokens=20, greedy=False, top_p=0.9, seed=5, eos_token_id=[])
    steps = list(generate(model, ids, settings, attention_mask=mask, stream=True))
    assert torch.equal(torch.cat([ids, torch.stack(steps, 1)], 1), generate(model, ids, settings, attention_mask=mask))


def test_streaming_leaves_grad_mode_alone(model):
    ids, _ = prompts(1)
    stream = generate(model, ids, max_new_tokens=3, stream=True)
    next(stream)
    assert not torch.is_inference_mode_enabled()
    list(stream)


@pytest.mark.parametrize(
    "options",
    [dict(beams=3), dict(beams=2, repetition_penalty=1.2)],
)
def test_beam_search_is_hf_beam_search(model, options):
    ids, _ = prompts(1)
    settings = GenerationSettings(max_new_tokens=12, eos_token_id=[], **options)
    expected = hf(model, ids, **settings.hf_kwargs())
    assert settings.hf_kwargs()["eos_token_id"] is None
    assert torch.equal(generate(model, ids, settings), expected)


def test_other_model_types_fall_back_to_hf_generate():
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.2, eos_token_id=EOS, pad_token_id=PAD,
    )
    torch.manual_seed(0)
    llama = LlamaForCausalLM(config).eval()
    ids, _ = prompts(1)
    torch.manual_seed(4)
    expected = hf(llama, ids, max_new_tokens=15, do_sample=True, top_k=10, top_p=1.0, temperature=1.0, eos_token_id=None)
    settings = GenerationSettings(max_new_tokens=15, greedy=False, top_k=10, seed=4, eos_token_id=[])
    assert torch.equal(generate(llama, ids, settings), expected)
    steps = list(generate(llama, ids, settings, stream=True))
    assert torch.equal(torch.cat([ids[0], torch.cat(steps)]), expected[0])


def test_encoder_decoder_models_fall_back_to_hf_and_stream_the_decoder_tokens():
    from transformers import BartConfig, BartForConditionalGeneration

    config = BartConfig(
        vocab_size=VOCAB, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        init_std=0.2, pad_token_id=PAD, bos_token_id=1, eos_token_id=EOS, decoder_start_token_id=EOS,
    )
    torch.manual_seed(0)
    bart = BartForConditionalGeneration(config).eval()
    ids, _ = prompts(1)
    settings = GenerationSettings(max_new_tokens=12, greedy=False, top_k=10, seed=3, eos_token_id=[])
    torch.manual_seed(3)
    expected = hf(bart, ids, max_new_tokens=12, do_sample=True, top_k=10, top_p=1.0, temperature=1.0, eos_token_id=None)
    assert torch.equal(generate(bart, ids, settings), expected)
    steps = list(generate(bart, ids, settings, stream=True))
    assert torch.equal(torch.cat(steps), expected[0, 1:])  # after the decoder start token


@pytest.mark.parametrize(
    "fields, code",
    [
        (dict(max_new_tokens=-1), "E270"),
        (dict(top_p=0.0), "E270"),
        (dict(temperature=0.0), "E270"),
        (dict(top_k=-2), "E270"),
        (dict(beams=0), "E270"),
        (dict(repetition_penalty=0.0), "E270"),
        (dict(max_new_tokens=60), "E470"),  # 7 + 60 > 64 positions
    ],
)
def test_bad_settings_raise_one_clear_error(model, fields, code):
    ids, _ = prompts(1)
    with pytest.raises(MalmoiError) as e:
        generate(model, ids, **fields)
    assert e.value.code == code


# ---- text and streaming ---------------------------------------------------------------


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE with few merges: most Hangul syllables (3 UTF-8 bytes) span several tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=280, special_tokens=["<pad>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(["이 영화는 정말 재밌다", "나는 너를 좋아해", "오늘 날씨가 좋다"] * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>")


@pytest.fixture(scope="module")
def tokenizer():
    return byte_level_tokenizer()


@pytest.mark.parametrize("text", ["안녕하세요", "말모이 사전, 1957년!", "한국어 NLP 😀 끝"])
def test_stream_text_never_emits_half_a_syllable(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text)  # the bytes of some characters are in different tokens
    pieces = list(stream_text(tokenizer, [], iter(ids)))
    assert "".join(pieces) == text
    assert all(pieces) and not any("\ufffd" in p for p in pieces)
    assert len(pieces) > 1


def test_stream_text_continues_the_prompt_with_its_spacing(tokenizer):
    prompt = tokenizer("나는 너를", add_special_tokens=False)["input_ids"]
    new = tokenizer(" 좋아해", add_special_tokens=False)["input_ids"]
    assert "".join(stream_text(tokenizer, prompt, iter(new))) == " 좋아해"


@pytest.mark.parametrize(
    "settings",
    [
        GenerationSettings(max_new_tokens=40),
        GenerationSettings(max_new_tokens=40, greedy=False, top_k=50, top_p=0.95, seed=11),
        GenerationSettings(max_new_tokens=40, greedy=False, temperature=1.5, repetition_penalty=1.2, seed=2),
        GenerationSettings(max_new_tokens=20, beams=2),
    ],
)
def test_streaming_text_equals_non_streaming_text(tokenizer, settings):
    model = tiny_gpt2(vocab=len(tokenizer), seed=3)
    whole = generate_text(model, tokenizer, "이 영화는", settings)
    pieces = list(generate_text(model, tokenizer, "이 영화는", settings, stream=True))
    assert "".join(pieces) == whole
    prompt = encode_prompt(tokenizer, "이 영화는")
    new = generate(model, torch.tensor([prompt]), replace(settings, eos_token_id=tokenizer.eos_token_id,
                                                          pad_token_id=tokenizer.pad_token_id))
    assert whole == continuation(tokenizer, prompt, new[0, len(prompt):].tolist()) != ""
    assert len(pieces) > 1 or settings.beams > 1  # streamed token by token; HF beam search streams at its end
    assert not any(p.endswith("\ufffd") for p in pieces[:-1])


def test_generate_text_is_the_decoded_continuation(tokenizer):
    model = tiny_gpt2(vocab=len(tokenizer), seed=3)
    settings = GenerationSettings(max_new_tokens=15, greedy=False, seed=9, eos_token_id=[])
    prompt_ids = [tokenizer.bos_token_id] + tokenizer("나는", add_special_tokens=False)["input_ids"]
    sequences = generate(model, torch.tensor([prompt_ids]), settings)
    full = decode(tokenizer, sequences[0].tolist())
    assert full == decode(tokenizer, prompt_ids) + generate_text(model, tokenizer, "나는", settings)
