"""Primitives every P2 service shares: errors, health, metrics, logging, processes."""
