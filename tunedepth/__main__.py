"""``python -m tunedepth``: the ``tunedepth`` command."""
from tunedepth.cli.main import main

raise SystemExit(main())
