# The TSP compiler (tspc): tensor programs written with `Graph` are allocated, lowered and
# scheduled cycle by cycle into checked chip programs, and run on the golden model or the RTL.
# docs/compiler.md is the design; docs/user_guide.md shows how to use it.
"""tspc: compile numpy-like int8 tensor programs for the TSP slice.

    import tspc
    g = tspc.Graph("full")
    x = g.input("x", (64, 64))
    y = g.requantize(x @ g.const("w", w_int8), multiplier=m, shift=s, relu=True)
    g.output("y", y)
    prog = tspc.compile(g)
    res = prog.run({"x": x_int8}, backend="model")      # or "icarus", "verilator"
    res.outputs["y"], res.cycles == prog.predicted_cycles
"""
from .compiler import BACKENDS, CompiledProgram, RunResult, compile
from .graph import Graph, Tensor, TspcError

__all__ = ["BACKENDS", "CompiledProgram", "Graph", "RunResult", "Tensor", "TspcError",
           "compile"]
