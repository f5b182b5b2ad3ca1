"""New or memorized? A plain-language answer computed from a run's metrics table.

`verdict(rows)` reads only the scorecard (`report.metrics_table(run).rows`, one row per group) and
weighs four kinds of evidence about the generated models:

- accuracy: are they as good as the training checkpoints (median with its bootstrap interval)?
- similarity: do they make the same mistakes as some training checkpoint? The yardstick is how
  alike the zoo's own members are: held-out checkpoints of the same SGD run when the run has
  them, else each zoo checkpoint against the *other* ones. Parameter distance is reported beside
  it, with why it can disagree (the zoo is one SGD run, its checkpoints a small step apart).
- diversity: how alike the generated models are to each other, how many different prediction
  vectors they make, and whether they pile up near a few training checkpoints.
- fidelity: the generator's output distribution against the training latents (spread, Fréchet
  distance, precision/recall), when the analysis measured it; otherwise it says so.

It also names cheap baselines that match the generator (as accurate and at least as novel) and
says when the evidence is weak (few test errors, similarity already at its ceiling inside the
zoo, few models). Pure: no files, no torch; the app, the CLI and notebooks call it alike.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Row = Mapping[str, Any]

FEW_ERRORS = 20  # a typical model with fewer wrong test samples makes IoU coarse
IOU_CEILING = 0.99  # the zoo's own median max IoU at or above this: IoU cannot separate its members
FEW_MODELS = 10
PILE_UP_SHARE = 0.5  # at least this share of models nearest to the 3 most frequent checkpoints ...
PILE_UP_FACTOR = 3.0  # ... and this many times the share 3 checkpoints of the zoo would get if covered evenly
ALIKE_MARGIN = 0.05  # within-group IoU this much above the zoo's (beyond its interval) is "less diverse"
GOOD_SHARE = 50.0  # percent of "good" models below which the generator makes worse models
SPECIAL = ("zoo", "heldout", "generated")
NOT_GENERATORS = SPECIAL + ("ae-reconstruction",)  # reconstructs given checkpoints: a diagnostic, not a generator
FIDELITY_KEYS = ("latent_spread_ratio", "latent_fd", "latent_fd_floor", "latent_precision", "latent_recall",
                 "latent_self_recall")


@dataclass(frozen=True)
class Evidence:
    aspect: str  # "accuracy" | "similarity" | "diversity" | "fidelity"
    status: str  # "good" (speaks for new, good models) | "bad" (against) | "unknown"
    text: str


@dataclass(frozen=True)
class Verdict:
    answer: str  # "new" | "memorized" | "collapsed" | "worse" | "unknown"
    headline: str  # one plain sentence
    evidence: tuple[Evidence, ...] = ()
    caveats: tuple[str, ...] = ()  # why the evidence is weak; empty when it is not
    reference: str = "zoo"  # the group whose similarity to the zoo is the yardstick
    cheap_matches: tuple[str, ...] = ()  # baselines as accurate and at least as novel as the generator
    numbers: dict[str, Any] = field(default_factory=dict)  # the values the sentences quote

    @property
    def weak(self) -> bool:
        return bool(self.caveats)


def verdict(rows: Mapping[str, Row], fidelity: Mapping[str, float] | None = None) -> Verdict:
    """The answer for one run's metrics table (`rows`: group -> scorecard row, "zoo" first).

    `fidelity` takes generator-fidelity numbers (keys of FIDELITY_KEYS) when they are not in the
    generated row yet; without any, the fidelity evidence says it was not measured.
    """
    gen, zoo = rows.get("generated"), rows.get("zoo")
    if gen is None or zoo is None:
        return Verdict("unknown", "No answer yet: the run has no generated models to judge.")
    if "max_iou_median" not in gen:
        return Verdict("unknown", "No answer yet: only accuracy is available (the analysis has not run or is "
                                  "stale).", (_accuracy(gen, zoo),))
    ref_name = "heldout" if rows.get("heldout", {}).get("max_iou_median") is not None else "zoo"
    ref = rows[ref_name]
    matches = _cheap_matches(rows, gen)
    yardsticks = [(ref_name, ref)] + [(g, rows[g]) for g in ("ae-reconstruction",) if g in rows]
    similarity, copied = _similarity(gen, zoo, yardsticks)
    diversity, collapsed, piled = _diversity(gen, zoo)
    evidence = (_accuracy(gen, zoo), similarity, diversity, _fidelity(gen, fidelity))
    caveats = _caveats(gen, zoo, ref, ref_name)
    numbers = {"generated_median": gen["median"], "zoo_median": zoo["median"], "good": gen.get("good"),
               "generated_max_iou": gen.get("max_iou_median"), "reference_max_iou": ref.get("max_iou_median"),
               "generated_nn_distance": gen.get("nn_distance_median"), "zoo_nn_distance": zoo.get("nn_distance_median"),
               "distinct_predictions": gen.get("distinct_predictions"), "n": gen["n"]}

    n = gen["n"]
    if collapsed:
        answer = "collapsed"
        headline = (f"Collapsed: all {n} generated models make exactly the same predictions; the generator "
                    f"produces one model however many it samples.")
    elif (gen.get("good") or 0.0) < GOOD_SHARE:
        answer = "worse"
        headline = (f"Not good models: only {gen.get('good', 0.0):.0f}% of the generated models are within 1 point "
                    f"of the zoo's median accuracy ({gen['median']:.2f}% vs {zoo['median']:.2f}%).")
    elif copied:
        answer = "memorized"
        headline = (f"Memorized: the generated models are as accurate as the zoo and make the same mistakes as its "
                    f"checkpoints (median max IoU {_f3(gen['max_iou_median'])}; "
                    f"{_between(copied)} {_f3(rows[copied]['max_iou_median'])}).")
    else:
        answer = "new"
        headline = (f"New: the generated models are as accurate as the zoo but err less like any training checkpoint "
                    f"(median max IoU {_f3(gen['max_iou_median'])}; {_between(ref_name)} "
                    f"{_f3(ref['max_iou_median'])}).")
    if answer in ("memorized", "new"):
        if piled:
            headline += f" Most of them land near a few checkpoints: {_piled_text(gen, zoo)}."
        if matches:
            headline += f" A cheap baseline does as well: {', '.join(matches)}."
    if caveats and answer in ("memorized", "new"):
        headline = f"{headline} The evidence is weak."
    return Verdict(answer, headline, evidence, tuple(caveats), ref_name, tuple(matches), numbers)


# --------------------------------------------------------------------------- the four kinds of evidence


def _accuracy(gen: Row, zoo: Row) -> Evidence:
    good = gen.get("good")
    text = (f"Accuracy: generated median {gen['median']:.2f}%{_ci(gen.get('median_ci'), 2)} against the zoo's "
            f"{zoo['median']:.2f}%{_ci(zoo.get('median_ci'), 2)}")
    text += "." if good is None else f"; {good:.0f}% of the generated models are within 1 point of the zoo's median."
    status = "unknown" if good is None else ("good" if good >= GOOD_SHARE else "bad")
    return Evidence("accuracy", status, text)


def _similarity(gen: Row, zoo: Row, yardsticks: list[tuple[str, Row]]) -> tuple[Evidence, str | None]:
    """(evidence, the yardstick the generated models are as alike to the zoo as, or None).

    Yardsticks: how alike the zoo's own members are (held-out checkpoints, or each checkpoint
    against the others) and how alike the autoencoder's reconstructions of them are. The
    generated models count as copies unless their max IoU is clearly below every yardstick: its
    interval below the yardstick's by more than one step of IoU (1 / (errors + 1), the smallest
    change one test sample makes), so "new" needs evidence that the measure can resolve.
    """
    g_iou = gen.get("max_iou_median")
    yardsticks = [(name, row) for name, row in yardsticks if row.get("max_iou_median") is not None]
    if g_iou is None or not yardsticks:
        return Evidence("similarity", "unknown", "Similarity: undefined (a zoo of one checkpoint has no other "
                                                 "member to compare with)."), None
    errors = gen.get("errors_median")
    step = 1.0 / (errors + 1.0) if errors is not None else 0.0
    g_hi = _interval(gen, "max_iou_median")[1]
    copied = next((name for name, row in yardsticks if g_hi >= _interval(row, "max_iou_median")[0] - step), None)
    text = (f"Similarity: a typical generated model's mistakes overlap those of its closest training checkpoint "
            f"with IoU {_f3(g_iou)}{_ci(gen.get('max_iou_median_ci'), 3)}; "
            + ", ".join(f"{_between(name)} it is {_f3(row['max_iou_median'])}{_ci(row.get('max_iou_median_ci'), 3)}"
                        for name, row in yardsticks))
    text += (", so they behave like copies of training checkpoints." if copied
             else ", so they err differently from every training checkpoint.")
    g_nn, z_nn = gen.get("nn_distance_median"), zoo.get("nn_distance_median")
    if g_nn is not None and z_nn:
        ratio = g_nn / z_nn
        text += (f" In parameter space they sit {g_nn:.3g}{_ci(gen.get('nn_distance_median_ci'), 3, 'g')} from the "
                 f"nearest training checkpoint, {ratio:.1f}x the spacing of neighbouring zoo checkpoints ({z_nn:.3g}).")
        if copied and ratio > 1:
            text += (" The two measures disagree because the zoo is one SGD run whose checkpoints are a small step "
                     "apart: a model can be further than that in parameters and still make the same mistakes. "
                     "Behaviour (IoU) is what decides whether it is new.")
    return Evidence("similarity", "bad" if copied else "good", text), copied


def _interval(row: Row, key: str) -> tuple[float, float]:
    """A metric's 95% interval, or the value itself twice when the row has no interval."""
    ci = row.get(f"{key}_ci")
    return (ci[0], ci[1]) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (row[key], row[key])


