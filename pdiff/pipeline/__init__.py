"""What runs: the stage contract and table, one module per stage, fingerprints and the plan, the
runner, the shared store, stage status, time estimates, the report, and the loaders that open a
run's artifacts as objects. The only wing that reads and writes run folders' artifacts."""
