"""The kflow language server (`kflow lsp`): see :mod:`kailash_dsl.lsp.server`."""


def main() -> None:
    from .server import main as _main

    _main()
