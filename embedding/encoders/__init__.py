"""Backends that turn padded token batches into sentence vectors."""
