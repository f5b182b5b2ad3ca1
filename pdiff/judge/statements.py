"""Sentences that compare numbers, written from the numbers, so no page can say the opposite of
what it shows.

Every comparison the explorer states in words goes through `relation`: a difference within the
tolerance is "about the same", beyond it "above" or "below", and the sentence is chosen by that
word alone. The tolerance is a stated quantity (one test sample's worth of accuracy, one step of
IoU), never a hidden constant: a hard threshold a few hundredths away from the numbers is how the
Denoising page once told a story its own figures contradicted. Arrows beside a number come from
its sign (`arrow`). Pure: numbers in, words out; the verdict's thresholds are imported, not copied.
"""
from __future__ import annotations

from .verdict import GOOD_SHARE, SPREAD_RANGE

ABOVE, BELOW, SAME = "above", "below", "about the same"


def relation(value: float, reference: float, tolerance: float = 0.0) -> str:
    """"above" when value exceeds reference by more than `tolerance`, "below" when it falls short by
    more, "about the same" otherwise (a difference of exactly the tolerance counts as the same)."""
    difference = value - reference
    if difference > tolerance:
        return ABOVE
    if difference < -tolerance:
        return BELOW
    return SAME


def arrow(difference: float | None, decimals: int = 2) -> str:
    """st.metric's delta_arrow for a difference as shown: "up", "down", or "off" when it is
    undefined or rounds to zero at the decimals shown (a "+0.00" gets no arrow)."""
    if difference is None or round(difference, decimals) == 0:
        return "off"
    return "up" if difference > 0 else "down"


def signed(difference: float, decimals: int = 2) -> str:
    """A difference with its sign, as it is shown beside its arrow ("+0.40", "−1.20", "0.00")."""
    text = f"{abs(difference):.{decimals}f}"
    if round(difference, decimals) == 0:
        return text
    return ("+" if difference > 0 else "−") + text


def sample_step(test_samples: int | None) -> float:
    """Points of accuracy that one test sample is worth: the smallest difference that means anything."""
    return 100.0 / test_samples if test_samples else 0.0


# --------------------------------------------------------------------------- Denoising


def denoising_story(t_max: int, first: float, last: float, zoo: float, noise: float | None, step: float) -> str:
    """What a run's sampling trajectory shows: the decoded x0-prediction's mean accuracy at t = T
    (`first`, the denoiser has seen only noise) and at t = 0 (`last`), the zoo's median, and the
    median of decoding pure noise without diffusion (`noise`, the decoder-only baseline). Every
    comparison uses `step`, one test sample's worth of accuracy, as its tolerance."""
    text = (f"**What to expect.** At t = {t_max}, where the denoiser has seen only noise, the decoded x0-prediction "
            f"scores {first:.2f}% on average; at t = 0 it scores {last:.2f}% (zoo median {zoo:.2f}%). ")
    change = relation(last, first, step)
    text += {ABOVE: f"Sampling raises the accuracy by {last - first:.2f} points.",
             BELOW: f"Sampling lowers the accuracy by {first - last:.2f} points.",
             SAME: "Sampling hardly changes the accuracy (less than one test sample)."}[change]
    if noise is None:
        return text
    text += (f" Decoding pure noise with no diffusion at all (the decoder-only baseline) gives a median of "
             f"{noise:.2f}%, ")
    versus = relation(last, noise, step)
    if versus == ABOVE:
        return text + (f"{last - noise:.2f} points below what sampling reaches: the denoiser's work, not the decoder "
                       f"alone, makes the difference.")
    if versus == SAME:
        return text + ("as much as sampling reaches: the decoder and the frozen rest of the network make a working "
                       "classifier from almost any latent, so diffusion decides *where* near the zoo a sample lands "
                       "(the path on the right), not whether it works. That is itself a memorization clue.")
    return text + (f"{noise - last:.2f} points above what sampling reaches: here decoding noise alone does better than "
                   f"the diffusion's samples.")


# --------------------------------------------------------------------------- Autoencoder


