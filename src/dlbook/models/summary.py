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

__all__ = ["LayerRow", "summary"]


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
    if print_table:
        _print(rows, sum(p.numel() for p in model.parameters()))
    return rows


def _print(rows: list[LayerRow], total: int) -> None:
    width = max([len("Layer (type)")] + [len(f"{r.name} ({r.kind})") for r in rows])
    print(f"{'Layer (type)':<{width}}  {'Output shape':<24}{'Param #':>14}")
    print("-" * (width + 40))
    for r in rows:
        label = f"{r.name} ({r.kind})"
        print(f"{label:<{width}}  {str(r.output_shape):<24}{r.num_params:>14,}")
    print("-" * (width + 40))
    print(f"Total parameters: {total:,}")
