# FPGA flow of the TSP slice: UART-to-AXI4-Lite bridge, board top, build and report scripts.
"""FPGA flow: `fpga.uart`, `fpga.bridge`, `fpga.board`, `fpga.build`, `fpga.report`.

See docs/fpga.md.
"""
