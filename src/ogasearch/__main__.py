"""``python -m ogasearch`` = the ``ogasearch`` command."""

from ogasearch.cli import main

main()
