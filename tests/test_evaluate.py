"""Batched evaluation (shared prefix + batched suffix stages) against the copy-each-vector loop."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from pdiff.core.config import DataConfig
from pdiff.judge.evaluate import BatchedEvaluator, evaluate_loop, split_shared_prefix
from pdiff.judge.metrics import ensemble_accuracy
from pdiff.zoo.classifiers import build_classifier
from pdiff.zoo.datasets import load_dataset
from pdiff.zoo.params import layout_of, read_vector, select_target, write_vector


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig())


def _model_and_vectors(arch: str, target_spec: str, n: int, digits, seed: int = 0):
    """An untrained classifier with non-trivial BN statistics, and n target vectors around its own."""
    torch.manual_seed(seed)
    model = build_classifier(arch, digits.input_shape, digits.num_classes)
    with torch.no_grad():  # one training-mode pass gives BN running stats that are not 0/1
        model.train()(digits.x_train[:256])
    model.eval()
    layout = layout_of(model, select_target(model, target_spec))
    base = read_vector(model, layout)
    g = torch.Generator().manual_seed(seed + 1)
    vectors = base + base.abs().mean() * torch.randn(n, layout.dim, generator=g)
    return model, layout, vectors


@pytest.mark.parametrize("arch,target", [("cnn", "last-norm:1,head.*"), ("mlp", "last-norm:1,head.*"),
                                         ("cnn", "all"), ("mlp", "head.*")])
@pytest.mark.parametrize("chunk_size,batch_size", [(0, 0), (7, 0), (0, 100), (5, 128), (1, 539)])
def test_batched_equals_reference_loop(digits, arch, target, chunk_size, batch_size):
    model, layout, vectors = _model_and_vectors(arch, target, 23, digits)
    ref_acc, ref_pred = evaluate_loop(model, layout, vectors, digits.x_test, digits.y_test)
    evaluator = BatchedEvaluator(model, layout, digits.x_test, digits.y_test, chunk_size, batch_size)
    result = evaluator.evaluate(vectors)
    assert result.predictions.dtype == torch.int16 and result.predictions.shape == (23, len(digits.y_test))
    assert torch.equal(result.predictions, ref_pred)
    assert torch.equal(result.accuracy, ref_acc)
    assert ref_acc.std() > 0  # the vectors really differ, so a mix-up between models would show


def test_accuracy_and_ensemble_probabilities(digits):
    model, layout, vectors = _model_and_vectors("cnn", "last-norm:1,head.*", 9, digits, seed=3)
    whole = BatchedEvaluator(model, layout, digits.x_test, digits.y_test).evaluate(vectors)
    split = BatchedEvaluator(model, layout, digits.x_test, digits.y_test, chunk_size=2, batch_size=64).evaluate(vectors)
    labels = digits.y_test
    expected_acc = (whole.predictions.long() == labels).float().mean(1) * 100
    assert_close(whole.accuracy, expected_acc)
    # mean_probs is the average softmax over models, whatever the chunking
    probs = []
    for v in vectors:
        write_vector(model, layout, v)
        with torch.no_grad():
            probs.append(model(digits.x_test).softmax(-1))
    assert_close(whole.mean_probs, torch.stack(probs).mean(0), atol=1e-5, rtol=1e-5)
    assert_close(split.mean_probs, whole.mean_probs, atol=1e-5, rtol=1e-5)
    assert_close(whole.mean_probs.sum(-1), torch.ones(len(labels)))
    assert ensemble_accuracy(whole.mean_probs, labels) == pytest.approx(
        (whole.mean_probs.argmax(-1) == labels).float().mean().item() * 100)


def test_progress_reports_every_chunk(digits):
    model, layout, vectors = _model_and_vectors("mlp", "head.*", 10, digits)
    calls = []
    BatchedEvaluator(model, layout, digits.x_test, digits.y_test, chunk_size=4).evaluate(
        vectors, lambda done, total, info: calls.append((done, total)))
    assert calls == [(4, 10), (8, 10), (10, 10)]


def test_split_shared_prefix_starts_suffix_at_first_target_child():
    cnn = build_classifier("cnn", (1, 8, 8), 10).eval()
    prefix, suffix = split_shared_prefix(cnn, ["bn2.weight", "bn2.bias", "head.weight", "head.bias"])
    assert prefix.stages == (cnn.conv1, cnn.bn1, cnn.relu1, cnn.conv2)
    assert suffix.stages[0] is cnn.bn2 and suffix.stages[-1] is cnn.head
    # the two halves compose to the whole network
    x = torch.randn(4, 1, 8, 8)
    assert_close(suffix(prefix(x)), cnn(x))
    # the suffix's parameters keep the model's names (under `root.`), so targets can be swapped in
    assert {"root.bn2.weight", "root.head.bias"} <= {n for n, _ in suffix.named_parameters()}
    prefix, suffix = split_shared_prefix(cnn, ["head.weight"])
    assert suffix.stages == (cnn.head,)
    prefix, suffix = split_shared_prefix(cnn, ["conv1.weight", "head.bias"])
    assert prefix.stages == () and len(suffix.stages) == len(cnn)


def test_split_unrolls_nested_sequentials():
    """A target inside the second block of a nested Sequential leaves the first block shared."""
    net = nn.Sequential(OrderedDict(
        stem=nn.Linear(4, 6),
        layer=nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Sequential(nn.Linear(6, 6), nn.Tanh())),
        head=nn.Linear(6, 3),
    )).eval()
    prefix, suffix = split_shared_prefix(net, ["layer.2.0.weight"])
    assert prefix.stages == (net.stem, net.layer[0], net.layer[1])
    assert suffix.stages == (net.layer[2][0], net.layer[2][1], net.head)
    x = torch.randn(5, 4)
    assert_close(suffix(prefix(x)), net(x))


def test_split_of_a_non_sequential_model_runs_everything_per_model():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(x)

    net = Net()
    prefix, suffix = split_shared_prefix(net, ["fc.weight"])
    assert prefix.stages == () and suffix.stages == (net,)
    x = torch.randn(2, 3)
    assert_close(suffix(prefix(x)), net(x))
