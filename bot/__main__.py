"""``python -m bot`` is the same as the ``bot`` console command."""

from bot.cli.main import main

raise SystemExit(main())
