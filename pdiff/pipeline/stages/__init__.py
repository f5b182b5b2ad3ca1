"""One module per stage: each `run(ctx)` reads its inputs through the context, writes its outputs and returns its key metrics."""
