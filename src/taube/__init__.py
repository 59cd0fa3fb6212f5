"""Taube: a self-hostable messenger that keeps working and tells the truth."""

__version__ = "0.1.0"
