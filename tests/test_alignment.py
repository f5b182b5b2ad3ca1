"""Neuron alignment (Git Re-Basin weight matching): permuted copies keep their function and are
recovered exactly; independent models get closer; partial targets never move the frozen rest."""
from __future__ import annotations

import ast
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from pdiff.zoo import alignment as al

MODULE = Path(al.__file__)


# --------------------------------------------------------------------------- the project's classifiers (copies)


def small_cnn(input_shape, num_classes, width=16):
    channels = input_shape[0]
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(channels, width, 3, padding=1, bias=False), bn1=nn.BatchNorm2d(width), relu1=nn.ReLU(),
        conv2=nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False), bn2=nn.BatchNorm2d(2 * width),
        relu2=nn.ReLU(), pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), head=nn.Linear(2 * width, num_classes)))


def mlp(input_shape, num_classes, hidden=64):
    features = 1
    for size in input_shape:
        features *= size
    return nn.Sequential(OrderedDict(flatten=nn.Flatten(), fc1=nn.Linear(features, hidden), bn1=nn.BatchNorm1d(hidden),
                                     relu1=nn.ReLU(), head=nn.Linear(hidden, num_classes)))


def cnn1d(input_shape, num_classes, width=16):
    channels = input_shape[0]
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv1d(channels, width, 5, padding=2, bias=False), bn1=nn.BatchNorm1d(width), relu1=nn.ReLU(),
        conv2=nn.Conv1d(width, 2 * width, 5, stride=2, padding=2, bias=False), bn2=nn.BatchNorm1d(2 * width),
        relu2=nn.ReLU(),
        conv3=nn.Conv1d(2 * width, 2 * width, 5, stride=2, padding=2, bias=False), bn3=nn.BatchNorm1d(2 * width),
        relu3=nn.ReLU(), pool=nn.AdaptiveAvgPool1d(1), flatten=nn.Flatten(), head=nn.Linear(2 * width, num_classes)))


def mlp2(input_shape, num_classes, hidden=32):
    """Two hidden layers: BatchNorm in the first, LayerNorm + GELU + Dropout in the second."""
    features = 1
    for size in input_shape:
        features *= size
    return nn.Sequential(OrderedDict(
        flatten=nn.Flatten(), fc1=nn.Linear(features, hidden), bn1=nn.BatchNorm1d(hidden), relu1=nn.ReLU(),
        fc2=nn.Linear(hidden, hidden), ln2=nn.LayerNorm(hidden), act2=nn.GELU(), drop=nn.Dropout(0.1),
        head=nn.Linear(hidden, num_classes)))


def spatial_flatten_cnn(input_shape, num_classes, width=8):
    """Flatten over 2x2 positions (channel-to-feature expansion), nested Sequential, BN1d on the features."""
    return nn.Sequential(OrderedDict(
        block=nn.Sequential(nn.Conv2d(input_shape[0], width, 3, padding=1), nn.BatchNorm2d(width), nn.SiLU()),
        pool=nn.AdaptiveMaxPool2d(2), flatten=nn.Flatten(), bn=nn.BatchNorm1d(4 * width),
        fc=nn.Linear(4 * width, 16), act=nn.Tanh(), head=nn.Linear(16, num_classes)))


MODELS = {  # name -> (factory, input shape, groups)
    "small_cnn": (small_cnn, (1, 8, 8), {"conv1": 16, "conv2": 32}),
    "mlp": (mlp, (1, 8, 8), {"fc1": 64}),
    "mlp2": (mlp2, (1, 8, 8), {"fc1": 32, "fc2": 32}),
    "cnn1d": (cnn1d, (1, 40), {"conv1": 16, "conv2": 32, "conv3": 32}),
    "spatial_flatten_cnn": (spatial_flatten_cnn, (1, 8, 8), {"block.0": 8, "fc": 16}),
}


@torch.no_grad()
def nontrivial(model: nn.Module, seed: int, dtype=torch.float64) -> nn.Module:
    """Random weights, norm affines and running statistics (fresh BN would be an identity), eval mode."""
    g = torch.Generator().manual_seed(seed)
    model = model.to(dtype)
    for name, p in model.named_parameters():
        p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) * (0.3 if p.dim() > 1 else 0.5)
                + (1.0 if name.endswith("weight") and p.dim() == 1 else 0.0))
    for name, b in model.named_buffers():
        if name.endswith("running_mean"):
            b.copy_(torch.randn(b.shape, generator=g, dtype=dtype))
        elif name.endswith("running_var"):
            b.copy_(torch.rand(b.shape, generator=g, dtype=dtype) + 0.5)
        elif name.endswith("num_batches_tracked"):
            b.fill_(7)
    return model.eval()


