"""gistlab's benchmarks: one module per measurement, one harness (benchmarks.harness), one entry point.

    python -m benchmarks --help            # the list
    python -m benchmarks NAME --help       # what NAME measures and its options
    python -m benchmarks NAME [options]    # run it (from the repository root); prints Markdown tables

Each module has ``arguments(parser)`` and ``run(args)``; ``THREADED = True`` gives it ``--threads``.
The published tables in docs/PERFORMANCE.md say which command produced them.
"""

NAMES = ("app", "audit", "audit_page", "audit_scale", "bundled_tasks", "cache_checks", "distributed", "eval", "inspector", "loss", "memory",
         "paired_job", "recipes", "slider", "train_recording", "whatif")
