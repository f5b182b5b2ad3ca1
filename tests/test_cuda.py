"""The CUDA path: the same answers on a GPU as on the CPU. Skipped where CUDA is absent (CI);
`benchmarks/gpu_check.sh` runs these on a machine with an NVIDIA GPU."""
from __future__ import annotations

import pytest
import torch
from conftest import micro_config

from pdiff.core.config import DataConfig
from pdiff.generator.diffusion import GaussianDiffusion
from pdiff.generator.samplers import DDIMSampler, DDPMSampler, sample_loop
from pdiff.judge.evaluate import BatchedEvaluator
from pdiff.zoo.classifiers import build_classifier
from pdiff.zoo.datasets import load_dataset
from pdiff.zoo.params import layout_of, read_vector, select_target

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig())


def _model_and_vectors(arch: str, target: str, n: int, digits):
    torch.manual_seed(0)
    model = build_classifier(arch, digits.input_shape, digits.num_classes)
    with torch.no_grad():
        model.train()(digits.x_train[:256])
    model.eval()
    layout = layout_of(model, select_target(model, target))
    base = read_vector(model, layout)
    vectors = base + 0.3 * base.abs().mean() * torch.randn(n, layout.dim, generator=torch.Generator().manual_seed(1))
    return model, layout, vectors


@pytest.mark.parametrize("arch,target", [("cnn", "last-norm:1,head.*"), ("cnn", "all"), ("mlp", "head.*"),
                                         ("cnn1d", "last-norm:1,head.*")])
def test_cuda_evaluation_predicts_like_the_cpu(digits, arch, target):
    if arch == "cnn1d":
        pytest.importorskip("mnist1d")
        data = load_dataset(DataConfig(name="mnist1d", root="data"))
    else:
        data = digits
    model, layout, vectors = _model_and_vectors(arch, target, 64, data)
    cpu = BatchedEvaluator(model, layout, data.x_test, data.y_test).evaluate(vectors)
    gpu = BatchedEvaluator(model.to(CUDA), layout, data.x_test, data.y_test).evaluate(vectors)
    differ = (cpu.predictions != gpu.predictions).float().mean().item()
    assert differ < 1e-3, differ  # float32 reductions differ in order; argmax ties are rare
    torch.testing.assert_close(gpu.mean_probs, cpu.mean_probs, atol=1e-3, rtol=1e-3)


def test_bf16_evaluation_mostly_agrees_with_fp32(digits):
    model, layout, vectors = _model_and_vectors("cnn", "last-norm:1,head.*", 64, digits)
    model = model.to(CUDA)
    fp32 = BatchedEvaluator(model, layout, digits.x_test, digits.y_test).evaluate(vectors)
    bf16 = BatchedEvaluator(model, layout, digits.x_test, digits.y_test, precision="bf16").evaluate(vectors)
    assert (fp32.predictions == bf16.predictions).float().mean().item() > 0.98
    assert (fp32.accuracy - bf16.accuracy).abs().max().item() < 2.0


def test_auto_chunk_uses_free_gpu_memory(digits):
    model, layout, _ = _model_and_vectors("cnn", "last-norm:1,head.*", 8, digits)
    evaluator = BatchedEvaluator(model.to(CUDA), layout, digits.x_test, digits.y_test)
    assert 64 < evaluator.chunk_size <= 4096  # a GPU holds far more than a CPU pass's few models


def test_deterministic_ddim_on_cuda_follows_the_cpu():
    process = GaussianDiffusion(1000)
    model = lambda x, t: 0.3 * x
    noise = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    cpu = sample_loop(model, DDIMSampler(process, 50), (16, 8), noise=noise)
    gpu = sample_loop(model, DDIMSampler(process.to(CUDA), 50), (16, 8), device=CUDA, noise=noise)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)
    seeded = sample_loop(model, DDPMSampler(process.to(CUDA)), (4, 8), torch.Generator(device=CUDA).manual_seed(1),
                         device=CUDA)
    again = sample_loop(model, DDPMSampler(process.to(CUDA)), (4, 8), torch.Generator(device=CUDA).manual_seed(1),
                        device=CUDA)
    assert torch.equal(seeded, again)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_micro_run_on_cuda_finishes_and_learns(tmp_path, precision):
    from pdiff.pipeline.report import metrics_table
    from pdiff.pipeline.runner import run_pipeline

    config = micro_config(**{"device": "cuda", "precision": precision, "classifier.epochs": 5,
                             "autoencoder.steps": 100, "diffusion.steps": 100})
    run = run_pipeline(tmp_path / precision, config)
    assert run.manifest()["device"].startswith("cuda")
    card = metrics_table(run).rows
    assert card["zoo"]["median"] > 50 and card["generated"]["median"] > 30  # chance is 10 %