def build(name: str, seed: int = 0, dtype=torch.float64) -> tuple[nn.Module, torch.Tensor]:
    factory, shape, _ = MODELS[name]
    torch.manual_seed(seed)
    model = nontrivial(factory(shape, 10), seed, dtype)
    x = torch.randn(32, *shape, generator=torch.Generator().manual_seed(100 + seed), dtype=dtype)
    return model, x


def run(model: nn.Module, state: dict, x: torch.Tensor) -> torch.Tensor:
    model.load_state_dict(state)
    with torch.no_grad():
        return model(x)


def norm(state: dict) -> float:
    return al.state_distance(state, {k: torch.zeros_like(v) for k, v in state.items()})


# --------------------------------------------------------------------------- the spec


@pytest.mark.parametrize("name", list(MODELS))
def test_spec_groups_are_the_hidden_layers(name):
    factory, shape, groups = MODELS[name]
    model = factory(shape, 10)
    spec = al.permutation_spec(model)
    assert spec.groups == groups
    assert list(spec.tensors) == list(model.state_dict())
    head_in = spec.tensors["head.weight"].axes
    assert head_in[0] is None and head_in[1] == list(groups)[-1]  # classes stay, last hidden units move
    first = next(t for t in spec.tensors.values() if len(t.axes) > 1)
    assert first.axes[1] is None  # the input features are never permuted


def test_spec_records_running_stats_and_the_flatten_expansion():
    spec = al.permutation_spec(small_cnn((1, 8, 8), 10))
    assert spec.tensors["bn2.running_var"].axes == ("conv2",)
    assert spec.tensors["bn2.num_batches_tracked"].axes == ()
    expanded = al.permutation_spec(spatial_flatten_cnn((1, 8, 8), 10))
    assert expanded.tensors["fc.weight"].view == (16, 8, 4)  # (out, channels, positions)
    assert expanded.tensors["fc.weight"].axes == ("fc", "block.0", None)
    assert expanded.tensors["bn.running_mean"].axes == ("block.0", None)


# --------------------------------------------------------------------------- permuted copies


@pytest.mark.parametrize("name", list(MODELS))
def test_permuted_copy_same_function_and_recovered(name):
    model, x = build(name)
    spec = al.permutation_spec(model)
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    out = run(model, ref, x)
    pi = al.random_permutations(spec, torch.Generator().manual_seed(1))
    permuted = al.apply_permutation(ref, spec, pi)
    torch.testing.assert_close(run(model, permuted, x), out, rtol=1e-12, atol=1e-12)
    scale = norm(ref)
    assert al.state_distance(ref, permuted) > 0.1 * scale
    perms = al.weight_matching(ref, permuted, spec)
    assert all(torch.equal(perms[g], torch.argsort(pi[g])) for g in spec.groups)  # the inverse
    aligned = al.apply_permutation(permuted, spec, perms)
    assert al.state_distance(ref, aligned) <= 1e-5 * scale
    assert al.aligned_distance(ref, permuted, spec) <= 1e-5 * scale
    assert all(torch.equal(aligned[k], ref[k]) for k in ref if k.endswith("num_batches_tracked"))


def test_reference_is_a_fixed_point_and_apply_unapply_is_exact():
    model, _ = build("small_cnn")
    spec = al.permutation_spec(model)
    ref = model.state_dict()
    perms = al.weight_matching(ref, ref, spec)
    assert all(torch.equal(p, torch.arange(len(p))) for p in perms.values())
    (same,) = al.align_to(ref, [ref], model)
    assert all(torch.equal(same[k], ref[k]) for k in ref)
    pi = al.random_permutations(spec, torch.Generator().manual_seed(3))
    moved = al.apply_permutation(ref, spec, pi)
    back = al.apply_permutation(moved, spec, al.invert(pi))
    for key in ref:
        assert back[key].dtype == ref[key].dtype and back[key].shape == ref[key].shape
        assert torch.equal(back[key], ref[key]), key
    assert back["bn1.weight"].data_ptr() != ref["bn1.weight"].data_ptr()  # a new state, not views


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float32_and_float64(dtype):
    model, x = build("cnn1d", seed=4, dtype=dtype)
    spec = al.permutation_spec(model)
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    pi = al.random_permutations(spec, torch.Generator().manual_seed(5))
    permuted = al.apply_permutation(ref, spec, pi)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(run(model, permuted, x), run(model, ref, x), **tol)
    (aligned,) = al.align_to(ref, [permuted], spec)
    assert all(aligned[k].dtype == ref[k].dtype for k in ref)
    assert all(torch.equal(aligned[k], ref[k]) for k in ref)  # values only move: exact in any dtype


