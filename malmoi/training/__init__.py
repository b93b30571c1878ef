"""The one training loop and what it is made of: ``args`` (``TrainArgs``), ``loop`` (``fit``),
``checkpoints``, ``optim`` (AdamW, LazyAdamW, the schedule), ``rng``, ``progress``, ``metrics``
and ``plots``. This package imports nothing heavy itself: ``from malmoi.training.loop import fit``."""
