"""``python -m qa.training``: the same as ``newsqa train-reader``."""
from qa.training.command import main

raise SystemExit(main())