def test_many_matches_each_alone_and_is_deterministic():
    model, _ = build("small_cnn")
    spec = al.permutation_spec(model)
    ref = model.state_dict()
    others = [build("small_cnn", seed=s)[0].state_dict() for s in (1, 2, 3)]
    batch = al.weight_matching_many(ref, others, spec, seed=7)
    for other, together in zip(others, batch):
        alone = al.weight_matching(ref, other, spec, seed=7)
        assert all(torch.equal(alone[g], together[g]) for g in spec.groups)
    again = al.weight_matching_many(ref, others, spec, seed=7)
    assert all(torch.equal(a[g], b[g]) for a, b in zip(batch, again) for g in spec.groups)


# --------------------------------------------------------------------------- independently trained models


def train_mlp2(seed: int, x: torch.Tensor, y: torch.Tensor, steps: int = 300) -> nn.Module:
    torch.manual_seed(seed)
    model = mlp2((64,), 10, hidden=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(x), (64,), generator=g)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_independent_models_get_closer_and_keep_their_function():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    a, b = train_mlp2(0, x, y), train_mlp2(1, x, y)
    for model in (a, b):
        assert (model(x).argmax(1) == y).float().mean() > 0.9  # really trained
    spec = al.permutation_spec(a)
    sa, sb = a.state_dict(), b.state_dict()
    perms = al.weight_matching(sa, sb, spec)
    assert any(not torch.equal(p, torch.arange(len(p))) for p in perms.values())
    aligned = al.apply_permutation(sb, spec, perms)
    before, after = al.state_distance(sa, sb), al.state_distance(sa, aligned)
    assert after < before
    assert al.aligned_distance(sa, sb, spec) == pytest.approx(after)
    with torch.no_grad():
        out = b(x)
        torch.testing.assert_close(run(b, aligned, x), out, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- refusals


class BasicBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x)


