# The compiler's front end: a small, numpy-like graph of int8/int32 tensor operations. Shapes,
# dtypes and parameters are checked here, when the program is written, with errors that name the
# operation and the tensor; tspc/lower.py turns a checked graph into scheduled chip programs.
"""`Graph` and `Tensor`: write a tensor program for the TSP slice."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tsp.config import TspConfig

from .quant import rsqrt_preshift
from .reshape import MAX_PIECES, is_word_view, reshape_pieces

__all__ = ["DTYPES", "Graph", "Tensor", "TspcError"]

DTYPES = ("int8", "int32")
_INT8 = (-128, 127)


class TspcError(ValueError):
    """A tensor program the compiler cannot accept: the message names the operation and the
    tensor (and, for run-time input errors, the input)."""


@dataclass(eq=False)
class Tensor:
    """A 2-D tensor of the program: `shape` (rows, columns), `dtype` "int8" or "int32".

    `op` is "input", "const" or the operation that produces it; `args` its operand tensors and
    `attrs` its parameters. A 1-D tensor (a vector, e.g. a GEMV input) is stored as one row:
    `vector` records that so results come back in the shape the user gave.
    """

    graph: Graph
    name: str
    shape: tuple[int, int]
    dtype: str
    op: str
    args: tuple[Tensor, ...] = ()
    attrs: dict = field(default_factory=dict)
    vector: bool = False

    def __repr__(self) -> str:
        shape = (self.shape[1],) if self.vector else self.shape
        return f"Tensor({self.name!r}, {shape}, {self.dtype}, op={self.op})"

    @property
    def is_host(self) -> bool:
        """True for tensors whose values come from the host (inputs and constants)."""
        return self.op in ("input", "const")

    # numpy-like sugar
    def __matmul__(self, other: Tensor) -> Tensor:
        return self.graph.matmul(self, other)


def _shape(shape, what: str) -> tuple[tuple[int, int], bool]:
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise TspcError(f"{what}: shape must be a tuple of positive integers, not "
                        f"{shape!r}") from None
    if len(dims) not in (1, 2) or any(d < 1 for d in dims) or \
            any(not isinstance(d, (int, np.integer)) for d in shape):
        raise TspcError(f"{what}: shape must be 1-D (n,) or 2-D (rows, columns) of positive "
                        f"integers, not {tuple(shape)!r}")
    if len(dims) == 1:
        return (1, dims[0]), True
    return (dims[0], dims[1]), False


def _int_array(value, dtype: str, what: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iub":
        raise TspcError(f"{what}: values must be integers ({dtype}), not {arr.dtype}")
    lo, hi = (_INT8 if dtype == "int8" else (-(1 << 31), (1 << 31) - 1))
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise TspcError(f"{what}: values must lie in {dtype} range [{lo}, {hi}], found "
                        f"[{int(arr.min())}, {int(arr.max())}] (nothing is truncated silently)")
    return arr.astype(np.int64)


class Graph:
    """A tensor program for one chip configuration.

        g = Graph("full")
        x = g.input("x", (64, 64))                    # int8 activations
        w = g.const("w", weights_int8)                # int8 (K, N), stored by the host
        y = g.requantize(x @ w, multiplier=m, shift=s, bias=b, relu=True)   # int8
        g.output("y", y)

    Operations: `input`, `const`, `matmul` (int8 x int8 -> int32), `requantize` (int32 ->
    int8: optional per-channel int32 bias, fixed-point multiplier, rounding shift, zero point,
    ReLU), `relu`, `add`, `sub`, `minimum`, `maximum` (int8, saturating), `tanh` and `exp`
    (int8 fixed point -> int8 Q7), `rsqrt` (int8 fixed point -> int8), `transpose` (int8,
    SXM), `reshape` (row-major; a view or SXM + VXM moves), `output`. Tensors are 2-D (rows,
    columns); 1-D vectors are one row.
    """

    def __init__(self, config: str | TspConfig = "full") -> None:
        if isinstance(config, str):
            config = TspConfig.profile(config)
        if not isinstance(config, TspConfig):
            raise TypeError(f"Graph needs a profile name or a TspConfig, not {config!r}")
        self.config = config
        self.tensors: list[Tensor] = []
        self.outputs: dict[str, Tensor] = {}
        self._names: set[str] = set()

    # ---- helpers ---------------------------------------------------------------------------
    def _name(self, name: str | None, op: str) -> str:
        if name is None:
            k = 0
            while f"{op}{k}" in self._names:
                k += 1
            name = f"{op}{k}"
        if not isinstance(name, str) or not name.isidentifier():
            raise TspcError(f"{op}: tensor name must be an identifier, not {name!r}")
        if name in self._names:
            raise TspcError(f"{op}: a tensor named {name!r} already exists")
        self._names.add(name)
        return name

    def _add(self, t: Tensor) -> Tensor:
        self.tensors.append(t)
        return t

    def _own(self, t, op: str, role: str) -> Tensor:
        if not isinstance(t, Tensor):
            raise TspcError(f"{op}: {role} must be a Tensor of this graph, not {t!r}")
        if t.graph is not self:
            raise TspcError(f"{op}: {role} {t.name!r} belongs to another graph")
        return t

    # ---- sources -----------------------------------------------------------------------
    def input(self, name: str, shape, dtype: str = "int8") -> Tensor:
        """A tensor whose values are given at run time (`CompiledProgram.run(inputs=...)`)."""
        if dtype != "int8":
            raise TspcError(f"input {name!r}: dtype must be 'int8' (int32 inputs are not "
                            f"supported), not {dtype!r}")
        shp, vec = _shape(shape, f"input {name!r}")
        return self._add(Tensor(self, self._name(name, "input"), shp, dtype, "input",
                                vector=vec))

    def const(self, name: str, value, dtype: str = "int8") -> Tensor:
        """A tensor whose values are known when compiling (weights); stored by the host."""
        if dtype != "int8":
            raise TspcError(f"const {name!r}: dtype must be 'int8', not {dtype!r}")
        arr = _int_array(value, dtype, f"const {name!r}")
        shp, vec = _shape(arr.shape, f"const {name!r}")
        t = Tensor(self, self._name(name, "const"), shp, dtype, "const", vector=vec,
                   attrs={"value": arr.reshape(shp)})
        return self._add(t)

    # ---- operations ----------------------------------------------------------------------
    def matmul(self, a: Tensor, w: Tensor, name: str | None = None) -> Tensor:
        """int8 (M, K) @ int8 (K, N) -> int32 (M, N), exact (tiled over the MXMs). `a` may be
        a vector (K,) (GEMV, batch 1); `w` must come from the host (an input or a const)."""
        a = self._own(a, "matmul", "left operand")
        w = self._own(w, "matmul", "right operand")
        for t, role in ((a, "left"), (w, "right")):
            if t.dtype != "int8":
                raise TspcError(f"matmul: {role} operand {t.name!r} is {t.dtype}; the MXM "
                                f"multiplies int8 by int8 (requantize it first)")
        if not w.is_host:
            raise TspcError(f"matmul: right operand {w.name!r} is computed on the chip "
                            f"({w.op}); weights must be a graph input or const")
        if w.vector:
            raise TspcError(f"matmul: right operand {w.name!r} must be a 2-D (K, N) matrix")
        (m, k), (k2, n) = a.shape, w.shape
        if k != k2:
            raise TspcError(f"matmul: shapes do not match: {a.name!r} is {m} x {k}, "
                            f"{w.name!r} is {k2} x {n} ({k} != {k2})")
        cfg = self.config
        if "mxm" not in cfg.units:
            raise TspcError(f"matmul {a.name!r} @ {w.name!r}: profile {cfg.name!r} has no MXM "
                            f"(units {cfg.units})")
        limit = (1 << 16)
        if k > limit:
            raise TspcError(f"matmul: K = {k} exceeds the MXM's exact-int32 limit of {limit} "
                            f"products per output (docs/mxm.md)")
        return self._add(Tensor(self, self._name(name, "matmul"), (m, n), "int32", "matmul",
                                (a, w), vector=a.vector))

    def requantize(self, x: Tensor, multiplier: int, shift: int, zero_point: int = 0,
                   bias=None, relu: bool = False, name: str | None = None) -> Tensor:
        """int32 -> int8 on the VXM: `sat8(RDIVPOT(SRDHM(x + bias, multiplier), shift) +
        zero_point)`, then with `relu` `max(., zero_point)` (the code of real 0, as TFLite's
        fused ReLU) (docs/vxm.md section 3: gemmlowp / TFLite arithmetic). `multiplier` is the
        Q31 integer in [2^30, 2^31), `shift` 0..31, `bias` None or an int32 vector of the column
        count (per output channel)."""
        x = self._own(x, "requantize", "input")
        where = f"requantize of {x.name!r}"
        if x.op != "matmul":
            raise TspcError(f"{where}: the input must be a matmul result (int32 from the MXM "
                            f"accumulators); got {x.op}")
        if "vxm" not in self.config.units:
            raise TspcError(f"{where}: profile {self.config.name!r} has no VXM (units "
                            f"{self.config.units}); use the 'full' profile")
        for val, what, lo, hi in ((multiplier, "multiplier", 1 << 30, (1 << 31) - 1),
                                  (shift, "shift", 0, 31), (zero_point, "zero_point", -128, 127)):
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or \
                    not lo <= int(val) <= hi:
                raise TspcError(f"{where}: {what} must be an integer in [{lo}, {hi}], not "
                                f"{val!r} (tspc.quant.quantize_multiplier gives multiplier "
                                f"and shift for a real scale)")
        b = None
        if bias is not None:
            b = _int_array(bias, "int32", f"{where}: bias").reshape(-1)
            if b.shape != (x.shape[1],):
                raise TspcError(f"{where}: bias must have {x.shape[1]} values (one per output "
                                f"column), not shape {np.asarray(bias).shape}")
        if x.attrs.get("requantized"):
            raise TspcError(f"{where}: {x.name!r} is already requantized once; a matmul result "
                            f"can be requantized only once")
        x.attrs["requantized"] = True
        attrs = {"multiplier": int(multiplier), "shift": int(shift),
                 "zero_point": int(zero_point), "bias": b, "relu": bool(relu)}
        return self._add(Tensor(self, self._name(name, "requantize"), x.shape, "int8",
                                "requantize", (x,), attrs, vector=x.vector))

    def relu(self, x: Tensor, name: str | None = None) -> Tensor:
        """max(x, 0) of an int8 tensor: a VXM pass, or folded into the requantization that
        produces `x` when that has zero point 0 and nothing else uses `x` (then the two are
        the same). For the quantized ReLU `max(q, zero_point)` use `requantize(relu=True)`."""
        x = self._own(x, "relu", "input")
        if x.op == "requantize" and x.attrs["zero_point"] == 0 and not self.consumers(x) and \
                x not in self.outputs.values():
            attrs = dict(x.attrs, relu=True)
            self.tensors.remove(x)
            return self._add(Tensor(self, self._name(name, "relu"), x.shape, "int8",
                                    "requantize", x.args, attrs, vector=x.vector))
        return self._elementwise("relu", (x,), name)

    # ---- elementwise VXM passes (int8 -> int8) -------------------------------------------
    def _elementwise(self, fn: str, args: tuple, name: str | None, **attrs) -> Tensor:
        ts = [self._own(a, fn, f"operand {i}") for i, a in enumerate(args)]
        for t in ts:
            if t.dtype != "int8":
                raise TspcError(f"{fn}: operand {t.name!r} is {t.dtype}; elementwise VXM "
                                f"operations take int8 tensors (requantize int32 first)")
        if len(ts) == 2 and ts[0].shape != ts[1].shape:
            raise TspcError(f"{fn}: shapes differ: {ts[0].name!r} is {ts[0].shape}, "
                            f"{ts[1].name!r} is {ts[1].shape} (no broadcasting)")
        if "vxm" not in self.config.units:
            raise TspcError(f"{fn} of {ts[0].name!r}: profile {self.config.name!r} has no VXM "
                            f"(units {self.config.units}); use the 'full' profile")
        return self._add(Tensor(self, self._name(name, fn), ts[0].shape, "int8", "vxm",
                                tuple(ts), dict(attrs, fn=fn), vector=ts[0].vector))

    def add(self, a: Tensor, b: Tensor, name: str | None = None) -> Tensor:
        """a + b, int8, saturating (VXM `ADDS`)."""
        return self._elementwise("add", (a, b), name)

    def sub(self, a: Tensor, b: Tensor, name: str | None = None) -> Tensor:
        """a - b, int8, saturating (VXM `SUBS`)."""
        return self._elementwise("sub", (a, b), name)

    def minimum(self, a: Tensor, b: Tensor, name: str | None = None) -> Tensor:
        """Elementwise min of two int8 tensors (VXM `MIN`)."""
        return self._elementwise("minimum", (a, b), name)

    def maximum(self, a: Tensor, b: Tensor, name: str | None = None) -> Tensor:
        """Elementwise max of two int8 tensors (VXM `MAX`)."""
        return self._elementwise("maximum", (a, b), name)

    def _func(self, fn: str, x: Tensor, frac_bits: int, name: str | None) -> Tensor:
        if isinstance(frac_bits, bool) or not isinstance(frac_bits, (int, np.integer)) or \
                not 0 <= int(frac_bits) <= 8:
            raise TspcError(f"{fn}: frac_bits must be an integer in [0, 8] (the input is "
                            f"x / 2^frac_bits), not {frac_bits!r}")
        return self._elementwise(fn, (x,), name, frac_bits=int(frac_bits))

    def tanh(self, x: Tensor, frac_bits: int = 5, name: str | None = None) -> Tensor:
        """tanh of an int8 fixed-point tensor (value x / 2^frac_bits) -> int8 Q7
        (value y / 128) = floor(TANH_Q15(x << (8 - frac_bits)) / 256): the VXM's TANH table
        (docs/vxm.md section 4), its Q15 result's high byte."""
        return self._func("tanh", x, frac_bits, name)

    def exp(self, x: Tensor, frac_bits: int = 5, name: str | None = None) -> Tensor:
        """exp of an int8 fixed-point tensor (x / 2^frac_bits, meant for x <= 0 as in a
        softmax; x > 0 gives exp(0)) -> int8 Q7 = min(EXP_Q15, 32767) >> 8 (docs/vxm.md)."""
        return self._func("exp", x, frac_bits, name)

    def rsqrt(self, x: Tensor, frac_bits: int = 4, out_frac_bits: int = 4,
              name: str | None = None) -> Tensor:
        """1/sqrt of an int8 fixed-point tensor (value x / 2^frac_bits) -> int8 (value
        y / 2^out_frac_bits), one VXM pass: y = RSQRT(x << p) >> 24 with the pre-shift
        p = 12 - 2*out_frac_bits - frac_bits >= 0 (docs/compiler.md section 1): floor of
        2^out_frac_bits / sqrt(value) up to the table's rounding, at most 64 (at x = 1, p = 0);
        x <= 0 gives 127. `tspc.quant.rsqrt_int8` is the numpy reference."""
        x = self._own(x, "rsqrt", "input")
        where = f"rsqrt of {x.name!r}"
        for val, what, hi in ((frac_bits, "frac_bits", 8), (out_frac_bits, "out_frac_bits", 6)):
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or \
                    not 0 <= int(val) <= hi:
                raise TspcError(f"{where}: {what} must be an integer in [0, {hi}], not {val!r}")
        p = rsqrt_preshift(int(frac_bits), int(out_frac_bits))
        if p < 0:
            raise TspcError(
                f"{where}: frac_bits = {frac_bits} with out_frac_bits = {out_frac_bits} needs "
                f"2 * out_frac_bits + frac_bits <= 12 (the result is the top byte of RSQRT(x << "
                f"p), p = 12 - 2 * out_frac_bits - frac_bits = {p} < 0; its largest value, "
                f"2^(out_frac_bits + frac_bits/2) at x = 1, must be at most 64)")
        return self._elementwise("rsqrt", (x,), name, frac_bits=int(frac_bits),
                                 out_frac_bits=int(out_frac_bits), preshift=p)

    def reshape(self, x: Tensor, shape, name: str | None = None) -> Tensor:
        """Row-major (numpy) reshape to `shape`: an int (K,) or a 1-D / 2-D tuple, one
        dimension may be -1 (inferred). A view of the same MEM words when no element moves:
        (K,) <-> (1, K), the same shape, or a flatten (M, K) -> (1, M*K) / (M*K,) with K a
        multiple of the lane count; otherwise (int8 only) the elements are moved on the chip:
        SXM SHIFTs of the pieces of each result word, merged by a VXM pass (docs/compiler.md
        section 3)."""
        x = self._own(x, "reshape", "input")
        old = (x.shape[1],) if x.vector else x.shape
        what = f"reshape of {x.name!r} from {old} to {shape!r}"
        dims = (shape,) if isinstance(shape, (int, np.integer)) and \
            not isinstance(shape, bool) else shape
        try:
            dims = tuple(dims)
        except TypeError:
            raise TspcError(f"{what}: the shape must be an int or a tuple of ints") from None
        if len(dims) not in (1, 2) or any(isinstance(d, bool) or not isinstance(
                d, (int, np.integer)) for d in dims):
            raise TspcError(f"{what}: the shape must be 1-D (n,) or 2-D (rows, columns) of "
                            f"integers")
        dims = tuple(int(d) for d in dims)
        count = x.shape[0] * x.shape[1]
        if sum(d == -1 for d in dims) > 1 or any(d < 1 and d != -1 for d in dims):
            raise TspcError(f"{what}: dimensions must be positive, with at most one -1")
        if -1 in dims:
            known = int(np.prod([d for d in dims if d != -1]))
            if count % known:
                raise TspcError(f"{what}: cannot infer -1: {count} elements are not a "
                                f"multiple of {known}")
            dims = tuple(count // known if d == -1 else d for d in dims)
        if int(np.prod(dims)) != count:
            raise TspcError(f"{what}: {count} elements cannot take shape {dims} "
                            f"({int(np.prod(dims))} elements)")
        shp, vec = _shape(dims, what)
        base = x                       # a reshape of a reshape is a reshape of the original
        while base.op in ("view", "reshape"):
            base = base.args[0]
        if shp == base.shape and vec == base.vector:
            return base
        n = self.config.vec_bytes
        if shp == base.shape or (base.dtype == "int8" and is_word_view(base.shape, shp, n)):
            return self._add(Tensor(self, self._name(name, "reshape"), shp, base.dtype, "view",
                                    (base,), vector=vec))
        if base.dtype != "int8":
            raise TspcError(f"{what}: {base.name!r} is {base.dtype}; only int8 tensors are "
                            f"reshaped on the chip (int32 only as (K,) <-> (1, K)): "
                            f"requantize first")
        cfg = self.config
        missing = [u for u in ("sxm", "vxm") if u not in cfg.units]
        if missing:
            raise TspcError(f"{what}: moves elements between MEM words, which needs the SXM "
                            f"and the VXM; profile {cfg.name!r} has no {' and no '.join(missing)}"
                            f" (units {cfg.units}); use the 'full' profile")
        if cfg.mem_slices < 4 or cfg.streams < 8:
            raise TspcError(f"{what}: profile {cfg.name!r} needs at least 4 MEM slices per "
                            f"hemisphere and 8 streams to merge the pieces of a word")
        worst = max(((len(p), w) for w, p in reshape_pieces(base.shape, shp, n).items()),
                    default=(0, None))
        if worst[0] > MAX_PIECES:
            raise TspcError(f"{what}: result word {worst[1]} (row, column block) gathers "
                            f"{worst[0]} pieces of different source words; one VXM pass "
                            f"merges at most {MAX_PIECES} (not supported for {n}-lane "
                            f"vectors with such short rows)")
        return self._add(Tensor(self, self._name(name, "reshape"), shp, "int8", "reshape",
                                (base,), vector=vec))

    def transpose(self, x: Tensor, name: str | None = None) -> Tensor:
        """int8 (M, K) -> (K, M) through the SXM's TRANSPOSE of n x n blocks (each block's rows
        are spread over the MEM slices so they meet at SXM_W in one cycle, then gathered back;
        docs/compiler.md)."""
        x = self._own(x, "transpose", "input")
        cfg = self.config
        if x.dtype != "int8":
            raise TspcError(f"transpose of {x.name!r}: only int8 tensors (it is {x.dtype})")
        if "sxm" not in cfg.units:
            raise TspcError(f"transpose of {x.name!r}: profile {cfg.name!r} has no SXM")
        if cfg.streams < cfg.vec_bytes or 2 * cfg.mem_slices < cfg.vec_bytes:
            raise TspcError(f"transpose of {x.name!r}: profile {cfg.name!r} transposes "
                            f"{min(cfg.streams, cfg.vec_bytes)}-stream blocks of "
                            f"{cfg.vec_bytes}-lane vectors through {2 * cfg.mem_slices} "
                            f"slices; the compiler needs streams >= lanes and at least as "
                            f"many MEM slices as lanes")
        m, k = x.shape
        return self._add(Tensor(self, self._name(name, "transpose"), (k, m), "int8",
                                "transpose", (x,)))

    def output(self, name: str, t: Tensor) -> None:
        """Mark `t` as a result: `run()` returns it under `name`."""
        t = self._own(t, "output", "tensor")
        b = t
        while b.op == "view":
            b = b.args[0]
        if b.is_host:
            raise TspcError(f"output {name!r}: {t.name!r} is a host tensor ({t.op}); outputs "
                            f"must be computed")
        if name in self.outputs:
            raise TspcError(f"output {name!r} is already defined")
        self.outputs[name] = t

    # ---- queries -------------------------------------------------------------------------
    def consumers(self, t: Tensor) -> list[Tensor]:
        return [u for u in self.tensors if any(a is t for a in u.args)]
