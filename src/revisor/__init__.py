"""Revisor: read and change files in git repositories without managing clones."""

__version__ = "0.1.0"
