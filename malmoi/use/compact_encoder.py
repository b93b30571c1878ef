"""Compressing an encoder classifier run: its weights stored at 16, 8 or 4 bits per value, each
matrix row with its own scale (``models/quantize.py``); the head stays float32."""
from __future__ import annotations

import copy

from malmoi.errors import MalmoiError
from malmoi.sizes import format_size


def encoder_bytes(encoder, bits: int) -> int:
    """The size of ``encoder``'s weights stored at ``bits``."""
    from malmoi.models.quantize import bytes_per_row

    total = 0
    for value in encoder.state_dict().values():
        if value.dim() == 2 and value.is_floating_point():
            total += int(len(value) * bytes_per_row(bits, value.shape[1]))
        else:
            total += value.numel() * value.element_size()
    return total


def compress_encoder(classifier, target: int | None, bits: int | None, before: int):
    """A copy of the classifier's model stored at ``bits``, or at the most bits whose size fits ``target``."""
    from malmoi.models.classifier import set_storage_bits

    model = copy.deepcopy(classifier.model)
    other = before - encoder_bytes(model.encoder, 32)  # config, head: what quantizing leaves alone
    if target is not None:
        stored = getattr(model.encoder, "storage_bits", 32)
        choices = [bits] if bits is not None else [b for b in (32, 16, 8, 4) if b <= stored]
        fitting = [b for b in choices if encoder_bytes(model.encoder, b) + other <= target]
        if not fitting:
            smallest = encoder_bytes(model.encoder, min(choices)) + other
            raise MalmoiError("E291", f"--target-size {format_size(target)} is out of reach: the smallest this "
                                      f"model can be stored in is {format_size(smallest)} ({min(choices)} bits)")
        bits = fitting[0]
    set_storage_bits(model.encoder, bits)
    return model.eval(), bits