def _diversity(gen: Row, zoo: Row) -> tuple[Evidence, bool, bool]:
    """(evidence, all generated models identical in behaviour, most of them near 3 checkpoints)."""
    n, distinct = gen["n"], gen.get("distinct_predictions")
    collapsed = n >= 2 and distinct == 1
    even = len(gen.get("nn_top") or []) / max(zoo["n"], 1)  # the top checkpoints' share if models spread evenly
    piled = n >= 2 and (gen.get("nn_top_share") or 0.0) >= max(PILE_UP_SHARE, PILE_UP_FACTOR * even)
    g_w, z_w = gen.get("iou_within"), zoo.get("iou_within")
    parts = []
    if distinct is not None:
        same_n = gen.get("zoo_distinct_same_n")
        matched = f"; {n} of them drawn at random: {same_n:.0f}" if same_n is not None and n < zoo["n"] else ""
        parts.append(f"the {n} generated models make {distinct} different sets of test predictions "
                     f"(the zoo's {zoo['n']} checkpoints: {zoo.get('distinct_predictions')}{matched})")
    alike = False
    if g_w is not None and z_w is not None:
        # beyond both intervals and by more than a tolerance: 100 models give tight intervals, and a
        # difference of a few hundredths is "about as diverse" (the fidelity targets' +0.05)
        alike = (_interval(gen, "iou_within")[0] > _interval(zoo, "iou_within")[1]
                 and g_w - z_w > ALIKE_MARGIN)
        parts.append(f"two generated models share their mistakes with IoU {_f3(g_w)}{_ci(gen.get('iou_within_ci'), 3)}, "
                     f"two zoo checkpoints with {_f3(z_w)}{_ci(zoo.get('iou_within_ci'), 3)}")
    if gen.get("nn_top"):
        parts.append(_piled_text(gen, zoo))
    status = "bad" if collapsed or piled or alike else "good"
    verdict_text = ("collapsed" if collapsed else "they pile up near a few checkpoints" if piled
                    else "less diverse than the zoo" if alike else "about as diverse as the zoo")
    text = "Diversity: " + "; ".join(parts) + f": {verdict_text}." if parts else "Diversity: not measured."
    return Evidence("diversity", status if parts else "unknown", text), collapsed, piled


