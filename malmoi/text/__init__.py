"""Text → numbers: words and morphemes, vocabularies, subword tokenizers.

Imports are lazy (``from malmoi.text.subword import train_tokenizer``) so that ``import
malmoi.text`` does not load transformers or Kiwi.
"""
