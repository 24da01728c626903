"""cocotb testbench of the TSP slice: harness, random programs, cocotb tests."""
