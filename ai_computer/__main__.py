"""``python -m ai_computer``: the same as the ``ai-computer`` command."""

from ai_computer.cli import main

raise SystemExit(main())
