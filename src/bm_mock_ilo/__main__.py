"""``python -m bm_mock_ilo`` is ``bm-mock-ilo``."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
