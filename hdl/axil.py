"""AXI4-Lite interface signature (the host port).

`AxiLiteSignature(addr_width, data_width)` is seen from the manager (initiator): the manager
drives aw*/w*/ar* and `bready`/`rready`. A subordinate (our host port) uses
`In(AxiLiteSignature(...))`, i.e. the flipped signature.
"""
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RESP_DECERR", "RESP_OKAY", "RESP_SLVERR", "AxiLiteSignature"]

RESP_OKAY = 0b00
RESP_SLVERR = 0b10
RESP_DECERR = 0b11


class AxiLiteSignature(wiring.Signature):
    def __init__(self, addr_width: int = 32, data_width: int = 32):
        if data_width not in (32, 64):
            raise ValueError(f"AXI4-Lite data_width must be 32 or 64, not {data_width!r}")
        if not isinstance(addr_width, int) or addr_width < 1:
            raise TypeError(f"addr_width must be a positive integer, not {addr_width!r}")
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })
