# UART-to-AXI4-Lite bridge: a byte protocol (below) that lets a host PC reach the TSP's AXI4-Lite
# host port through the board's USB serial port. RTL (`AxiLiteBridge`, `UartAxiBridge`) plus
# host-side helpers (`encode_read`, `encode_write`, `BridgeClient`).
"""UART byte protocol -> AXI4-Lite manager.

Protocol (all multi-byte fields little-endian, like the rest of the project):

=========  ===================================  ==========================================
command    host -> board                        board -> host
=========  ===================================  ==========================================
write      ``0x57`` ('W'), A0 A1 A2 A3,         1 byte: ``resp``
           D0 D1 D2 D3  (9 bytes)
read       ``0x52`` ('R'), A0 A1 A2 A3           5 bytes: ``resp``, D0 D1 D2 D3 (rdata)
           (5 bytes)
=========  ===================================  ==========================================

``resp`` is the AXI response code (``0x00`` OKAY, ``0x02`` SLVERR, ``0x03`` DECERR) of the one
AXI4-Lite transaction the frame performed (writes use ``WSTRB = 0xF``, ``*PROT = 0``). The bridge
answers frames it cannot execute with one byte, bit 7 set, and performs no AXI transaction:

- ``0x80`` (`RESP_BAD_COMMAND`): the first byte of a frame was neither 'W' nor 'R';
- ``0x81`` (`RESP_TIMEOUT`): a frame stopped for longer than the inter-byte timeout;
- ``0x82`` (`RESP_FRAMING`): a byte of the frame had a bad stop bit (UART framing error).

The host sends one frame and waits for its whole reply before sending the next one; bytes
arriving while the bridge executes a transaction or sends its reply are dropped. The timeout
re-synchronises a host that lost track of the framing: wait longer than the timeout, then send
a new frame.
"""

from typing import ClassVar, Protocol

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.axil import AxiLiteSignature

from .uart import UartRx, UartTx

__all__ = ["CMD_READ", "CMD_WRITE", "RESP_BAD_COMMAND", "RESP_FRAMING", "RESP_TIMEOUT",
           "AxiLiteBridge", "BridgeClient", "BridgeError", "UartAxiBridge", "encode_read",
           "encode_write"]

CMD_WRITE = 0x57  # 'W'
CMD_READ = 0x52   # 'R'
RESP_BAD_COMMAND = 0x80
RESP_TIMEOUT = 0x81
RESP_FRAMING = 0x82

#: Default inter-byte timeout of a frame, in seconds.
DEFAULT_TIMEOUT_S = 0.02


