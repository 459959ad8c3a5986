"""``summary(model, input_shape)``: a network as a table of layers, output shapes and parameters.

It runs one forward pass on zeros with hooks on every module and keeps a row for each *leaf*
call, a module that ran without running a submodule (``Conv2d``, ``ReLU``, LeNet's
``PartialConv2d``...). A row holds the module's qualified name, its type, the shape of what it
returned and the number of parameters it holds (counted the first time it runs, so a module
used twice is not counted twice). Set beside a paper's table, it checks the table line by line.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from dlbook.models.lenet import LeNetSquash, PartialConv2d, RBFOutput, Subsampling

__all__ = ["LayerRow", "summary", "count_macs", "receptive_field_layers"]


class LayerRow(NamedTuple):
    """One line of :func:`summary`: a leaf module's call."""

    name: str  # qualified name in the model, e.g. "layer1.0.conv1"
    kind: str  # the module's class name, e.g. "Conv2d"
    output_shape: tuple  # shape of its output; a tuple of shapes if it returned several tensors
    num_params: int  # parameters it holds (0 when it ran before)


def _shape(output) -> tuple:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        return tuple(_shape(item) for item in output)
    return ()


def summary(model: nn.Module, input_shape, *, print_table: bool = True) -> list[LayerRow]:
    """Run ``model`` on zeros of ``input_shape``; list the leaf layers' outputs and parameters.

    The model runs in evaluation mode under ``torch.no_grad()`` (dropout off, batch norm on its
    running statistics, GoogLeNet without its auxiliary outputs) and gets its training flags
    back afterwards.

    Args:
        model: any ``torch.nn.Module``.
        input_shape: the full input shape, batch axis included, e.g. ``(1, 3, 224, 224)``.
        print_table: print the table and the total parameter count.
    Returns:
        The rows in the order the layers ran. The sum of ``num_params`` equals the model's
        total when every parameter belongs to a module that runs.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) < 1 or min(shape) < 1:
        raise ValueError(f"input_shape: expected positive sizes with the batch axis first, "
                         f"got {tuple(input_shape)!r}")
    names = {module: name for name, module in model.named_modules()}
    rows: list[LayerRow] = []
    stack: list[list] = []  # per running module: [module, ran_a_submodule]
    counted: set[int] = set()

    def before(module, args):
        if stack:
            stack[-1][1] = True  # the parent is not a leaf
        stack.append([module, False])

    def after(module, args, output):
        _, has_children_run = stack.pop()
        if has_children_run:
            return
        params = 0
        for p in module.parameters():
            if id(p) not in counted:
                counted.add(id(p))
                params += p.numel()
        rows.append(LayerRow(names[module] or type(module).__name__, type(module).__name__,
                             _shape(output), params))

    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(before))
        handles.append(module.register_forward_hook(after))
    _forward_on_zeros(model, shape, handles)
    if print_table:
        _print(rows, sum(p.numel() for p in model.parameters()))
    return rows



def _forward_on_zeros(model: nn.Module, shape: tuple[int, ...], handles: list) -> None:
    """One forward pass in eval mode on zeros of ``shape`` (the model's dtype), for the hooks
    in ``handles``; removes them and restores every module's training mode afterwards."""
    modes = {module: module.training for module in model.modules()}
    first = next(model.parameters(), None)
    dtype = first.dtype if first is not None else torch.get_default_dtype()
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(shape, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes.items():
            module.training = mode

def _print(rows: list[LayerRow], total: int) -> None:
    width = max([len("Layer (type)")] + [len(f"{r.name} ({r.kind})") for r in rows])
    print(f"{'Layer (type)':<{width}}  {'Output shape':<24}{'Param #':>14}")
    print("-" * (width + 40))
    for r in rows:
        label = f"{r.name} ({r.kind})"
        print(f"{label:<{width}}  {str(r.output_shape):<24}{r.num_params:>14,}")
    print("-" * (width + 40))
    print(f"Total parameters: {total:,}")



def count_macs(model: nn.Module, input_shape) -> int:
    """Multiply-adds of one forward pass of ``model`` on one input, in its convolutions and
    fully connected layers (the operations that hold nearly all of a network's arithmetic).

    A ``Conv2d`` producing F x OH x OW outputs from C input channels in g groups with a KH x KW
    kernel costs F * OH * OW * (C / g) * KH * KW; a ``Linear`` layer D_out * D_in; LeNet-5's
    partial C3 its weights times its positions, its RBF layer one (squared difference) per centre
    entry. Biases, activations, pooling (LeNet's subsampling included) and normalisation are not
    counted (the convention of the papers'
    and of torchvision's counts). The shapes come from one forward pass on zeros, as in
    :func:`summary`; ``input_shape`` includes the batch axis, and the count is per example.

    Raises:
        ValueError: for an input shape without a positive batch axis and sizes.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"input_shape: expected positive sizes with the batch axis first, "
                         f"got {tuple(input_shape)!r}")
    total = 0

    def count(module, args, output):
        nonlocal total
        per_example = output.numel() // output.shape[0]  # F * OH * OW, or D_out
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += per_example * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, PartialConv2d):  # each map's own weights at each position
            positions = output.shape[2] * output.shape[3]
            total += positions * sum(w.numel() for w in module.weights)
        elif isinstance(module, RBFOutput):  # one squared difference per centre entry
            total += module.centres.numel()
        else:
            total += per_example * module.in_features

    handles = [m.register_forward_hook(count) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear, PartialConv2d, RBFOutput))]
    _forward_on_zeros(model, shape, handles)
    return total


# Layers that keep every position where it is (elementwise or across channels only).
_SAME_GEOMETRY = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.LocalResponseNorm, nn.Dropout, nn.BatchNorm2d,
                  nn.Identity)


def _square(layer: nn.Module, name: str, attr: str) -> int:
    value = getattr(layer, attr, 1)  # pooling layers have no dilation attribute in some versions
    pair = value if isinstance(value, tuple) else (value, value)
    if len(set(pair)) != 1 or not isinstance(pair[0], int):
        raise ValueError(f"model: layer {name} has {attr} {value!r}; expected one int for both "
                         f"axes")
    return pair[0]


def _geometry(layer: nn.Module, name: str) -> tuple[int, int, int, int] | None:
    """(kernel_size, stride, padding, dilation) of a layer, None if it keeps the geometry."""
    if isinstance(layer, _SAME_GEOMETRY + (LeNetSquash,)):
        return None
    if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        if getattr(layer, "ceil_mode", False):
            raise ValueError(f"model: layer {name} pools with ceil_mode=True, whose output sizes "
                             f"are not the recurrence's")
        return tuple(_square(layer, name, attr)
                     for attr in ("kernel_size", "stride", "padding", "dilation"))
    if isinstance(layer, Subsampling):
        return (layer.kernel_size, layer.kernel_size, 0, 1)
    if isinstance(layer, PartialConv2d):
        return (layer.weights[0].shape[-1], 1, 0, 1)
    raise ValueError(f"model: layer {name} ({type(layer).__name__}) has no known geometry")


def receptive_field_layers(model: nn.Module) -> list[tuple[int, int, int, int]]:
    """``(kernel_size, stride, padding, dilation)`` of each convolution and pooling, in order.

    The input :func:`dlbook.receptive_field.receptive_field` takes, read from a single-path
    network: an ``nn.Sequential`` (nested ones are walked in order) up to its first ``Flatten``.
    Layers that keep the positions (activations, LRN, dropout, batch normalisation) are
    skipped; a pooling layer counts with its window as kernel.

    Raises:
        ValueError: naming the layer, for a model that is not an ``nn.Sequential``, a layer of
            unknown geometry, different geometry along the two axes, or pooling with
            ``ceil_mode=True`` (its output sizes are not the ones the recurrence computes).
    """
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model: expected a single-path nn.Sequential, got "
                         f"{type(model).__name__}")
    layers = []
    pending = list(model.named_children())
    while pending:
        name, layer = pending.pop(0)
        if isinstance(layer, nn.Sequential):  # walk a nested Sequential in place
            pending[:0] = [(f"{name}.{n}", child) for n, child in layer.named_children()]
        elif isinstance(layer, nn.Flatten):
            break
        elif (geometry := _geometry(layer, name)) is not None:
            layers.append(geometry)
    return layers
