"""``python -m retinalnet``: the command-line interface."""

from retinalnet.cli import main

raise SystemExit(main())
