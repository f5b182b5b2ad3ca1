"""Guided generation: a denoiser conditioned on accuracy, classifier-free guidance, `pdiff guide`."""
from __future__ import annotations

import json
import shutil
import time

import pytest
import torch
from conftest import micro_config

from pdiff import cli
from pdiff.core.config import RunConfig, with_overrides
from pdiff.core.errors import ConfigError, RunError
from pdiff.core.runtime import make_generator
from pdiff.generator.denoisers import GuidedDenoiser, MLPDenoiser
from pdiff.generator.diffusion import GaussianDiffusion
from pdiff.generator.flow import EulerSampler, RectifiedFlow
from pdiff.generator.samplers import DDPMSampler, sample_loop
from pdiff.guide import Guide, guide
from pdiff.pipeline.loaders import load_evaluation, load_generator
from pdiff.pipeline.runner import load_run_config, run_pipeline

GUIDED = {"collect.reinit": True, "collect.optimizer": "sgd", "collect.lr": 0.01, "collect.num_checkpoints": 40,
          "classifier.epochs": 4, "diffusion.condition": "accuracy", "diffusion.steps": 400,
          "autoencoder.steps": 150}


def conditional_net(seed: int = 0) -> MLPDenoiser:
    torch.manual_seed(seed)
    net = MLPDenoiser(6, width=16, depth=1, time_dim=16, conditional=True)
    torch.nn.init.normal_(net.out.weight)  # the zero-initialised output would hide the condition
    torch.nn.init.normal_(net.null_cond)
    return net


def test_the_denoiser_sees_the_condition_and_a_dropped_one_is_the_unconditional():
    net = conditional_net()
    x, t = torch.randn(4, 6, generator=torch.Generator().manual_seed(1)), torch.tensor([5, 50, 500, 900])
    low, high = torch.full((4,), 0.2), torch.full((4,), 0.9)
    unconditional = net(x, t)
    assert not torch.allclose(net(x, t, low), net(x, t, high))  # the condition reaches the output
    assert not torch.allclose(net(x, t, low), unconditional)
    everything_dropped = torch.ones(4, dtype=torch.bool)
    assert torch.equal(net(x, t, low, everything_dropped), unconditional)  # dropped = no condition
    some = torch.tensor([True, False, True, False])
    mixed = net(x, t, low, some)
    assert torch.equal(mixed[some], unconditional[some]) and torch.equal(mixed[~some], net(x, t, low)[~some])