class AxiLiteBridge(wiring.Component):
    """Byte-stream side of the bridge: parses frames, runs AXI4-Lite transactions, replies.

    `rx_data`/`rx_valid` are received bytes (one-cycle strobe), `rx_err` a framing-error strobe;
    `tx_data`/`tx_valid`/`tx_ready` send reply bytes; `m_axil` is the AXI4-Lite manager port.
    `timeout_cycles` is the inter-byte timeout (0 disables it).
    """

    rx_data: In(8)
    rx_valid: In(1)
    rx_err: In(1)
    tx_data: Out(8)
    tx_valid: Out(1)
    tx_ready: In(1)
    m_axil: Out(AxiLiteSignature(32, 32))

    def __init__(self, timeout_cycles: int = 0):
        if not isinstance(timeout_cycles, int) or timeout_cycles < 0:
            raise ValueError(
                f"AxiLiteBridge timeout_cycles must be a non-negative integer, "
                f"not {timeout_cycles!r}")
        self.timeout_cycles = timeout_cycles
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        axi = self.m_axil
        is_write = Signal()
        count = Signal(2)
        addr = Signal(32)
        wdata = Signal(32)
        aw_done = Signal()
        w_done = Signal()
        out_buf = Signal(40)    # reply bytes, byte 0 first
        out_left = Signal(range(6))
        timer = Signal(range(max(2, self.timeout_cycles + 1)))

        m.d.comb += [
            axi.awaddr.eq(addr), axi.araddr.eq(addr), axi.wdata.eq(wdata),
            axi.wstrb.eq(0xF), axi.awprot.eq(0), axi.arprot.eq(0),
            self.tx_data.eq(out_buf[:8]),
        ]

        def reply(m, byte, data=None, nbytes=1):
            data = Const(0, 32) if data is None else data
            m.d.sync += [out_buf[:8].eq(byte), out_buf[8:].eq(data), out_left.eq(nbytes)]
            m.next = "SEND"

        def frame_guard(m):
            """In the middle of a frame: framing error or inter-byte timeout aborts it."""
            with m.If(self.rx_err):
                reply(m, RESP_FRAMING)
            if self.timeout_cycles > 0:
                with m.Elif(~self.rx_valid & (timer == 0)):
                    reply(m, RESP_TIMEOUT)
                with m.If(self.rx_valid):
                    m.d.sync += timer.eq(self.timeout_cycles - 1)
                with m.Elif(timer != 0):
                    m.d.sync += timer.eq(timer - 1)

        with m.FSM(name="bridge"):
            with m.State("IDLE"):
                m.d.sync += [count.eq(0), aw_done.eq(0), w_done.eq(0)]
                if self.timeout_cycles > 0:
                    m.d.sync += timer.eq(self.timeout_cycles - 1)
                with m.If(self.rx_valid):
                    with m.If(self.rx_data == CMD_WRITE):
                        m.d.sync += is_write.eq(1)
                        m.next = "ADDR"
                    with m.Elif(self.rx_data == CMD_READ):
                        m.d.sync += is_write.eq(0)
                        m.next = "ADDR"
                    with m.Else():
                        reply(m, RESP_BAD_COMMAND)
            with m.State("ADDR"):
                with m.If(self.rx_valid & ~self.rx_err):
                    m.d.sync += [addr.eq(Cat(addr[8:], self.rx_data)), count.eq(count + 1)]
                    with m.If(count == 3):
                        with m.If(is_write):
                            m.next = "DATA"
                        with m.Else():
                            m.next = "AR"
                frame_guard(m)
            with m.State("DATA"):
                with m.If(self.rx_valid & ~self.rx_err):
                    m.d.sync += [wdata.eq(Cat(wdata[8:], self.rx_data)), count.eq(count + 1)]
                    with m.If(count == 3):
                        m.next = "AW_W"
                frame_guard(m)
            with m.State("AW_W"):
                m.d.comb += [axi.awvalid.eq(~aw_done), axi.wvalid.eq(~w_done)]
                aw_now = aw_done | axi.awready
                w_now = w_done | axi.wready
                m.d.sync += [aw_done.eq(aw_now), w_done.eq(w_now)]
                with m.If(aw_now & w_now):
                    m.next = "B"
            with m.State("B"):
                m.d.comb += axi.bready.eq(1)
                with m.If(axi.bvalid):
                    reply(m, axi.bresp)
            with m.State("AR"):
                m.d.comb += axi.arvalid.eq(1)
                with m.If(axi.arready):
                    m.next = "R"
            with m.State("R"):
                m.d.comb += axi.rready.eq(1)
                with m.If(axi.rvalid):
                    reply(m, axi.rresp, axi.rdata, 5)
            with m.State("SEND"):
                m.d.comb += self.tx_valid.eq(1)
                with m.If(self.tx_ready):
                    m.d.sync += [out_buf.eq(out_buf >> 8), out_left.eq(out_left - 1)]
                    with m.If(out_left == 1):
                        m.next = "IDLE"
        return m


