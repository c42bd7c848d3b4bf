"""The `pairpilot` command line.

numpy asks Linux for transparent huge pages for every array of 4 MB or more. On the project's
machine (a 2-core Firecracker VM) faulting those in cost twice the system time of small pages:
the 10-pair year-long portfolio backtest spent 1.4-1.8 s in the kernel with them, 0.7-0.8 s
without (bench/RESULTS.md, 2026-11-26 session 22). numpy reads this variable once, when it is
first imported, which the commands do after this package; one set in the environment wins.
"""

import os

os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
