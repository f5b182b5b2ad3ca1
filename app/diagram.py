"""The whole method on one screen: how a run's parameters flow through normalization, the
autoencoder and the diffusion model, and back into a classifier whose backbone never changes, with
this run's sizes written on the boxes. A pure figure builder (no Streamlit, no files).

Two rows, because p-diff has two paths: training (top: checkpoints -> normalize -> encoder ->
latents the diffusion learns to denoise) and generating (bottom: pure noise -> the trained denoiser
step by step -> the autoencoder's decoder -> parameters, set into the frozen classifier and tested).
"""
from __future__ import annotations

import plotly.graph_objects as go

from app.figures import FIXED_COLOURS, LAYOUT
from pdiff.pipeline.anatomy import Anatomy

TRAIN, SAMPLE, FROZEN = "#dbe9f6", "#fbe0dc", "#e6e6e6"


def boxes(a: Anatomy) -> list[tuple[int, int, str, str, str]]:
    """(row, column, title, detail, fill) of each box: row 0 trains, row 1 generates."""
    return [
        (0, 0, "zoo", f"{a.zoo} checkpoints<br>× {a.target_params:,} numbers<br>(SGD on the target only)", TRAIN),
        (0, 1, "normalize", a.normalization.replace(", ", ",<br>"), TRAIN),
        (0, 2, "encoder", f"{a.autoencoder.upper()} autoencoder<br>{a.target_params:,} → {a.latent_dim}", TRAIN),
        (0, 3, "noise ↔ denoise", (f"latents noised to<br>t = 0 … {a.timesteps - 1}; the {a.denoiser.upper()} "
                                   f"denoiser<br>learns to predict the noise"), TRAIN),
        (1, 0, "pure noise", f"{a.generated} latents<br>of {a.latent_dim} numbers", SAMPLE),
        (1, 1, "denoise", (f"the trained denoiser<br>{a.sampler.upper()}: {a.sampling_steps} steps<br>"
                           f"t = {a.timesteps - 1} → 0"), SAMPLE),
        (1, 2, "decoder", (f"the autoencoder's decoder<br>{a.latent_dim} → {a.target_params:,} numbers,"
                           f"<br>de-normalized"), SAMPLE),
        (1, 3, "classifier", (f"{a.classifier}: generated {a.target_params:,}<br>+ frozen backbone "
                              f"{a.frozen_params:,}"), FROZEN),
        (1, 4, "test", f"accuracy, predictions<br>on {a.splits.get('test', '?')} test samples<br>→ the verdict",
         FROZEN),
    ]


def dataflow_diagram(a: Anatomy) -> go.Figure:
    """The two paths as boxes and arrows, sizes from `a` (pdiff.pipeline.anatomy)."""
    shapes, notes = [], []
    y_of = {0: 1.0, 1: 0.0}
    for row, col, title, detail, fill in boxes(a):
        y = y_of[row]
        shapes.append({"type": "rect", "x0": col - 0.46, "x1": col + 0.46, "y0": y - 0.38, "y1": y + 0.38,
                       "fillcolor": fill, "line": {"color": "#555", "width": 1}, "layer": "below"})
        notes.append({"x": col, "y": y, "text": f"<b>{title}</b><br>{detail}", "showarrow": False,
                      "font": {"size": 11.5, "color": "#111"}})
    for row, last in ((0, 3), (1, 4)):
        notes += [_arrow(col + 0.46, y_of[row], col + 0.54, y_of[row]) for col in range(last)]
    notes.append({"x": -0.46, "y": 1.5, "text": "<b>training</b> (collect, autoencoder, diffusion stages)",
                  "showarrow": False, "xanchor": "left", "font": {"size": 12, "color": FIXED_COLOURS["zoo"]}})
    notes.append({"x": -0.46, "y": -0.5, "text": "<b>generating</b> (sample, evaluate, analyse stages)",
                  "showarrow": False, "xanchor": "left", "font": {"size": 12, "color": FIXED_COLOURS["generated"]}})
    share = a.target_params / max(a.total_params, 1)
    notes.append({"x": 4.46, "y": 1.0, "xanchor": "right", "showarrow": False, "align": "right",
                  "font": {"size": 12, "color": "#333"},
                  "text": f"{a.dataset}, {a.classifier}:<br>{a.total_params:,} parameters<br>generated: "
                          f"{a.target_params:,} ({share:.1%})<br>frozen: {a.frozen_params:,}"})
    return go.Figure(layout={**LAYOUT, "height": 360, "shapes": shapes, "annotations": notes,
                             "margin": {"l": 0, "r": 0, "t": 10, "b": 0},
                             "xaxis": {"visible": False, "range": [-0.55, 4.55]},
                             "yaxis": {"visible": False, "range": [-0.65, 1.6]}})


def _arrow(x0: float, y0: float, x1: float, y1: float) -> dict:
    """An annotation arrow from (x0, y0) to (x1, y1) in data coordinates."""
    return {"x": x1, "y": y1, "ax": x0, "ay": y0, "xref": "x", "yref": "y", "axref": "x", "ayref": "y",
            "showarrow": True, "arrowhead": 2, "arrowsize": 1.1, "arrowwidth": 1.6, "arrowcolor": "#444", "text": ""}