shared = nn.Linear(8, 8)
REFUSED = {
    "residual": (nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 8, 3), layer1=nn.Sequential(BasicBlock(8)),
                                           pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), head=nn.Linear(8, 2))),
                 "module 'layer1.0' (BasicBlock) is not a supported layer"),
    "attention": (nn.Sequential(nn.Linear(4, 8), nn.MultiheadAttention(8, 2), nn.Linear(8, 2)),
                  "module '1' (MultiheadAttention) is not a supported layer"),
    "custom root": (Net(), "module '<model>' (Net) is not a supported layer"),
    "grouped conv": (nn.Sequential(nn.Conv2d(2, 8, 3), nn.Conv2d(8, 8, 3, groups=2), nn.Conv2d(8, 2, 1)),
                     "module '1' (Conv2d) has groups=2"),
    "layer norm over space": (nn.Sequential(nn.Conv1d(1, 8, 3), nn.LayerNorm(8), nn.Conv1d(8, 2, 1)),
                              "module '1' (LayerNorm) normalizes over the last spatial axis"),
    "linear over space": (nn.Sequential(nn.Conv1d(1, 8, 3), nn.Linear(8, 8), nn.Linear(8, 2)),
                          "module '1' (Linear) acts on the last spatial axis"),
    "shared weights": (nn.Sequential(nn.Linear(8, 8), shared, nn.ReLU(), shared, nn.Linear(8, 2)),
                       "module '3' (Linear) appears twice"),
    "softmax inside": (nn.Sequential(nn.Linear(4, 8), nn.Softmax(dim=1), nn.Linear(8, 2)),
                       "module '1' (Softmax) mixes hidden units"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_unsupported_models_are_refused_in_one_line(case):
    model, expected = REFUSED[case]
    with pytest.raises(ValueError) as info:
        al.permutation_spec(model)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("cannot align: ") and expected in message, message
    assert "alignment supports Linear, Conv1d/2d" in message


# --------------------------------------------------------------------------- partial targets


LAST_NORM_HEAD = {"small_cnn": ["bn2.weight", "bn2.bias", "head.weight", "head.bias"],
                  "cnn1d": ["bn3.weight", "bn3.bias", "head.weight", "head.bias"]}


@pytest.mark.parametrize("name", list(LAST_NORM_HEAD))
def test_last_norm_and_head_target_moves_nothing(name):
    model, _ = build(name)
    spec = al.permutation_spec(model)
    target = LAST_NORM_HEAD[name]
    assert al.permutable_groups(spec, target) == ()
    blocked = al.blocked_groups(spec, target)
    last = list(spec.groups)[-1]
    assert f"{last}.weight" in blocked[last] and set(blocked) == set(spec.groups)
    ref = model.state_dict()
    pi = al.random_permutations(spec, torch.Generator().manual_seed(2))
    others = [al.apply_permutation(ref, spec, pi), build(name, seed=9)[0].state_dict()]
    # flat vectors of the target, as pdiff stores a zoo: nothing can move, so they come back as they were
    layout = [(k, tuple(ref[k].shape)) for k in target]
    vectors = torch.stack([torch.cat([o[k].reshape(-1) for k in target]) for o in others])
    reference = torch.cat([ref[k].reshape(-1) for k in target])
    assert torch.equal(al.align_to(reference, vectors, model, layout=layout), vectors)
    # full states with only the target trainable: the frozen prefix (and everything else) untouched
    for before, after in zip(others, al.align_to(ref, others, spec, trainable=target)):
        assert all(torch.equal(before[k], after[k]) for k in before)
    # partial states cannot be moved by a group that reaches into the frozen rest
    partial = {k: ref[k] for k in target}
    with pytest.raises(ValueError, match="not in the state"):
        al.apply_permutation(partial, spec, pi)
    with pytest.raises(ValueError, match="cannot move"):
        al.weight_matching(partial, partial, spec, groups=[last])


def test_target_of_the_last_hidden_layer_moves_only_that_group():
    model, _ = build("mlp2")
    spec = al.permutation_spec(model)
    target = ["fc2.weight", "fc2.bias", "ln2.weight", "ln2.bias", "head.weight", "head.bias"]
    assert al.permutable_groups(spec, target) == ("fc2",)
    assert al.blocked_groups(spec, target) == {"fc1": ("fc1.weight", "fc1.bias", "bn1.weight", "bn1.bias",
                                                       "bn1.running_mean", "bn1.running_var")}
    ref = model.state_dict()
    pi = al.random_permutations(spec, torch.Generator().manual_seed(4), groups=["fc2"])
    moved = al.apply_permutation(ref, spec, pi)
    assert torch.equal(moved["fc1.weight"], ref["fc1.weight"])
    layout = [(k, tuple(ref[k].shape)) for k in target]
    flat = torch.cat([moved[k].reshape(-1) for k in target])[None]
    reference = torch.cat([ref[k].reshape(-1) for k in target])
    assert torch.equal(al.align_to(reference, flat, spec, layout=layout)[0], reference)


def test_whole_network_target_uses_every_group():
    model, _ = build("cnn1d")
    spec = al.permutation_spec(model)
    assert al.permutable_groups(spec, model.state_dict()) == tuple(spec.groups)
    # parameters only: BN running statistics shared by every model block their groups
    params = [n for n, _ in model.named_parameters()]
    assert al.permutable_groups(spec, params) == ()
    assert "bn1.running_mean" in al.blocked_groups(spec, params)["conv1"]
    # without running statistics (what pdiff's multi-seed zoos require) parameters are everything
    no_stats = mlp2((64,), 10)
    no_stats.bn1 = nn.BatchNorm1d(32, track_running_stats=False)
    spec = al.permutation_spec(no_stats)
    assert al.permutable_groups(spec, [n for n, _ in no_stats.named_parameters()]) == ("fc1", "fc2")


def test_flat_vectors_align_like_state_dicts():
    model, _ = build("mlp2")
    model.bn1 = nn.BatchNorm1d(32, track_running_stats=False)  # a vector of the parameters is then everything
    spec = al.permutation_spec(model)
    states = [{k: v.clone() for k, v in nontrivial(model, s).state_dict().items()} for s in range(4)]
    names = [n for n, _ in model.named_parameters()]
    layout = [(n, tuple(states[0][n].shape)) for n in names]

    def flat(s):
        return torch.cat([s[n].reshape(-1) for n in names])

    by_dicts = al.align_to(states[0], states[1:], spec)
    by_vectors = al.align_to(flat(states[0]), torch.stack([flat(s) for s in states[1:]]), model, layout=layout)
    assert by_vectors.dtype == torch.float64 and by_vectors.shape == (3, len(flat(states[0])))
    assert torch.equal(by_vectors, torch.stack([flat(s) for s in by_dicts]))
    assert any(not torch.equal(a, flat(s)) for a, s in zip(by_vectors, states[1:]))  # there was work to do


def test_a_run_moves_as_one_and_the_reference_run_stays():
    """align_runs: two runs of two checkpoints each, every run renumbered by one random permutation.
    Each run comes back by one permutation (its checkpoints keep their distance exactly), the
    reference's own run is untouched, and independent checkpoints (-1) are matched one by one."""
    model, _ = build("mlp")
    spec = al.permutation_spec(model)
    names = list(model.state_dict())
    layout = [(n, tuple(model.state_dict()[n].shape)) for n in names if model.state_dict()[n].is_floating_point()]

    def flat(state):
        return torch.cat([state[n].reshape(-1) for n, _ in layout])

    g = torch.Generator().manual_seed(3)
    runs = []
    for seed in (1, 2):
        start = nontrivial(model, seed).state_dict()
        later = {k: v + 0.01 * torch.randn(v.shape, generator=g, dtype=v.dtype) if v.is_floating_point() else v
                 for k, v in start.items()}
        perm = al.random_permutations(spec, g)
        runs.append([flat(al.apply_permutation(s, spec, perm)) for s in (start, later)])
    vectors = torch.stack([*runs[0], *runs[1], runs[1][1]])  # the last: run 1's end again, matched on its own
    ids = torch.tensor([0, 0, 1, 1, -1])
    rep = al.run_representatives(ids)
    assert rep.tolist() == [1, 1, 3, 3, 4]
    out = al.align_runs(vectors[rep[0]], vectors, ids, spec, layout)
    torch.testing.assert_close(out[:2], vectors[:2], rtol=0, atol=0)  # the reference's run stays
    for a, b in ((0, 1), (2, 3)):  # within a run, distances are kept exactly
        assert torch.isclose((out[a] - out[b]).norm(), (vectors[a] - vectors[b]).norm(), rtol=1e-12)
    torch.testing.assert_close(out[4], out[3])  # the run's permutation is the one its last checkpoint gets
    assert (out[3] - out[1]).norm() < (vectors[3] - vectors[1]).norm()  # and it brings the run closer


# --------------------------------------------------------------------------- devices and imports


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    model, _ = build("small_cnn")
    spec = al.permutation_spec(model)
    ref = model.state_dict()
    others = [build("small_cnn", seed=s)[0].state_dict() for s in (1, 2)]
    pi = al.random_permutations(spec, torch.Generator().manual_seed(1))
    others.append(al.apply_permutation(ref, spec, pi))
    cuda = [{k: v.cuda() for k, v in s.items()} for s in others]
    on_cpu = al.align_to(ref, others, spec)
    on_gpu = al.align_to({k: v.cuda() for k, v in ref.items()}, cuda, spec)
    assert all(v.is_cuda for v in on_gpu[0].values())
    assert all(torch.equal(on_gpu[-1][k].cpu(), ref[k]) for k in ref)
    for a, b in zip(on_cpu[:2], on_gpu[:2]):  # float64 similarities: the same assignments in practice
        assert al.state_distance(a, {k: v.cpu() for k, v in b.items()}) == pytest.approx(0.0, abs=1e-9)


def test_module_imports_only_stdlib_numpy_scipy_torch():
    tree = ast.parse(MODULE.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "collections", "dataclasses", "typing", "numpy", "scipy", "torch"}, roots
    package = ast.parse((MODULE.parent / "__init__.py").read_text())  # the zoo wing's __init__ imports nothing
    assert not [n for n in ast.walk(package) if isinstance(n, (ast.Import, ast.ImportFrom))]
