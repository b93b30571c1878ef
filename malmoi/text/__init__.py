"""Text → numbers: words and morphemes, vocabularies, subword tokenizers."""