class UartAxiBridge(wiring.Component):
    """`UartRx` + `AxiLiteBridge` + `UartTx`: serial lines in, AXI4-Lite manager out.

    `rx`/`tx` are the board's serial lines (idle high). `timeout_s` is the inter-byte timeout
    of a frame in seconds (0 disables it).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    m_axil: Out(AxiLiteSignature(32, 32))

    def __init__(self, clk_freq: float, baud: float = 115200,
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        if not isinstance(timeout_s, (int, float)) or timeout_s < 0:
            raise ValueError(f"UartAxiBridge timeout_s must be >= 0 seconds, not {timeout_s!r}")
        self.clk_freq = clk_freq
        self.baud = baud
        self.timeout_cycles = round(timeout_s * clk_freq)
        # Validate clock/baud now (raises with a clear message).
        self._rx = UartRx(clk_freq, baud)
        self._tx = UartTx(clk_freq, baud)
        self._core = AxiLiteBridge(self.timeout_cycles)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = self._rx
        m.submodules.tx = tx = self._tx
        m.submodules.core = core = self._core
        m.d.comb += [
            rx.rx.eq(self.rx), self.tx.eq(tx.tx),
            core.rx_data.eq(rx.data), core.rx_valid.eq(rx.valid), core.rx_err.eq(rx.frame_err),
            tx.data.eq(core.tx_data), tx.valid.eq(core.tx_valid), core.tx_ready.eq(tx.ready),
        ]
        wiring.connect(m, wiring.flipped(self.m_axil), core.m_axil)
        return m


# ---- host side -------------------------------------------------------------------------------

class BridgeError(RuntimeError):
    """The bridge answered with an error, or the serial link misbehaved."""


def _check_word(name: str, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value < 1 << 32:
        raise ValueError(f"bridge {name} must be an integer in [0, 2**32), not {value!r}")


def encode_write(addr: int, data: int) -> bytes:
    """The 9-byte write frame for `addr`, `data`."""
    _check_word("address", addr)
    _check_word("data", data)
    return bytes([CMD_WRITE]) + addr.to_bytes(4, "little") + data.to_bytes(4, "little")


def encode_read(addr: int) -> bytes:
    """The 5-byte read frame for `addr`."""
    _check_word("address", addr)
    return bytes([CMD_READ]) + addr.to_bytes(4, "little")


class SerialLike(Protocol):
    def write(self, data: bytes) -> int | None: ...
    def read(self, size: int) -> bytes: ...


class BridgeClient:
    """Host-side driver over any object with `write(bytes)` and `read(n)` (e.g. a pyserial
    `Serial` with a timeout). Raises `BridgeError` on a non-OKAY response or a short reply."""

    _RESP_NAMES: ClassVar[dict[int, str]] = {0: "OKAY", 1: "EXOKAY", 2: "SLVERR", 3: "DECERR",
                   RESP_BAD_COMMAND: "bad command", RESP_TIMEOUT: "frame timeout",
                   RESP_FRAMING: "framing error"}

    def __init__(self, port: SerialLike):
        self.port = port

    def _read_exact(self, n: int, what: str) -> bytes:
        data = self.port.read(n)
        if len(data) != n:
            raise BridgeError(f"{what}: expected {n} reply bytes, got {len(data)} ({data.hex()})")
        return data

    def _reply(self, n: int, what: str) -> bytes:
        data = self._read_exact(1, what)
        if not data[0] & 0x80 and n > 1:   # AXI responses carry the data bytes, even on error
            data += self._read_exact(n - 1, what)
        if data[0] != 0:
            name = self._RESP_NAMES.get(data[0], "unknown")
            raise BridgeError(f"{what}: bridge answered {data[0]:#04x} ({name})")
        return data

    def write(self, addr: int, data: int) -> None:
        """AXI write of one 32-bit word."""
        self.port.write(encode_write(addr, data))
        self._reply(1, f"write {addr:#010x}")

    def read(self, addr: int) -> int:
        """AXI read of one 32-bit word."""
        self.port.write(encode_read(addr))
        return int.from_bytes(self._reply(5, f"read {addr:#010x}")[1:], "little")