def decoded_noise(noise_median: float, zoo_median: float, good: float | None) -> str:
    """The decoder-only baseline in words: its median beside the zoo's, and whether most of its models
    land in the zoo's range (`good`, percent; the verdict's GOOD_SHARE decides "most")."""
    text = (f"**Decoding pure noise**: random latents decoded without diffusion (the decoder-only baseline) score a "
            f"median of {noise_median:.2f}% against the zoo's {zoo_median:.2f}%")
    if good is None:
        return text + ". See the Denoising page."
    if good >= GOOD_SHARE:
        return text + (f"; {good:.0f}% of them land in the zoo's range: the decoder maps most codes to a working "
                       f"classifier near the zoo. See the Denoising page.")
    return text + (f"; only {good:.0f}% of them land in the zoo's range: the decoder needs the codes the diffusion "
                   f"samples. See the Denoising page.")


# --------------------------------------------------------------------------- Latent space


def spread_caption(ratio: float | None) -> str:
    """The latent-spread figure's caption, its last sentence from the median ratio and the verdict's
    SPREAD_RANGE (the range in which the generator counts as covering the training latents)."""
    text = ("Each line is one group of models: the spread (standard deviation) of its latents along each latent "
            "dimension, dimensions ordered by the training latents' spread. The generated models' latents are the "
            "ones the diffusion sampled; the others are what the encoder makes of their parameters.")
    if ratio is None:
        return text
    lo, hi = SPREAD_RANGE
    word = (f"narrower than the training latents (below {lo}: the generator collapses towards the mean)" if ratio < lo
            else f"wider than the training latents (above {hi}: noisier than the data)" if ratio > hi
            else f"about the training latents' spread (within {lo}-{hi})")
    return text + f" Median ratio generated / training: {ratio:.2f}, {word}."


# --------------------------------------------------------------------------- Guided


def guided_notice(requested: float, scale: float, zoo_range: tuple[float, float], achieved: float) -> tuple[str, str]:
    """(kind, text) for the Guided page: "info" at scale 0 (the request is ignored: unconditional
    sampling), "warning" for a request outside the zoo's range, "" with no text otherwise."""
    lo, hi = zoo_range
    if scale == 0:
        return "info", (f"Guidance scale 0 is unconditional sampling: the requested {requested:.1f} % is ignored, and "
                        f"the models follow the zoo's own distribution (median {achieved:.1f} %).")
    if not lo <= requested <= hi:
        side = "above the zoo's best checkpoint" if requested > hi else "below the zoo's worst checkpoint"
        return "warning", (f"{requested:.1f} % lies outside the zoo's range ({lo:.1f}-{hi:.1f} %), {side}. The "
                           f"generator learned accuracies only from the zoo: it does not extrapolate, it returns "
                           f"models near the zoo's edge (here {achieved:.1f} %).")
    return "", ""


# --------------------------------------------------------------------------- Compare and neighbours


def change_word(difference: float | None, interval: tuple[float, float] | None) -> str:
    """"real change" when the 95% interval of B − A excludes 0, "within noise" when it includes it,
    "" when there is no interval to judge by."""
    if difference is None or interval is None:
        return ""
    lo, hi = interval
    return "within noise" if lo <= 0 <= hi else "real change"


def errs_like_sentence(name: str, checkpoint: str, checkpoint_iou: float, fresh: str | None, fresh_iou: float | None,
                       step: float) -> str:
    """Whether a model errs more like a training checkpoint or like fresh training, from its best IoU
    with each, `step` (one wrong test sample's change of IoU) as the tolerance."""
    text = f"{name} makes the same mistakes as {checkpoint} with IoU {checkpoint_iou:.3f}"
    if fresh is None or fresh_iou is None:
        return text + " (this run has no fresh SGD models to compare with)."
    text += f", and as fresh SGD's {fresh} with IoU {fresh_iou:.3f}: "
    return text + {ABOVE: "its mistakes are closer to a training checkpoint's than to any fresh SGD model's.",
                   BELOW: "its mistakes are closer to a fresh SGD model's than to any training checkpoint's.",
                   SAME: "about as close to either (within one wrong test sample)."}[
        relation(checkpoint_iou, fresh_iou, step)]
