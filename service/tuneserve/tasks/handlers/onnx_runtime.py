"""ONNX Runtime forms of an encoder version, behind the call every handler makes.

``onnx_model`` exports the version's fp32 weights to ONNX, fuses the graph with onnxruntime's
transformer optimiser (attention, embeddings + layer norm, bias + GELU, skip + layer norm:
the fused kernels are where the speed comes from), optionally quantises its weights to int8,
and wraps the session in ``OnnxRuntimeModel``, which answers ``model(**inputs)`` with the
same output type as the transformers model. So an ONNX variant is a handler like any other,
and, like int8 in PyTorch, it is built when it loads and needs no artifact of its own.

The graphs are cached on the node (``CACHE``), under a key made of the weights, the code that
builds them and the library versions: verification builds the graph the replica then loads
(no second export in a hot swap), and int8 is quantised from the cached fp32 graph.

Why not ``optimum``'s exporter: its ONNX half (optimum-onnx 0.1) requires transformers
< 4.58 and this project runs 5.x. torch's exporter and onnxruntime's optimiser are the two
steps it would have run.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

EXAMPLE_TEXTS = ["an example to trace the graph with", "another"]
CACHE = Path(tempfile.gettempdir()) / "tuneserve-onnx"
CACHED_GRAPHS = 8  # the newest kept: about 90 MB each for a MiniLM-L6 in fp32, 23 in int8


def onnx_model(handler: Any, *, int8: bool) -> OnnxRuntimeModel:
    """``handler``'s model (a copy) run by onnxruntime on CPU, with int8 weights if ``int8``
    (but for the task's head and the pooler, as in the PyTorch int8 variant).

    Takes seconds: about 3 s to export a MiniLM-L6 and 2 s each to fuse and to quantise.
    """
    model = copy.deepcopy(handler.model).float().eval()
    model.set_attn_implementation("eager")  # sdpa exports a graph the optimiser cannot fuse
    encoded = handler.tokenizer(EXAMPLE_TEXTS, padding=True, return_tensors="pt")
    # in the order of the model's parameters: the TorchScript exporter passes ``kwargs`` on
    # by position, so (input_ids, token_type_ids, attention_mask), the tokenizer's order,
    # would feed the mask in as token types and give a graph that is quietly wrong
    order = list(inspect.signature(model.forward).parameters)
    example = {name: encoded[name] for name in sorted(encoded, key=order.index)}
    with torch.no_grad():
        reference = model(**example)  # its class and field names: the session's answers
    outputs, keep = list(reference.keys()), (*handler.head_modules, "pooler")
    key = _key(model, [*example, *keep])

    def fused(folder: Path) -> Path:
        return _fused(_export(model, example, outputs, folder), model.config)

    path = _cached(f"{key}-fp32", fused)
    if int8:
        path = _cached(f"{key}-int8", lambda out: _quantised(path, keep, out))
    return OnnxRuntimeModel(_session(path), model.config, type(reference))


class OnnxRuntimeModel(torch.nn.Module):
    """An onnxruntime session that takes and returns what its transformers model did:
    tensors in by name, the model's own output class out (``.logits``, ``.start_logits``)."""

    def __init__(self, session: Any, config: Any, output_type: type):
        super().__init__()
        self.session = session
        self.config = config
        self.output_type = output_type
        # the exporter drops inputs the graph never reads: feed only those it kept
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(self, **inputs: torch.Tensor) -> Any:
        feed = {name: inputs[name].numpy() for name in self.input_names}
        arrays = self.session.run(self.output_names, feed)
        named = zip(self.output_names, arrays, strict=True)
        return self.output_type(**{name: torch.from_numpy(array) for name, array in named})


def _key(model: torch.nn.Module, names: list[str]) -> str:
    """What a graph depends on: the weights and config, the inputs and kept modules, this
    module's code and the versions of the libraries that write it (a change of any: a new
    key). Hashing a MiniLM's weights takes about 0.1 s."""
    import onnxruntime

    digest = hashlib.sha256(model.config.to_json_string().encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    context = [names, torch.__version__, onnxruntime.__version__, sys.version]
    digest.update(repr(context).encode())
    digest.update(inspect.getsource(sys.modules[__name__]).encode())
    return digest.hexdigest()[:32]


def _cached(name: str, build: Callable[[Path], Path]) -> Path:
    """``CACHE/<name>.onnx``, built by ``build(scratch_dir)`` unless it is there already.

    Written under another name and renamed, so that a replica and a verifying job on one
    node never read half a file; the oldest graphs beyond ``CACHED_GRAPHS`` are removed.
    """
    target = CACHE / f"{name}.onnx"
    with contextlib.suppress(FileNotFoundError):
        os.utime(target)  # recently used: the last to be removed (and never created empty)
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        os.replace(build(Path(scratch)), target)
    _prune()
    return target


def _prune() -> None:
    """Remove all but the newest ``CACHED_GRAPHS``; another process may be pruning too."""
    graphs = []
    for path in CACHE.glob("*.onnx"):
        with contextlib.suppress(FileNotFoundError):
            graphs.append((path.stat().st_mtime, path))
    for _, stale in sorted(graphs, reverse=True)[CACHED_GRAPHS:]:
        stale.unlink(missing_ok=True)


def _export(
    model: torch.nn.Module, example: dict[str, torch.Tensor], output_names: list[str], folder: Path
) -> Path:
    """The model as ONNX, batch and sequence length left free. torch's TorchScript
    exporter: the graph it writes is the one onnxruntime's BERT fusions recognise."""
    path = folder / "exported.onnx"
    axes = {name: {0: "batch", 1: "sequence"} for name in example}
    with warnings.catch_warnings():  # deprecation of the TorchScript exporter, tracer notes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (),
            str(path),
            kwargs=example,
            input_names=list(example),
            output_names=output_names,
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    return path


def _fused(path: Path, config: Any) -> Path:
    """The graph with onnxruntime's transformer fusions (BERT family patterns)."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimised = optimize_model(
        str(path),
        model_type="bert",
        num_heads=getattr(config, "num_attention_heads", 0),  # 0: read from the graph
        hidden_size=getattr(config, "hidden_size", 0),
        opt_level=0,  # the Python fusions only; the session applies its own at load
    )
    fused = path.with_name("fused.onnx")
    optimised.save_model_to_file(str(fused))
    return fused


def _quantised(path: Path, keep: Sequence[str], folder: Path) -> Path:
    """The graph with int8 weights (per output channel) and int8 activations per batch,
    but for nodes under ``keep`` (module names: the head decides the answer)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = onnx.load(str(path), load_external_data=False).graph.node
    excluded = [n.name for n in nodes if any(part in keep for part in n.name.split("/"))]
    quantised = folder / "int8.onnx"
    quantize_dynamic(
        str(path),
        str(quantised),
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_exclude=excluded,
        # the fused operators are in another domain, which shape inference cannot type
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return quantised


def _session(path: Path) -> Any:
    """A CPU session on the replica's torch threads, its workers not spinning: on a node
    shared with the HTTP path, a spinning pool takes the cores that path needs."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
