"""New or copied? A plain-language answer from a run's scorecard and its ruler.

`verdict(rows, axes)` reads only the scorecard (`report.metrics_table(run)`: one row per group) and
the ruler's anchors (judge/ruler.py), and answers in one of these words, checked in this order:

- **collapsed**: all generated models make the same test predictions;
- **worse**: fewer than half of them reach the zoo's range (the zoo's 5th-percentile accuracy, less
  one point), so a zoo that climbs from chance to trained is not "better" than its models;
- **can't tell**: neither measure of the ruler separates copies from fresh training on this task;
- otherwise the generated models' place on the ruler (0 = copies, 1 = fresh SGD), the smaller of
  the resolving measures' positions, so "new" needs both behaviour and parameters to say so:
  **copies** below `COPIES_BELOW`, **between** below `FRESH_FROM` (closer to the training
  checkpoints than fresh training gets), **like fresh training** up to `BEYOND_ABOVE`, **beyond
  fresh training** above it (still accurate).

Around the answer: the evidence on accuracy, behaviour, parameters, diversity and fidelity, each
sentence from the same numbers the answer used; caveats (the generator does not cover the
training latents; few test errors; few models); cheap baselines that sit as far along the ruler
and are as accurate. The thresholds were fixed on digits and mnist1d before the calibration run of
`benchmarks/bench_verdict.py` judged them on cases of known nature (README, "How the answer is
calibrated"). Pure: no files, no torch; the app, the CLI and notebooks call it alike.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Row = Mapping[str, Any]

# Ruler positions (0 copies, 1 fresh SGD), chosen on digits and mnist1d (seeds 0-2) between the cases
# of known nature of pdiff/calibration.py, with room on both sides of each (README, "How the answer is
# calibrated"; benchmarks/bench_verdict.py prints them).
COPIES_BELOW = 0.4  # below: copies
FRESH_FROM = 0.8  # from here: like fresh training ("between" lies in between)
BEYOND_ABOVE = 1.25  # above: beyond fresh training
GOOD_SHARE = 50.0  # percent of models in the zoo's range below which the generator makes worse models
FEW_ERRORS = 20  # a typical model with fewer wrong test samples makes IoU coarse
FEW_MODELS = 10
RECALL_SHARE = 0.7  # latent recall below this share of the zoo's own split-half recall: not covered
SPREAD_RANGE = (0.7, 1.3)  # generated latents' spread outside this ratio of the training latents': not covered
NOT_GENERATORS = ("zoo", "heldout", "fresh", "generated", "copies", "ae-reconstruction")
ANSWERS = ("copies", "between", "like fresh training", "beyond fresh training", "collapsed", "worse", "can't tell",
           "unknown")
MEASURE_TEXT = {"behaviour": "mistakes (max IoU of wrong test predictions to the training checkpoints)",
                "parameters": "parameters (distance to the nearest training checkpoint)"}


@dataclass(frozen=True)
class Evidence:
    aspect: str  # "accuracy" | "behaviour" | "parameters" | "diversity" | "fidelity"
    status: str  # "good" (speaks for new, good models) | "bad" (against) | "unknown"
    text: str


@dataclass(frozen=True)
class Verdict:
    answer: str  # one of ANSWERS
    headline: str  # one plain sentence (two at most)
    evidence: tuple[Evidence, ...] = ()
    caveats: tuple[str, ...] = ()  # what weakens the answer; empty when nothing does
    position: float | None = None  # the generated models' place on the ruler (0 copies, 1 fresh SGD)
    position_ci: tuple[float, float] | None = None
    decided_by: str | None = None  # the measure whose position gave the answer
    cheap_matches: tuple[str, ...] = ()  # baselines as accurate and at least as far along the ruler
    numbers: dict[str, Any] = field(default_factory=dict)  # the values the sentences quote

    @property
    def weak(self) -> bool:
        return bool(self.caveats)


def verdict(rows: Mapping[str, Row], axes: Mapping[str, Mapping[str, Any]] | None = None,
            no_ruler: str = "") -> Verdict:
    """The answer for one run's scorecard (`rows`: group -> row, "zoo" first) and ruler `axes`
    (measure -> the anchors' record, `ruler.Axis.record()`; None when the run has no anchors).
    `no_ruler` says why a run has no fresh-training reference, when it says (an imported zoo)."""
    gen, zoo = rows.get("generated"), rows.get("zoo")
    if gen is None and zoo is not None and "max_iou_median" in zoo:
        return Verdict("unknown", "Nothing to judge: this run has no generator (generate=false); its numbers describe "
                                  "the zoo alone.")
    if gen is None or zoo is None:
        return Verdict("unknown", "No answer yet: the run has no generated models to judge.")
    if "max_iou_median" not in gen:
        return Verdict("unknown", "No answer yet: only accuracy is available (the analysis has not run or is stale).",
                       (_accuracy(gen, zoo),))
    accuracy = _accuracy(gen, zoo)
    diversity, collapsed = _diversity(gen, zoo)
    fidelity, uncovered = _fidelity(gen)
    measures = [_measure(m, gen, axes) for m in ("behaviour", "parameters")]
    evidence = (accuracy, *measures, diversity, fidelity)
    caveats = _caveats(gen, zoo, uncovered)
    numbers = {"generated_median": gen["median"], "zoo_median": zoo["median"], "good": gen.get("good"),
               "n": gen["n"], "distinct_predictions": gen.get("distinct_predictions")}
    if collapsed:
        return Verdict("collapsed", f"Collapsed: all {gen['n']} generated models make exactly the same test "
                                    f"predictions; the generator produces one model however many it samples.",
                       evidence, tuple(caveats), numbers=numbers)
    if (gen.get("good") or 0.0) < GOOD_SHARE:
        return Verdict("worse", f"Worse than the zoo: only {gen.get('good', 0.0):.0f}% of the generated models "
                                f"reach the zoo's range (median {gen['median']:.2f}% against the zoo's "
                                f"{zoo['median']:.2f}%).", evidence, tuple(caveats), numbers=numbers)
    placed = [(m, gen["ruler"][m]) for m in ("behaviour", "parameters")
              if (gen.get("ruler") or {}).get(m, {}).get("position") is not None]
    if not placed:
        return Verdict("can't tell", _cant_tell(axes, no_ruler), evidence, tuple(caveats), numbers=numbers)
    measure, place = min(placed, key=lambda item: item[1]["position"])
    answer = zone(place["position"])
    reach = _reach(place, answer)
    if reach:
        caveats.append(reach)
    matches = _cheap_matches(rows, gen, measure)
    headline = _headline(answer, measure, place, len(placed) == 2)
    if matches:
        headline += f" A cheap baseline gets as far: {', '.join(matches)}."
    numbers |= {"position": place["position"], "measure": measure}
    return Verdict(answer, headline, evidence, tuple(caveats), place["position"], _pair(place.get("ci")), measure,
                   tuple(matches), numbers)


def zone(position: float) -> str:
    """The answer a ruler position gives (see the module docstring for the thresholds)."""
    if position < COPIES_BELOW:
        return "copies"
    if position < FRESH_FROM:
        return "between"
    if position <= BEYOND_ABOVE:
        return "like fresh training"
    return "beyond fresh training"


def _reach(place: Mapping[str, Any], answer: str) -> str:
    """A caveat when the position's interval reaches into another answer's zone, or ""."""
    ci = _pair(place.get("ci"))
    if ci is None:
        return ""
    others = dict.fromkeys(a for a in (zone(ci[0]), zone(ci[1])) if a != answer)
    if not others:
        return ""
    return (f"The position's interval [{ci[0]:.2f}, {ci[1]:.2f}] reaches into {' and '.join(others)}: the answer "
            f"sits near a boundary.")


def position_text(position: float) -> str:
    """Two decimals, or as many more as it takes not to round across a threshold (0.395 is
    "copies", and "0.40" beside it would read as "between")."""
    for digits in range(2, 7):
        text = f"{position:.{digits}f}"
        if zone(float(text)) == zone(position):
            return text
    return f"{position:.2f}"


def _headline(answer: str, measure: str, place: Mapping[str, Any], both: bool) -> str:
    where = (f"position {position_text(place['position'])}{_ci(place.get('ci'), 2)} on the ruler from copies (0) to "
             f"fresh SGD (1)")
    by = f"by their {measure}" + (" (the closer of the two measures)" if both else "")
    return {
        "copies": f"Copies: the generated models are as accurate as the zoo but sit with copies of the training "
                  f"checkpoints {by}: {where}.",
        "between": f"Between copies and fresh training: the generated models are as accurate as the zoo and closer "
                   f"to the training checkpoints than an independent SGD run gets, {by}: {where}.",
        "like fresh training": f"Like fresh training: the generated models are as accurate as the zoo and as far from "
                               f"the training checkpoints as an independent SGD run {by}: {where}.",
        "beyond fresh training": f"Beyond fresh training: the generated models are farther from the training "
                                 f"checkpoints than an independent SGD run {by}, and still accurate: {where}.",
    }[answer]


def _cant_tell(axes: Mapping[str, Mapping[str, Any]] | None, no_ruler: str = "") -> str:
    if not axes and no_ruler:
        return f"Can't tell: nothing stands for fresh training to place the generated models against: {no_ruler}."
    if not axes:
        return ("Can't tell: the run has no reference of fresh training or no copies to place the generated models "
                "between (collect.fresh=0?); redo it with the defaults.")
    reasons = "; ".join(f"{m}: {a.get('why')}" for m, a in axes.items() if not a.get("resolves"))
    return f"Can't tell: on this task neither measure separates copies from fresh training ({reasons})."


# --------------------------------------------------------------------------- the evidence


def _accuracy(gen: Row, zoo: Row) -> Evidence:
    good = gen.get("good")
    text = (f"Accuracy: generated median {gen['median']:.2f}%{_ci(gen.get('median_ci'), 2)} against the zoo's "
            f"{zoo['median']:.2f}%{_ci(zoo.get('median_ci'), 2)}")
    text += "." if good is None else f"; {good:.0f}% of the generated models reach the zoo's range."
    status = "unknown" if good is None else ("good" if good >= GOOD_SHARE else "bad")
    return Evidence("accuracy", status, text)


def _measure(measure: str, gen: Row, axes: Mapping[str, Mapping[str, Any]] | None) -> Evidence:
    """Where the generated models sit on one measure, or why the measure cannot tell."""
    axis = (axes or {}).get(measure)
    key, digits = ("max_iou_median", 3) if measure == "behaviour" else ("nn_distance_median", 3)
    value = gen.get(key)
    label = MEASURE_TEXT[measure]
    if axis is None:
        return Evidence(measure, "unknown", f"{measure.capitalize()}: no ruler (the run lacks copies or a fresh SGD "
                                            f"run); {label}: {_g(value, digits)}.")
    anchors = (f"copies {_g(axis['copies'], digits)}, fresh SGD {_g(axis['fresh'], digits)}, generated "
               f"{_g(value, digits)}{_ci(gen.get(key + '_ci'), digits, 'g')}")
    if not axis.get("resolves"):
        return Evidence(measure, "unknown", f"{measure.capitalize()} cannot tell here: {axis.get('why')}.")
    place = (gen.get("ruler") or {}).get(measure) or {}
    if place.get("position") is None:
        return Evidence(measure, "unknown", f"{measure.capitalize()}: {label}: {anchors}.")
    answer = zone(place["position"])
    status = "bad" if answer in ("copies", "between") else "good"
    return Evidence(measure, status, f"{measure.capitalize()}: {label}: {anchors}; position "
                                     f"{position_text(place['position'])}{_ci(place.get('ci'), 2)}, {answer}.")


def _diversity(gen: Row, zoo: Row) -> tuple[Evidence, bool]:
    """(evidence, all generated models identical in behaviour). Distinct prediction sets are
    compared with as many zoo checkpoints drawn at random (they grow with the number of models)."""
    n, distinct = gen["n"], gen.get("distinct_predictions")
    collapsed = n >= 2 and distinct == 1
    if distinct is None:
        return Evidence("diversity", "unknown", "Diversity: not measured."), collapsed
    same_n = gen.get("zoo_distinct_same_n")
    reference = same_n if same_n is not None else zoo.get("distinct_predictions")
    text = (f"Diversity: the {n} generated models make {distinct} different sets of test predictions; "
            f"{min(n, zoo['n'])} zoo checkpoints drawn at random make {_g(reference, 0)}")
    g_w, z_w = gen.get("iou_within"), zoo.get("iou_within")
    if g_w is not None and z_w is not None:
        text += f"; two generated models share their mistakes with IoU {g_w:.3f}, two zoo checkpoints with {z_w:.3f}"
    status = "bad" if collapsed else "unknown" if reference is None else "good" if distinct >= reference else "bad"
    comparison = ("collapsed" if collapsed else "" if reference is None else
                  "as many or more than the zoo" if distinct >= reference else "fewer than the zoo")
    return Evidence("diversity", status, text + (f": {comparison}." if comparison else ".")), collapsed


def _fidelity(gen: Row) -> tuple[Evidence, str]:
    """(evidence, why the generator does not cover the training latents, or ""): its latents'
    spread against the training latents', and recall against the zoo's own split-half recall."""
    ratio, recall, self_recall = gen.get("latent_spread_ratio"), gen.get("latent_recall"), gen.get("latent_self_recall")
    precision = gen.get("latent_precision")
    if ratio is None and recall is None:
        return Evidence("fidelity", "unknown", "Fidelity: not measured (too few models or checkpoints)."), ""
    problems = []
    if ratio is not None and not SPREAD_RANGE[0] <= ratio <= SPREAD_RANGE[1]:
        problems.append(f"their latents spread {ratio:.2f}x as widely as the training latents")
    if recall is not None and recall < RECALL_SHARE * (self_recall or 1.0):
        problems.append(f"they cover only part of the training latents (recall {recall:.2f} of "
                        f"{_g(self_recall, 2)} possible)")
    parts = [f"latent spread {_g(ratio, 2)}x the training latents'", f"precision {_g(precision, 2)}",
             f"recall {_g(recall, 2)} of {_g(self_recall, 2)} possible"]
    text = "Fidelity: " + "; ".join(parts) + (": " + "; ".join(problems) + "." if problems else ".")
    return Evidence("fidelity", "bad" if problems else "good", text), "; ".join(problems)


def _caveats(gen: Row, zoo: Row, uncovered: str) -> list[str]:
    out = []
    if uncovered:
        out.append(f"The generator does not cover the training checkpoints: {uncovered}; its models stand for part "
                   f"of what it learned from.")
    errors = [e for e in (gen.get("errors_median"), zoo.get("errors_median")) if e is not None]
    if errors and min(errors) < FEW_ERRORS:
        out.append(f"A typical model gets only {min(errors):.0f} of {gen.get('test_samples')} test samples wrong, so "
                   f"the IoU of wrong predictions moves in coarse steps.")
    if gen["n"] < FEW_MODELS:
        out.append(f"Only {gen['n']} generated models: every interval is wide.")
    if zoo["n"] < FEW_MODELS:
        out.append(f"Only {zoo['n']} training checkpoints: the ruler rests on few models.")
    return out


def _cheap_matches(rows: Mapping[str, Row], gen: Row, measure: str) -> list[str]:
    """Baselines at least as accurate as the generator (median within its interval or above) and at
    least as far along the ruler on the measure that decided (position not below the generator's
    interval)."""
    g_lo = _interval(gen, "median")[0]
    g_ci = gen["ruler"][measure].get("ci") or [gen["ruler"][measure]["position"]] * 2
    out = []
    for name, row in rows.items():
        place = (row.get("ruler") or {}).get(measure) or {}
        if name in NOT_GENERATORS or place.get("position") is None:
            continue
        if row["median"] >= g_lo and place["position"] >= g_ci[0]:
            out.append(f"{name} ({row['median']:.2f}%, position {place['position']:.2f})")
    return out


# --------------------------------------------------------------------------- formatting


def _interval(row: Row, key: str) -> tuple[float, float]:
    ci = row.get(f"{key}_ci")
    return (ci[0], ci[1]) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (row[key], row[key])


def _pair(ci: Any) -> tuple[float, float] | None:
    return (float(ci[0]), float(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 else None


def _g(value: float | None, digits: int) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if digits else f"{value:.0f}"


def _ci(interval: Any, digits: int, kind: str = "f") -> str:
    if not isinstance(interval, (list, tuple)) or len(interval) != 2:
        return ""
    if kind == "g":
        return f" [{interval[0]:.{digits}g}, {interval[1]:.{digits}g}]"
    return f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