def _piled_text(gen: Row, zoo: Row) -> str:
    top, share = sorted(gen.get("nn_top") or []), gen.get("nn_top_share") or 0.0
    count = round(share * gen["n"])
    consecutive = len(top) > 2 and top == list(range(top[0], top[-1] + 1))
    names = f"#{top[0]}-#{top[-1]}" if consecutive else ", ".join(f"#{i}" for i in top)
    return f"{count} of {gen['n']} are nearest to training checkpoints {names}, {len(top)} of the zoo's {zoo['n']}"


def _fidelity(gen: Row, given: Mapping[str, float] | None) -> Evidence:
    """Does the generator cover the training latents (analysis.group_fidelity)? Bad when the
    spread is off by more than 30 %, or precision or recall (against its split-half floor) is
    under half: then a "copies" or "new" reading of the other evidence rests on a broken generator."""
    numbers = {k: v for k, v in (given or {}).items() if v is not None}
    numbers |= {k: gen[k] for k in FIDELITY_KEYS if gen.get(k) is not None and k not in numbers}
    if not numbers:
        return Evidence("fidelity", "unknown", "Fidelity: not measured (the spread of generated against training "
                                               "latents, their Fréchet distance and precision/recall).")
    parts, bad = [], False
    if "latent_spread_ratio" in numbers:
        ratio = numbers["latent_spread_ratio"]
        bad |= not 0.7 <= ratio <= 1.3
        parts.append(f"generated latents spread {ratio:.2f}x as widely as the training latents")
    if "latent_fd" in numbers:
        fd, floor = numbers["latent_fd"], numbers.get("latent_fd_floor")
        bad |= floor is not None and fd > 2 * floor
        parts.append(f"Fréchet distance {fd:.3g}" + (f" (two halves of the zoo: {floor:.3g})" if floor is not None
                                                      else ""))
    p, r, self_r = numbers.get("latent_precision"), numbers.get("latent_recall"), numbers.get("latent_self_recall")
    if p is not None:
        bad |= p < 0.5
        parts.append(f"precision {p:.2f}")
    if r is not None:
        bad |= r < 0.5 * (self_r or 1.0)
        parts.append(f"recall {r:.2f}" + (f" (of {self_r:.2f} possible)" if self_r is not None else ""))
    return Evidence("fidelity", "bad" if bad else "good", "Fidelity: " + "; ".join(parts) + ".")


