"""Amaranth RTL of the TSP slice. `python -m hdl.build` emits Verilog."""
