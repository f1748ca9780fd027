"""``python -m videomemory``: the same CLI as the ``videomemory`` command."""

from videomemory.cli import main

main()