def _caveats(gen: Row, zoo: Row, ref: Row, ref_name: str) -> list[str]:
    out = []
    samples = gen.get("test_samples")
    errors = [e for e in (gen.get("errors_median"), zoo.get("errors_median")) if e is not None]
    if errors and min(errors) < FEW_ERRORS:
        out.append(f"A typical model gets only {min(errors):.0f} of {samples} test samples wrong, so the IoU of wrong "
                   f"predictions moves in coarse steps and cannot separate a copy from a close relative; a harder "
                   f"dataset (e.g. the mnist1d preset) leaves more room.")
    r_iou = ref.get("max_iou_median")
    if r_iou is not None and r_iou >= IOU_CEILING:
        out.append(f"The yardstick is at its ceiling: {_between(ref_name)} the median max IoU is already {_f3(r_iou)}, "
                   f"so IoU cannot tell a generated model that copies a checkpoint from one that does not.")
    if gen["n"] < FEW_MODELS:
        out.append(f"Only {gen['n']} generated models: every interval is wide.")
    if zoo["n"] < FEW_MODELS:
        out.append(f"Only {zoo['n']} training checkpoints: the yardstick rests on few models.")
    return out


def _cheap_matches(rows: Mapping[str, Row], gen: Row) -> list[str]:
    """Baselines at least as accurate as the generator (median within its interval or above) and
    at least as novel (max IoU to the zoo not above the generator's interval)."""
    if gen.get("max_iou_median") is None:
        return []
    g_lo, g_iou_hi = _interval(gen, "median")[0], _interval(gen, "max_iou_median")[1]
    out = []
    for name, row in rows.items():
        if name in NOT_GENERATORS or row.get("max_iou_median") is None:
            continue
        if row["median"] >= g_lo and row["max_iou_median"] <= g_iou_hi:
            out.append(f"{name} ({row['median']:.2f}%, max IoU {_f3(row['max_iou_median'])})")
    return out


# --------------------------------------------------------------------------- formatting


def _between(name: str) -> str:
    return {"heldout": "for held-out checkpoints of the same SGD run",
            "ae-reconstruction": "for the autoencoder's reconstructions of training checkpoints"}.get(
        name, "between the zoo's own checkpoints")


def _f3(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _ci(interval: Any, digits: int, kind: str = "f") -> str:
    if not isinstance(interval, (list, tuple)) or len(interval) != 2:
        return ""
    if kind == "g":
        return f" [{interval[0]:.3g}, {interval[1]:.3g}]"
    return f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
