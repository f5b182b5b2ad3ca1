"""Classifier registry. A factory maps (input shape, number of classes) to an `nn.Module`.

Built-in models are `nn.Sequential` with named stages. That matters for evaluation: every
model in a zoo shares the parameters outside the target, so the stages before the first
target stage run on the test set once, and only the rest is run per model (see evaluate.py).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import nn

from ..core.registry import CLASSIFIERS

Factory = Callable[[tuple[int, ...], int], nn.Module]


def register_classifier(name: str, factory: Factory) -> None:
    """Make `name` usable as `classifier.arch`; `factory(input_shape, num_classes)` builds it."""
    CLASSIFIERS.register(name, factory)


def build_classifier(arch: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The classifier `arch` names; an unknown name is a one-line ConfigError listing the valid ones."""
    return CLASSIFIERS.get(arch)(tuple(input_shape), num_classes)


def small_cnn(input_shape: tuple[int, ...], num_classes: int, width: int = 16) -> nn.Sequential:
    """Two conv+BN blocks, global average pooling, linear head (about 5k parameters on digits)."""
    channels = input_shape[0]
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(channels, width, 3, padding=1, bias=False),
        bn1=nn.BatchNorm2d(width),
        relu1=nn.ReLU(),
        conv2=nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
        bn2=nn.BatchNorm2d(2 * width),
        relu2=nn.ReLU(),
        pool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
        head=nn.Linear(2 * width, num_classes),
    ))


def cnn1d(input_shape: tuple[int, ...], num_classes: int, width: int = 16) -> nn.Sequential:
    """Three strided 1-D conv+BN blocks, global average pooling, linear head (MNIST-1D signals).

    Built like `small_cnn` so the default target `last-norm:1,head.*` (bn3 + head: 394 floats at
    width 16) sits in the last stages and evaluation shares everything before bn3. Pooling keeps
    the head small and suits MNIST-1D, whose digits are translated along the signal.
    """
    channels = input_shape[0]
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv1d(channels, width, 5, padding=2, bias=False),
        bn1=nn.BatchNorm1d(width),
        relu1=nn.ReLU(),
        conv2=nn.Conv1d(width, 2 * width, 5, stride=2, padding=2, bias=False),
        bn2=nn.BatchNorm1d(2 * width),
        relu2=nn.ReLU(),
        conv3=nn.Conv1d(2 * width, 2 * width, 5, stride=2, padding=2, bias=False),
        bn3=nn.BatchNorm1d(2 * width),
        relu3=nn.ReLU(),
        pool=nn.AdaptiveAvgPool1d(1),
        flatten=nn.Flatten(),
        head=nn.Linear(2 * width, num_classes),
    ))


def mlp(input_shape: tuple[int, ...], num_classes: int, hidden: int = 64) -> nn.Sequential:
    """Flatten, one hidden layer with BatchNorm, linear head."""
    features = 1
    for size in input_shape:
        features *= size
    return nn.Sequential(OrderedDict(
        flatten=nn.Flatten(),
        fc1=nn.Linear(features, hidden),
        bn1=nn.BatchNorm1d(hidden),
        relu1=nn.ReLU(),
        head=nn.Linear(hidden, num_classes),
    ))
