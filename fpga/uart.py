# UART receiver and transmitter (8 data bits, no parity, 1 stop bit: "8N1"), parameterised by the
# clock frequency and the baud rate. Used by the UART-to-AXI4-Lite bridge of the FPGA flow.
"""8N1 UART receiver (`UartRx`) and transmitter (`UartTx`) as Amaranth components.

Both take `clk_freq` (Hz) and `baud` (bit/s) and derive the bit period
`divisor = round(clk_freq / baud)` clock cycles (see `uart_divisor`).
"""
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["MIN_DIVISOR", "UartRx", "UartTx", "uart_divisor"]

#: Smallest supported bit period in clock cycles (the receiver samples in the middle of a bit).
MIN_DIVISOR = 4
#: Largest tolerated mismatch between the requested and the realised baud rate.
MAX_BAUD_ERROR = 0.02


def uart_divisor(clk_freq: float, baud: float) -> int:
    """Clock cycles per bit for `clk_freq` and `baud`; raises ValueError if unusable."""
    if not isinstance(clk_freq, (int, float)) or clk_freq <= 0:
        raise ValueError(f"UART clk_freq must be a positive number of Hz, not {clk_freq!r}")
    if not isinstance(baud, (int, float)) or baud <= 0:
        raise ValueError(f"UART baud must be a positive number of bit/s, not {baud!r}")
    divisor = round(clk_freq / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(
            f"UART baud {baud!r} is too high for clk_freq {clk_freq!r}: one bit lasts "
            f"{clk_freq / baud:.2f} clock cycles, at least {MIN_DIVISOR} are needed")
    error = abs(clk_freq / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(
            f"UART baud {baud!r} cannot be made from clk_freq {clk_freq!r}: the nearest divisor "
            f"{divisor} gives {clk_freq / divisor:.1f} bit/s ({100 * error:.1f}% off, "
            f"max {100 * MAX_BAUD_ERROR:.0f}%)")
    return divisor


class UartRx(wiring.Component):
    """8N1 receiver.

    `rx` is the (asynchronous) line, idle high; it goes through a 2-flop synchroniser. A byte
    is sampled in the middle of each bit. When the stop bit is high, `data` holds the byte and
    `valid` is high for one cycle; when it is low, `frame_err` is high for one cycle instead and
    the byte is dropped. A start bit shorter than half a bit is treated as a glitch and ignored.
    """

    rx: In(1, init=1)
    data: Out(8)
    valid: Out(1)
    frame_err: Out(1)

    def __init__(self, clk_freq: float, baud: float):
        self.divisor = uart_divisor(clk_freq, baud)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        sync1 = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [sync1.eq(self.rx), line.eq(sync1)]

        timer = Signal(range(div + 1))
        bit = Signal(range(8))
        shreg = Signal(8)

        m.d.sync += [self.valid.eq(0), self.frame_err.eq(0)]
        with m.FSM(name="uart_rx"):
            with m.State("IDLE"), m.If(~line):
                m.d.sync += timer.eq(div // 2 - 1)
                m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):  # glitch: the line went back high before mid-start-bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(div - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), timer.eq(div - 1)]
                    m.d.sync += bit.eq(bit + 1)
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(line):
                        m.d.sync += [self.data.eq(shreg), self.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.frame_err.eq(1)
                        m.next = "BREAK"
            # After a framing error wait for the line to go idle before looking for a start
            # bit, so a held-low line (break) is not read as a stream of 0x00 bytes.
            with m.State("BREAK"), m.If(line):
                m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter with a valid/ready byte input.

    A byte is accepted in a cycle where `valid` and `ready` are both high; `ready` is high while
    the transmitter is idle. `tx` is the line, idle high.
    """

    data: In(8)
    valid: In(1)
    ready: Out(1)
    tx: Out(1, init=1)

    def __init__(self, clk_freq: float, baud: float):
        self.divisor = uart_divisor(clk_freq, baud)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        timer = Signal(range(div))
        shreg = Signal(10, init=0x3FF)  # stop bit, 8 data bits (LSB first), start bit
        bits_left = Signal(range(11))

        m.d.comb += self.ready.eq(bits_left == 0)
        m.d.comb += self.tx.eq(shreg[0])
        with m.If((bits_left == 0) & self.valid):
            m.d.sync += [shreg.eq(Cat(0, self.data, 1)), bits_left.eq(10), timer.eq(div - 1)]
        with m.Elif(bits_left == 0):
            pass
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [shreg.eq(Cat(shreg[1:], 1)), bits_left.eq(bits_left - 1),
                         timer.eq(div - 1)]
        return m
