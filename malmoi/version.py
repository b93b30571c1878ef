"""The version every run directory records (malmoi.json's ``malmoi_version``)."""

__version__ = "0.1.0"
