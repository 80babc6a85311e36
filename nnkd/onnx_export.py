"""Export a trained nnkd network to ONNX (``python main.py export CKPT DEST.onnx --format onnx``).

The model uses ONNX opset 17 (default domain) and IR version 8 (read by onnxruntime 1.13 and
later; nnkd's ``onnx`` extra asks for 1.16 or later).  Its graph, for weights ``W0, b0, W1, b1, ...`` (``W`` of shape
``(n_in, n_out)``, as nnkd computes ``y = x @ W + b``)::

    input -> MatMul(W0) -> Add(b0) -> Relu -> MatMul(W1) -> Add(b1) -> Relu -> ... -> Add(bL) -> logits

* input: ``input``, float32, shape ``[N, n_features]`` with a symbolic batch dimension ``N``;
* output: ``logits``, float32, shape ``[N, n_classes]``; with ``softmax_temperature=T`` the
  logits are divided by ``T`` and go through ``Softmax(axis=-1)``, and the output is
  ``probabilities`` = ``softmax(logits / T)``, same shape.

The evaluation network is exactly the dense layers and ReLUs above
(:meth:`nnkd.network.Network.plain_layers`): inverted dropout is the identity in evaluation,
the paper's dropout scaling (``dropout_scaling="test"``) is folded into the weights after each
dropout layer (``keep * W``), and a network with centered inputs (``2x - 1`` first) has that
map folded into its first layer (``2 W0`` and ``b0 - sum of W0's rows``), so every exported
model takes the features as given.  Only the weights are
exported: optimizer state in the checkpoint (``velocity*``) is ignored.  ``onnx`` is an
optional dependency (the ``onnx`` extra), imported only here, inside
:func:`export_onnx`.
"""

import hashlib
import math
import numbers
from pathlib import Path

import numpy as np

from .version import __version__
from .checkpoint import checkpoint_files, load_model
from .config import TEMPERATURE_RANGE
from .errors import UserError
from .files import atomic_write, check_destination
from .install import extra_hint

OPSET = 17
IR_VERSION = 8
INPUT = "input"
LOGITS = "logits"
PROBABILITIES = "probabilities"


def check_onnx_destination(dest, force=False, source=None):
    """Refuse, before anything is written, a ``dest`` whose name does not end in ``.onnx``,
    that is a folder, whose folder does not exist, that would replace checkpoint ``source``,
    or (unless ``force``) that exists.  Returns ``Path(dest)``."""
    return check_destination(dest, ".onnx", "an ONNX model's name must end in .onnx",
                             sources=checkpoint_files(source), force=force)


def _check_temperature(T):
    """The softmax temperature as a float, or None; one line for anything that would make the
    model's float32 output NaN or constant."""
    if T is None:
        return None
    lo, hi = TEMPERATURE_RANGE
    if isinstance(T, bool) or not isinstance(T, numbers.Real) or not (math.isfinite(T) and lo <= T <= hi):
        raise UserError(f"`softmax_temperature` must be a number from {lo:g} to {hi:g} (softmax(logits / T) "
                        f"stays finite and informative in float32), got {T!r}")
    return float(T)


def _import_onnx():
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
    except ImportError:
        raise UserError("exporting to ONNX needs the onnx package, which is not installed: "
                        f"{extra_hint('onnx')}") from None
    return onnx


def _weights(src):
    """``(sizes, [(W0, b0), ...], meta)`` of checkpoint ``src``, checked against its config."""
    from .backend import get_backend
    net, meta = load_model(src, get_backend("numpy"))
    layers = [(np.ascontiguousarray(W, np.float32), np.ascontiguousarray(b, np.float32))
              for W, b in net.plain_layers()]  # W0, b0, ... only: never the velocity arrays
    return list(net.sizes), layers, meta


def build_model(sizes, layers, softmax_temperature=None, doc="", metadata=None):
    """The ONNX ``ModelProto`` of dense ``layers`` ``[(W, b), ...]`` with ReLU between them
    (see the module docstring); ``onnx`` must be importable; ``softmax_temperature`` as
    :func:`export_onnx` checked it."""
    onnx = _import_onnx()
    helper, from_array = onnx.helper, onnx.numpy_helper.from_array
    T = softmax_temperature
    nodes, inits = [], []
    x = INPUT
    for i, (W, b) in enumerate(layers):
        inits += [from_array(W, f"W{i}"), from_array(b, f"b{i}")]
        last = i == len(layers) - 1
        nodes.append(helper.make_node("MatMul", [x, f"W{i}"], [f"matmul{i}"], name=f"dense{i}_matmul"))
        out = LOGITS if last else f"dense{i}"
        nodes.append(helper.make_node("Add", [f"matmul{i}", f"b{i}"], [out], name=f"dense{i}_add"))
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"relu{i}"], name=f"relu{i}"))
            out = f"relu{i}"
        x = out
    n_out = sizes[-1]
    output = LOGITS
    if T is not None:
        inits.append(from_array(np.array(T, dtype=np.float32), "temperature"))
        nodes.append(helper.make_node("Div", [LOGITS, "temperature"], ["scaled_logits"], name="divide_by_T"))
        nodes.append(helper.make_node("Softmax", ["scaled_logits"], [PROBABILITIES], name="softmax", axis=-1))
        output = PROBABILITIES
    graph = helper.make_graph(
        nodes, "nnkd_" + "_".join(map(str, sizes)),
        [helper.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT, ["N", sizes[0]])],
        [helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, ["N", n_out])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="nnkd", producer_version=__version__,
                              doc_string=doc)
    helper.set_model_props(model, {k: str(v) for k, v in (metadata or {}).items()})
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(src, dst, softmax_temperature=None, force=False):
    """Write the network of checkpoint ``src`` to ``dst`` (``.onnx``) as an ONNX model.

    Without ``softmax_temperature`` the output is the logits; with ``T`` it is
    ``softmax(logits / T)``.  Nothing is written when anything is wrong (one-line
    :class:`UserError`): ``dst`` existing (unless ``force``) or not ending in ``.onnx``,
    a damaged checkpoint, a temperature that is not a finite number > 0, ``onnx``
    missing.  The file is written atomically.  Returns a summary dict (``dest``,
    ``sizes``, ``output``, ``opset``, ``bytes``, ``sha256``).
    """
    dst = check_onnx_destination(dst, force=force, source=src)
    T = _check_temperature(softmax_temperature)
    _import_onnx()
    sizes, layers, meta = _weights(src)
    arch = "-".join(map(str, sizes))
    info = {"arch": arch, "epoch": meta.get("epoch"), "exported_from": Path(src).name,
            "softmax_temperature": "none" if T is None else T}
    what = "logits" if T is None else f"softmax(logits / {T:g})"
    model = build_model(sizes, layers, T, doc=f"nnkd {arch} network; output: {what}", metadata=info)
    data = model.SerializeToString()
    try:
        atomic_write(dst, lambda f: f.write(data))
    except OSError as exc:
        raise UserError(f"could not write {dst}: {exc.strerror or exc}; nothing was written: free "
                        "space or choose another destination") from None
    return {"dest": dst, "sizes": sizes, "output": PROBABILITIES if T is not None else LOGITS,
            "opset": OPSET, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
