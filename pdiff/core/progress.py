"""Command-line progress: one tqdm bar per stage, fed by the pipeline's progress callback."""
from __future__ import annotations

from tqdm.auto import tqdm


class TqdmReporter:
    """Callable `(stage, done, total, info)` that keeps one bar per stage."""

    def __init__(self, disable: bool = False) -> None:
        self.disable = disable
        self.bar: tqdm | None = None
        self.stage: str | None = None

    def __call__(self, stage: str, done: int, total: int, info: dict) -> None:
        if stage != self.stage or self.bar is None or self.bar.total != total:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=f"{stage:12s}", disable=self.disable, leave=True, dynamic_ncols=True,
                            mininterval=0.5)
        postfix = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in info.items()}
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(done - self.bar.n)  # redraws at most every `mininterval` seconds

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> TqdmReporter:  # noqa: PYI034 (typing.Self needs 3.11; we target 3.10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
