"""Host-visible constants, defined once: the CSR map and the error flags.

docs/architecture.md sections 4 and 5 describe them; the RTL (hdl/top.py), the golden model
(sim/), the testbenches (tb/) and the FPGA bridge tests all import them from here. The memory
windows depend on the configuration: `TspConfig.address_map()`.
"""
__all__ = ["CSR", "CTRL_START", "DEADLOCK_POSITION", "ERR_BITS", "ERR_WIDTH", "ID_VALUE",
           "STATUS_DONE", "STATUS_ERROR", "STATUS_RUNNING"]

ID_VALUE = 0x54535031  # "TSP1"

# CSR byte offsets (all 32-bit registers).
CSR = {"ID": 0x00, "ISA_VERSION": 0x04, "CONFIG0": 0x08, "CONFIG1": 0x0C, "CTRL": 0x10,
       "STATUS": 0x14, "CYCLES": 0x18, "ERR_FLAGS": 0x1C, "ERR_WHERE": 0x20, "ERR_CYCLE": 0x24}

CTRL_START = 1
STATUS_RUNNING, STATUS_DONE, STATUS_ERROR = 1, 2, 4

# Error flag bit numbers in ERR_FLAGS (and in a compute unit's `err` output).
ERR_BITS = {"BANK_CONFLICT": 0, "ENGINE_BUSY": 1, "DEADLOCK": 2, "ILLEGAL": 3, "BAD_MAP": 4,
            "RANGE": 5}
ERR_WIDTH = len(ERR_BITS)
# ERR_WHERE position recorded for DEADLOCK (a chip-wide error).
DEADLOCK_POSITION = 0xFFFF
