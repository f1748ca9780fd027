"""The ``videomemory`` command line: a thin shell over the library calls."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.command()
def version() -> None:
    """Print the installed version."""
    from videomemory import __version__

    typer.echo(__version__)
