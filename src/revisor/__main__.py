"""``python -m revisor`` runs the command-line interface."""

from revisor.cli.main import main

main()
