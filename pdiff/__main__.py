"""`python -m pdiff`: choose how CPU threads wait before torch loads, then run the command line.

libgomp reads its wait policy once, when torch first loads it, so the choice (core/threads.py)
has to come before the import of anything that imports torch: hence the late import below.
"""
from .core.threads import configure_threads

try:
    configure_threads(chosen_by="the command line")
except ValueError:  # a bad PDIFF_THREADS / OMP_NUM_THREADS: the command line reports it in one line
    pass

from .cli import main

raise SystemExit(main())
