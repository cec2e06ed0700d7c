"""One module per ``tunedepth`` subcommand; each exposes ``register(subparsers)`` that sets ``func``."""
