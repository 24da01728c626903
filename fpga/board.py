# Board top of the FPGA build: the board clock drives the `sync` domain, a push button resets it,
# the USB serial port reaches the TSP's AXI4-Lite host port through the UART bridge, and LEDs
# show irq_done and a heartbeat. Boards are listed in `BOARDS`.
"""Board-level top (`TspBoard`) and the supported boards (`BOARDS`, `board_spec`)."""
from collections.abc import Callable
from dataclasses import dataclass

from amaranth.build import Platform
from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer

from tsp.config import TspConfig

from .bridge import DEFAULT_TIMEOUT_S, UartAxiBridge

__all__ = ["BOARDS", "BoardSpec", "TspBoard", "board_spec"]


@dataclass(frozen=True)
class BoardSpec:
    """A supported board: its amaranth-boards platform and the device's resource totals."""

    name: str
    platform: Callable[[], Platform]
    device: str
    #: Device totals used for the percentages of a synth-only report (nextpnr reports its own).
    totals: dict
    reset_button: tuple[str, int]
    uart: tuple[str, int] = ("uart", 0)
    irq_led: int = 0
    heartbeat_led: int = 7


def _ulx3s_85f() -> Platform:
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    return ULX3S_85F_Platform()


BOARDS: dict[str, BoardSpec] = {
    "ulx3s-85f": BoardSpec(
        name="ulx3s-85f", platform=_ulx3s_85f, device="LFE5U-85F",
        # LFE5U-85F: 83640 LUT4s / flip-flops, 208 DP16KD (18 Kbit), 156 MULT18X18D.
        totals={"LUT4": 83640, "TRELLIS_FF": 83640, "DP16KD": 208, "MULT18X18D": 156},
        reset_button=("button_fire", 0)),   # "F1" button, active high
}


def board_spec(name: str) -> BoardSpec:
    """The `BoardSpec` called `name`; raises ValueError listing the known boards."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(
            f"unknown board {name!r}; known boards: {', '.join(sorted(BOARDS))}") from None


class TspBoard(Elaboratable):
    """Board top around `hdl.top.TspTop(config, debug=False)`.

    `core` replaces the TSP by any component with `s_axil: In(AxiLiteSignature(32, 32))` and
    `irq_done: Out(1)` (used to test the board flow without the TSP). `baud` is the serial
    speed, `timeout_s` the bridge's inter-byte timeout.
    """

    def __init__(self, config: TspConfig, spec: BoardSpec, *, baud: float = 115200,
                 timeout_s: float = DEFAULT_TIMEOUT_S, core: wiring.Component | None = None):
        if not isinstance(config, TspConfig):
            raise TypeError(f"TspBoard config must be a TspConfig, not {config!r}")
        self.config = config
        self.spec = spec
        self.baud = baud
        self.timeout_s = timeout_s
        self.core = core

    def elaborate(self, platform: Platform) -> Module:
        if platform is None:
            raise ValueError("TspBoard must be elaborated for a board platform (platform=None)")
        m = Module()
        clk_freq = platform.default_clk_frequency

        def pin(direction: str, resource: str, number: int, sub: str | None = None):
            port = platform.request(resource, number, dir="-")
            buf = io.Buffer(direction, getattr(port, sub) if sub else port)
            m.submodules[f"{resource}{number}{'_' + sub if sub else ''}_buf"] = buf
            return buf

        m.domains.sync = ClockDomain("sync")
        m.d.comb += ClockSignal("sync").eq(pin("i", platform.default_clk, 0).i)
        m.submodules.reset_sync = ResetSynchronizer(pin("i", *self.spec.reset_button).i,
                                                    domain="sync")

        core = self.core
        if core is None:
            from hdl.top import TspTop  # imported when elaborated: the RTL is a separate package
            core = TspTop(self.config, debug=False)
        m.submodules.tsp = core
        m.submodules.bridge = bridge = UartAxiBridge(clk_freq, self.baud, self.timeout_s)
        wiring.connect(m, bridge.m_axil, core.s_axil)

        uart_port = platform.request(*self.spec.uart, dir="-")
        m.submodules.uart_rx_buf = rx_buf = io.Buffer("i", uart_port.rx)
        m.submodules.uart_tx_buf = tx_buf = io.Buffer("o", uart_port.tx)
        m.d.comb += [bridge.rx.eq(rx_buf.i), tx_buf.o.eq(bridge.tx)]

        m.d.comb += pin("o", "led", self.spec.irq_led).o.eq(core.irq_done)
        heartbeat = Signal(range(int(clk_freq)))   # the LED toggles every half second
        beat = Signal()
        with m.If(heartbeat == int(clk_freq) // 2 - 1):
            m.d.sync += [heartbeat.eq(0), beat.eq(~beat)]
        with m.Else():
            m.d.sync += heartbeat.eq(heartbeat + 1)
        m.d.comb += pin("o", "led", self.spec.heartbeat_led).o.eq(beat)
        return m