def test_guidance_combines_the_two_predictions_and_scale_zero_is_unconditional():
    net = conditional_net()
    x, t = torch.randn(3, 6, generator=torch.Generator().manual_seed(2)), torch.tensor([10, 100, 999])
    cond = torch.full((3,), 0.7)
    eps_u, eps_c = net(x, t), net(x, t, cond)
    torch.testing.assert_close(GuidedDenoiser(net, 70.0, 2.5)(x, t), eps_u + 2.5 * (eps_c - eps_u))
    torch.testing.assert_close(GuidedDenoiser(net, 70.0, 1.0)(x, t), eps_c)
    process = GaussianDiffusion(50)
    a = sample_loop(GuidedDenoiser(net, 70.0, 0.0), DDPMSampler(process), (5, 6), torch.Generator().manual_seed(3))
    b = sample_loop(net, DDPMSampler(process), (5, 6), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    flow = RectifiedFlow(50)  # the same combination steers a velocity: scale 0 is the unconditional flow
    a = sample_loop(GuidedDenoiser(net, 70.0, 0.0), EulerSampler(flow), (5, 6), torch.Generator().manual_seed(3))
    b = sample_loop(net, EulerSampler(flow), (5, 6), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_guidance_settings_are_validated():
    with pytest.raises(ConfigError, match="sample.accuracy needs a denoiser conditioned on accuracy"):
        with_overrides(RunConfig(), {"sample.accuracy": 80})
    with pytest.raises(ConfigError, match="diffusion.condition needs diffusion.denoiser='mlp'"):
        with_overrides(RunConfig(), {"diffusion.condition": "accuracy", "diffusion.denoiser": "conv"})
    with pytest.raises(ConfigError, match=r"sample.accuracy is a test accuracy in percent"):
        with_overrides(RunConfig(), {"diffusion.condition": "accuracy", "sample.accuracy": 180})
    with pytest.raises(ConfigError, match="cond_drop"):
        with_overrides(RunConfig(), {"diffusion.cond_drop": 1.0})


@pytest.fixture(scope="module")
def guided_run(tmp_path_factory):
    """A micro run whose zoo climbs from chance and whose denoiser is conditioned on accuracy."""
    return run_pipeline(tmp_path_factory.mktemp("guided") / "run", micro_config(**GUIDED))


def test_a_reinitialised_collection_spans_a_range_of_accuracy(guided_run):
    zoo = load_evaluation(guided_run).accuracy["zoo"]
    assert zoo.min() < 50 and zoo.max() - zoo.min() > 30  # from near chance (10 %) to trained


def test_requested_low_and_high_accuracies_come_out_ordered(guided_run):
    """The learning test: asking for the zoo's 25th and 85th percentile gives models whose
    accuracies are ordered the same way, by a clear margin."""
    config = load_run_config(guided_run)
    helper = Guide(guided_run, config, torch.device("cpu"))
    zoo = load_evaluation(guided_run).accuracy["zoo"].double()
    low, high = torch.quantile(zoo, torch.tensor([0.25, 0.85], dtype=torch.float64)).tolist()
    got_low, got_high = helper.request(low, 30, 2.0).achieved_median, helper.request(high, 30, 2.0).achieved_median
    assert got_high - got_low > 0.4 * (high - low), (low, high, got_low, got_high)


@pytest.mark.slow
def test_guidance_steers_flow_matching_the_same_way(tmp_path):
    """The learning test again with diffusion.kind=flow: low and high requests come out ordered."""
    run = run_pipeline(tmp_path / "run", micro_config(**GUIDED, **{"diffusion.kind": "flow",
                                                                   "sample.sampler": "euler"}))
    helper = Guide(run, load_run_config(run), torch.device("cpu"))
    zoo = load_evaluation(run).accuracy["zoo"].double()
    low, high = torch.quantile(zoo, torch.tensor([0.25, 0.85], dtype=torch.float64)).tolist()
    got_low, got_high = helper.request(low, 30, 2.0).achieved_median, helper.request(high, 30, 2.0).achieved_median
    assert got_high - got_low > 0.4 * (high - low), (low, high, got_low, got_high)


def test_scale_zero_from_the_run_equals_unconditional_sampling(guided_run):
    generator = load_generator(guided_run, load_run_config(guided_run), torch.device("cpu"))
    plain = generator.sample(5, make_generator(7), "ddim", 10)
    zero = generator.sample(5, make_generator(7), "ddim", 10, accuracy=60.0, guidance=0.0)
    assert torch.equal(plain.params, zero.params)
    guided = generator.sample(5, make_generator(7), "ddim", 10, accuracy=60.0, guidance=1.0)
    assert not torch.equal(plain.params, guided.params)


def test_guide_json_round_trips(guided_run, capsys):
    assert cli.main(["guide", str(guided_run.path), "--accuracy", "30", "70", "--models", "8", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["requested"] for r in records] == [30.0, 70.0]
    assert records == guide(guided_run, [30.0, 70.0], models=8)  # the same seed: the same numbers
    for r in records:
        assert r["achieved_q25"] <= r["achieved_median"] <= r["achieved_q75"] and r["models"] == 8
    assert cli.main(["guide", str(guided_run.path), "--accuracy", "50", "--models", "4"]) == 0
    assert "achieved median" in capsys.readouterr().out


def test_guide_on_an_unconditional_run_is_a_one_line_error(tiny_run, capsys):
    assert cli.main(["guide", str(tiny_run.path), "--accuracy", "90"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unconditional denoiser" in err and "\n" not in err
    with pytest.raises(RunError, match="unconditional"):
        guide(tiny_run, [90.0])


def test_the_guided_page_asks_and_shows_what_came_out(guided_run, monkeypatch):
    """AppTest: the page's achieved median is that of the models `Guide` samples for the same request."""
    from conftest import REPO
    from streamlit.testing.v1 import AppTest

    from pdiff.judge import metrics

    monkeypatch.setenv("PDIFF_RUNS", str(guided_run.path.parent))
    monkeypatch.setenv("PDIFF_AUTOSTART", "0")
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=120)
    at.query_params["run"] = guided_run.name
    at.run()
    at.switch_page("views/guided.py").run()
    assert not at.exception and not at.error
    at.slider(key="guided_target").set_value(55.0)
    at.slider(key="guided_scale").set_value(2.0)
    at.number_input(key="guided_models").set_value(10)
    at.run()
    assert not at.exception and not at.error
    shown = {m.label: m.value for m in at.metric}
    _, evaluation = Guide(guided_run, load_run_config(guided_run), torch.device("cpu")).sample(55.0, 10, 2.0)
    assert shown["Achieved median"] == f"{metrics.median(evaluation.accuracy):.2f}%"
    assert len(at.get("plotly_chart")) == 3  # the ruler, the accuracies, the latent map
    assert any(m.value.startswith("**On the ruler**") for m in at.markdown)
    assert shown["Novelty (median)"] == f"{1 - metrics.median(_max_iou(guided_run, evaluation)):.3f}"
    at.slider(key="guided_target").set_value(100.0).run()  # far above the zoo's best: said so
    assert any("outside the zoo's range" in w.value for w in at.warning)
    at.slider(key="guided_scale").set_value(0.0).run()  # the request is ignored: no extrapolation warning
    assert not at.warning and any("unconditional" in i.value for i in at.info)
    start = time.perf_counter()
    at.slider(key="guided_scale").set_value(2.0).run()  # asked before: read from the run folder
    assert time.perf_counter() - start < 2.0 and not at.exception
    assert at.get("download_button")[0].label == "Download these models"


def _max_iou(run, evaluation) -> torch.Tensor:
    from pdiff.judge.metrics import max_iou_to_zoo, wrong_sets_iou
    from pdiff.pipeline.loaders import load_evaluation

    zoo = load_evaluation(run)
    return max_iou_to_zoo(wrong_sets_iou(evaluation.predictions, zoo.labels, zoo.predictions["zoo"]))[0]


def test_guided_requests_are_kept_in_the_run_folder(guided_run, tmp_path):
    """A request is sampled and measured once; the same request again is a file read (safetensors + JSON,
    written atomically); another seed, or a retrained denoiser, is a new answer."""
    import os

    from safetensors.torch import load

    from pdiff.core.rundir import RunDir
    from pdiff.guide import CACHE_DIR, GuidedRequest, guided_bytes, guided_samples
    from pdiff.judge import metrics, ruler

    run = RunDir(tmp_path / "run")
    shutil.copytree(guided_run.path, run.path, ignore=shutil.ignore_patterns(CACHE_DIR))  # no earlier answers
    built = []

    def helper() -> Guide:
        built.append(1)
        return Guide(run, load_run_config(run), torch.device("cpu"))

    request = GuidedRequest(55.0, 2.0, 10, 0)
    first, cached = guided_samples(run, request, helper)
    assert not cached and built == [1]
    assert [p.suffix for p in (run.path / CACHE_DIR).iterdir()] == [".safetensors"]  # no temporary file left
    second, cached = guided_samples(run, request, helper)
    assert cached and built == [1]
    for key, value in first.tensors.items():
        torch.testing.assert_close(second.tensors[key], value, rtol=0, atol=0)
    assert second.summary == first.summary
    achieved = helper().request(55.0, 10, 2.0)
    assert first.summary["achieved_median"] == pytest.approx(achieved.achieved_median)
    assert first.summary["novelty_median"] == pytest.approx(1 - achieved.max_iou_median)
    assert first.summary["max_iou_median"] == pytest.approx(metrics.median(first.tensors["max_iou"]))
    places = first.summary["ruler"]
    assert places is not None and set(places) == set(ruler.MEASURES)  # this run has copies and fresh SGD
    built.clear()
    guided_samples(run, GuidedRequest(55.0, 2.0, 10, 1), helper)  # another seed: another answer
    assert built == [1]
    os.utime(run.file("denoiser.safetensors"))  # the denoiser rewritten: never an old answer
    guided_samples(run, request, helper)
    assert built == [1, 1]
    loaded = load(guided_bytes(first, "run"))
    torch.testing.assert_close(loaded["params"], first.tensors["params"])
    assert set(loaded) == {"params", "accuracy", "latents", "max_iou", "nn_distance"}


def test_the_guided_page_on_an_unconditional_run_explains(tiny_run, monkeypatch):
    from conftest import REPO
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PDIFF_RUNS", str(tiny_run.path.parent))
    monkeypatch.setenv("PDIFF_AUTOSTART", "0")
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=120)
    at.query_params["run"] = tiny_run.name
    at.run()
    at.switch_page("views/guided.py").run()
    assert not at.exception
    assert any("mnist1d-guided" in i.value for i in at.info)
