"""`pdiff.verdict`, the name the verdict had before the wings: the module is `pdiff.judge.verdict`.

Importing this name hands back that very module (one object, so `pdiff.verdict.COPIES_BELOW is
pdiff.judge.verdict.COPIES_BELOW` and a monkeypatch on either is seen by both). Like it, it is pure:
importing it changes no environment variable, thread setting or other global state.
"""

import sys

from pdiff.judge import verdict

sys.modules[__name__] = verdict
