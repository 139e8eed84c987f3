"""The ``supsup`` command line: click commands that parse options and call the libraries."""
__all__: list[str] = []
