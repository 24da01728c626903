# `compile(graph)` and `CompiledProgram.run(...)`: the compiler's one-call interface. The compiled
# program is a list of checked chip programs (segments) plus the host-side layout of every tensor;
# `run` writes the inputs and constants through the backend's host access, runs the segments in
# order (memory and MXM state persist between them, as START leaves them), reads the outputs back
# and checks the measured cycle count of every segment against the compiler's prediction.
"""Compile a `tspc.Graph` and run it on the golden model, Icarus or Verilator."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asm import Program
from tsp.config import TspConfig, join_sg4, split_sg4

from .graph import Graph, Tensor, TspcError
from .lower import Lowered, Store, lower

__all__ = ["BACKENDS", "CompiledProgram", "RunResult", "compile"]

BACKENDS = ("model", "icarus", "verilator")


@dataclass
class RunResult:
    """What one run returns: `outputs` (name -> numpy array in the shape of the output),
    `cycles` (sum over segments, measured), `segment_cycles`, the prediction, the backend,
    the error flags of each segment (all 0 for a correct program) and, when asked for,
    `wave_file` (RTL) and `model_results` (golden model, with activity records)."""

    outputs: dict[str, np.ndarray]
    cycles: int
    segment_cycles: list[int]
    predicted_cycles: int
    backend: str
    err_flags: list[int]
    seconds: float
    wave_file: Path | None = None
    model_results: list = field(default_factory=list)


class CompiledProgram:
    """A compiled tensor program: `segments` (checked `asm.Program`s run in order), the tensor
    layout, `predicted_cycles`, `compile_seconds`; `run()` executes it."""

    def __init__(self, graph: Graph, lowered: Lowered, seconds: float) -> None:
        self.graph = graph
        self.lowered = lowered
        self.config: TspConfig = graph.config
        self.compile_seconds = seconds

    @property
    def programs(self) -> list[Program]:
        return [s.program for s in self.lowered.segments]

    @property
    def predicted_cycles(self) -> int:
        return self.lowered.predicted_cycles

    @property
    def segment_cycles(self) -> list[int]:
        return [s.program.predicted_cycles for s in self.lowered.segments]

    def summary(self) -> str:
        head = (f"{len(self.lowered.segments)} segment(s), {self.predicted_cycles} cycles "
                f"predicted on profile {self.config.name}")
        lines = [head]
        for i, s in enumerate(self.lowered.segments):
            words = max(len(w) for w in s.program.queues.values())
            lines.append(f"  segment {i}: {s.layer}, {s.units} unit(s), "
                         f"{s.program.predicted_cycles} cycles, fullest queue {words} of "
                         f"{self.config.queue_depth} words")
        return "\n".join(lines)

    # ---- host-side data ------------------------------------------------------------------
    def _check_inputs(self, inputs: dict | None) -> dict[str, np.ndarray]:
        inputs = dict(inputs or {})
        wanted = {t.name: t for t in self.lowered.host if t.op == "input"}
        missing = sorted(set(wanted) - set(inputs))
        if missing:
            raise TspcError(f"run: missing input(s) {', '.join(missing)}")
        extra = sorted(set(inputs) - set(wanted))
        if extra:
            raise TspcError(f"run: unknown input(s) {', '.join(extra)}; the program's inputs "
                            f"are {', '.join(sorted(wanted)) or 'none'}")
        out = {}
        for name, t in wanted.items():
            arr = np.asarray(inputs[name])
            shape = (t.shape[1],) if t.vector else t.shape
            if arr.shape != shape:
                raise TspcError(f"run: input {name!r} must have shape {shape}, not {arr.shape}")
            if arr.dtype.kind not in "iu":
                raise TspcError(f"run: input {name!r} must be integers (int8), not {arr.dtype}")
            if arr.size and (int(arr.min()) < -128 or int(arr.max()) > 127):
                raise TspcError(f"run: input {name!r} has values outside int8 "
                                f"[{int(arr.min())}, {int(arr.max())}]; nothing is truncated")
            out[name] = arr.reshape(t.shape).astype(np.int64)
        return out

    def host_writes(self, inputs: dict | None = None) -> list[tuple[int, int, bytes]]:
        """Every (position, address, bytes) the host writes before the first segment: inputs,
        constants (weights) and biases, in the layout the compiler chose."""
        vals = self._check_inputs(inputs)
        n = self.config.vec_bytes
        writes: list[tuple[int, int, bytes]] = []
        for t in self.lowered.host:
            st = self.lowered.stores[t.name]
            value = t.attrs["value"] if t.op == "const" else vals[t.name]
            if st.kind == "wstream":                   # streamed GEMV layout (tspc/gemv.py)
                k, nn = t.shape
                pad = np.zeros((-(-k // n) * n, -(-nn // n) * n), dtype=np.int64)
                pad[:k, :nn] = value
                for p, a, row, nb in st.wmap:
                    writes.append((p, a, pad[row, nb * n:(nb + 1) * n].astype(np.int8).tobytes()))
            elif st.kind == "xstream":                 # x inside the GEMV's regions
                for p, a, kb in st.xmap:
                    writes.append((p, a, self._act_block(value, kb)))
            elif st.kind == "weights":
                k, nn = t.shape
                kb_n = -(-k // n)
                pad = np.zeros((kb_n * n, -(-nn // n) * n), dtype=np.int64)
                pad[:k, :nn] = value
                for c in st.copies.values():
                    for (blk, _), ((p, a),) in c.blocks.items():
                        nb, kb = divmod(blk, kb_n)
                        for i in range(n):
                            row = pad[kb * n + i, nb * n:(nb + 1) * n]
                            writes.append((p, a + i, row.astype(np.int8).tobytes()))
            else:
                writes += self._act_writes(st, value)
        for p, a in self.lowered.zeros:                 # zero words (reshape merges)
            writes.append((p, a, bytes(n)))
        for c, blocks in self.lowered.biases:
            for nb in range(blocks.shape[0]):
                planes = split_sg4(blocks[nb].astype(np.int32))
                for b, (p, a) in enumerate(c.blocks[(nb, 0)]):
                    writes.append((p, a, planes[b].tobytes()))
        return writes

    def _act_block(self, value: np.ndarray, cb: int) -> bytes:
        """Column block cb of a 1-row int8 tensor, zero-padded to a vector."""
        n = self.config.vec_bytes
        row = np.zeros(n, dtype=np.int64)
        v = np.asarray(value, dtype=np.int64).reshape(-1)[cb * n:(cb + 1) * n]
        row[:v.size] = v
        return row.astype(np.int8).tobytes()

    def _act_writes(self, st: Store, value: np.ndarray) -> list[tuple[int, int, bytes]]:
        n = self.config.vec_bytes
        m, k = value.shape
        pad = np.zeros((m, st.cblocks * n), dtype=np.int64)
        pad[:, :k] = value
        out = []
        for c in st.copies.values():
            for (mb, cb), ((p, a),) in c.blocks.items():
                for r in range(st.rows(mb)):
                    row = pad[mb * st.mblock + r, cb * n:(cb + 1) * n]
                    out.append((p, a + r, row.astype(np.int8).tobytes()))
        return out

    def reads(self) -> list[tuple[int, int]]:
        """Every (position, address) the host reads back for the outputs."""
        out = []
        for t in self.graph.outputs.values():
            out += [pa for _, pa in self._output_words(t)]
        return out

    def _output_words(self, t: Tensor):
        """[((mb, cb, r, plane), (position, address))] of output `t`, from one copy."""
        st = self.lowered.stores[t.name]
        res = []
        for mb in range(st.mblocks):
            for cb in range(st.cblocks):
                side = st.written[(mb, cb)]
                for plane, (p, a) in enumerate(st.addr(side, mb, cb)):
                    for r in range(st.rows(mb)):
                        res.append(((mb, cb, r, plane), (p, a + r)))
        return res

    def _assemble(self, read) -> dict[str, np.ndarray]:
        n = self.config.vec_bytes
        outs = {}
        for name, t in self.graph.outputs.items():
            st = self.lowered.stores[t.name]
            m, nn = t.shape
            planes = 4 if t.dtype == "int32" else 1
            raw = np.zeros((planes, m, st.cblocks * n), dtype=np.uint8)
            for (mb, cb, r, pl), (p, a) in self._output_words(t):
                raw[pl, mb * st.mblock + r, cb * n:(cb + 1) * n] = read(p, a)
            if t.dtype == "int32":
                val = join_sg4(raw.reshape(4, -1)).reshape(m, -1)[:, :nn].astype(np.int32)
            else:
                val = raw[0].view(np.int8)[:, :nn].copy()
            outs[name] = val.reshape(nn) if t.vector else val
        return outs

    # ---- running -------------------------------------------------------------------------
    def run(self, inputs: dict | None = None, backend: str = "model", waves: bool = False,
            activity: bool = False) -> RunResult:
        """Write inputs and constants, run every segment on `backend` ("model", "icarus" or
        "verilator"), read the outputs. Raises `TspcError` if a segment reports an error flag
        or its measured cycle count differs from the prediction (determinism is checked on
        every run)."""
        if backend not in BACKENDS:
            raise TspcError(f"run: unknown backend {backend!r}; choose one of "
                            f"{', '.join(BACKENDS)}")
        writes = self.host_writes(inputs)
        t0 = time.perf_counter()
        if backend == "model":
            res = self._run_model(writes, activity)
        else:
            if activity:
                raise TspcError("run: activity records come from the golden model; use "
                                "backend='model' for the activity plot")
            res = self._run_rtl(writes, backend, waves)
        res.seconds = time.perf_counter() - t0
        bad = [(i, f) for i, f in enumerate(res.err_flags) if f]
        if bad:
            raise TspcError(f"run on {backend}: segment {bad[0][0]} ended with error flags "
                            f"{bad[0][1]:#x}")
        if res.segment_cycles != self.segment_cycles:
            raise TspcError(f"run on {backend}: measured cycles {res.segment_cycles} differ "
                            f"from the compiler's prediction {self.segment_cycles}")
        return res

    def _run_model(self, writes, activity: bool) -> RunResult:
        from sim import TspModel
        m = TspModel(self.config)
        for p, a, v in writes:
            m.write_mem(p, a, v)
        cycles, flags, results = [], [], []
        for prog in self.programs:
            for p in range(self.config.num_positions):
                m.load_queue(p, prog.queues.get(p) or [0])
            r = m.run(activity=True) if activity else m.run()
            cycles.append(r.cycles)
            flags.append(r.err_flags)
            results.append(r)
        outs = self._assemble(m.read_mem)
        return RunResult(outs, sum(cycles), cycles, self.predicted_cycles, "model", flags, 0.0,
                         model_results=results)

    def _run_rtl(self, writes, sim: str, waves: bool) -> RunResult:
        from tb.runner import run_rtl
        progs = []
        for i, prog in enumerate(self.programs):
            q = copy.copy(prog)
            q.queues = {p: list(prog.queues.get(p) or [0])
                        for p in range(self.config.num_positions)}
            q.data = list(writes) if i == 0 else []
            progs.append(q)
        r = run_rtl(progs, self.reads(), sim=sim, waves=waves)
        outs = self._assemble(lambda p, a: r.mem[(p, a)])
        return RunResult(outs, sum(r.cycles), list(r.cycles), self.predicted_cycles, sim,
                         list(r.err_flags), 0.0, wave_file=r.wave_file)


def compile(graph: Graph) -> CompiledProgram:
    """Allocate, lower and schedule `graph`; every segment is verified by the assembler's
    checker, which also predicts its cycle count."""
    t0 = time.perf_counter()
    low = lower(graph)
    return CompiledProgram(graph, low, time.perf_counter() - t0)
