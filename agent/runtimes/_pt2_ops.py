"""The operators a ``.pt2`` (torch.export) graph may call on the agent: pure tensor operators, nothing else.

A torch.export graph is a program, and torch registers operators that touch the world: ``aten.from_file``
maps any file (creating it when ``shared``), in-place copies then write through it, ``aten.set_`` rebinds
storage, ``empty`` hands out uninitialized memory. :mod:`agent.runtimes.torch_rt` refuses an archive whose
graphs (higher-order-op bodies included) name any target outside :data:`ALLOWED_TARGETS`.

Plain data, no torch import: the agent checks an archive before torch sees it.
``tests/security/test_pt2_graph.py`` derives the safe core set from the installed torch and checks this list
against it: :data:`CORE_ATEN_OPS` is torch's core ATen operator set (overloads tagged ``torch.Tag.core``) minus
every overload that is ``_``-prefixed (internals), in place (name ends in ``_``), writes to an argument
(``out=`` variants included), takes a Storage, draws random numbers, has a data-dependent output, or allocates
uninitialized or arbitrarily strided memory (``empty``, ``empty_strided``, ``as_strided``).
"""

from __future__ import annotations

__all__ = ["ALLOWED_TARGETS", "CONTROL_FLOW_OPS", "CORE_ATEN_OPS", "GRAPH_PLUMBING", "PROJECT_OPS"]

_ATEN = "torch.ops.aten."

_CORE_OVERLOADS = (
    "abs.default", "acos.default", "acosh.default", "add.Scalar", "add.Tensor", "addmm.default", "alias.default",
    "amax.default", "amin.default", "any.default", "any.dim", "any.dims", "arange.start_step", "argmax.default",
    "argmin.default", "asin.default", "asinh.default", "atan.default", "atan2.default", "atanh.default",
    "avg_pool2d.default", "avg_pool2d_backward.default", "avg_pool3d.default", "bitwise_and.Scalar",
    "bitwise_and.Tensor", "bitwise_not.default", "bitwise_or.Scalar", "bitwise_or.Tensor", "bitwise_xor.Scalar",
    "bitwise_xor.Tensor", "bmm.default", "cat.default", "ceil.default", "clamp.Tensor", "clamp.default",
    "clone.default", "col2im.default", "constant_pad_nd.default", "convolution.default",
    "convolution_backward.default", "copy.default", "cos.default", "cosh.default", "cumsum.default",
    "diagonal.default", "div.Scalar", "div.Scalar_mode", "div.Tensor", "div.Tensor_mode", "elu.default",
    "embedding.default", "embedding_dense_backward.default", "eq.Scalar", "eq.Tensor", "erf.default", "exp.default",
    "expand.default", "expm1.default", "fill.Scalar", "flip.default", "floor.default", "fmod.Scalar", "fmod.Tensor",
    "full.default", "full_like.default", "gather.default", "ge.Scalar", "ge.Tensor", "gelu.default",
    "grid_sampler_2d.default", "gt.Scalar", "gt.Tensor", "hardtanh.default", "index_put.default",
    "index_select.default", "isinf.default", "isnan.default", "le.Scalar", "le.Tensor", "leaky_relu.default",
    "log.default", "log10.default", "log1p.default", "log2.default", "logical_and.default", "logical_not.default",
    "logical_or.default", "logical_xor.default", "lt.Scalar", "lt.Tensor", "masked_scatter.default", "max.dim",
    "max_pool2d_with_indices.default", "max_pool2d_with_indices_backward.default",
    "max_pool3d_with_indices.default", "maximum.default", "mean.default", "mean.dim", "min.dim", "minimum.default",
    "mm.default", "mul.Scalar", "mul.Tensor", "native_group_norm.default", "native_group_norm_backward.default",
    "native_layer_norm.default", "native_layer_norm_backward.default", "ne.Scalar", "ne.Tensor", "neg.default",
    "permute.default", "pow.Scalar", "pow.Tensor_Scalar", "pow.Tensor_Tensor", "prod.default", "prod.dim_int",
    "reciprocal.default", "reflection_pad1d.default", "reflection_pad2d.default", "reflection_pad3d.default",
    "relu.default", "remainder.Scalar", "remainder.Tensor", "repeat.default", "replication_pad2d.default",
    "replication_pad3d.default", "round.default", "rsqrt.default", "scalar_tensor.default", "scatter.src",
    "scatter.value", "scatter_add.default", "scatter_reduce.two", "select.int", "select_scatter.default",
    "sigmoid.default", "sign.default", "sin.default", "sinh.default", "slice.Tensor", "slice_scatter.default",
    "sort.default", "split_with_sizes.default", "sqrt.default", "squeeze.dim", "squeeze.dims", "sub.Scalar",
    "sub.Tensor", "sum.dim_IntList", "sym_numel.default", "sym_size.int", "sym_storage_offset.default",
    "sym_stride.int", "tan.default", "tanh.default", "topk.default", "trunc.default", "unsqueeze.default",
    "upsample_bilinear2d.vec", "upsample_nearest2d.vec", "var.correction", "var.dim", "view.default", "where.self"
)

#: torch's core ATen operators less everything with side effects (see the module docstring); torch 2.13.0.
CORE_ATEN_OPS: frozenset[str] = frozenset(_ATEN + name for name in _CORE_OVERLOADS)

#: What lutnas's own exports of every block kind and whole subnets call beyond the core set: torch.export
#: keeps these composite operators undecomposed (conv-BN-act, h-swish as relu6, the classifier's linear).
PROJECT_OPS: frozenset[str] = frozenset(
    _ATEN + name
    for name in ("conv2d.default", "batch_norm.default", "linear.default", "flatten.using_ints", "relu6.default")
)

#: Control flow whose bodies are graphs in the same archive, checked node by node like the top graph.
CONTROL_FLOW_OPS: frozenset[str] = frozenset(
    {"torch.ops.higher_order.cond", "torch.ops.higher_order.map_impl", "torch.ops.higher_order.while_loop"}
)

#: Picks one output of a multi-output operator (``max_pool2d_with_indices``, ``native_layer_norm``, ...).
GRAPH_PLUMBING: frozenset[str] = frozenset({"_operator.getitem"})

#: Every target a graph node (or an operator-valued argument) may name.
ALLOWED_TARGETS: frozenset[str] = CORE_ATEN_OPS | PROJECT_OPS | CONTROL_FLOW_OPS | GRAPH_PLUMBING
