"""Stream fabric: the eastward and westward stream registers of every position.

Timing (docs/architecture.md, section 2): every cycle each register loads either the value its
own position's unit produces on that stream/direction, or its upstream neighbour; zeros enter at
the edges. So a value moves one position per cycle and falls off the chip edge. `clear` zeroes
every register (used at program START).

Signals (P positions, S streams, V = vec_bits), see `StreamFabric`:
  wen[p][d]      S-bit mask: the unit at p writes stream s in direction d (0 east, 1 west)
  wdata[p][d][s] the value written on stream s
  cur[p][d][s]   the register contents during this cycle
"""
from amaranth import Array, Cat, Const, Elaboratable, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data

from tsp.config import TspConfig

__all__ = ["StreamFabric", "select_onehot", "select_stream", "stream_layout", "stream_onehot"]


def stream_layout(config: TspConfig) -> data.ArrayLayout:
    """The S vectors of one direction at one position."""
    return data.ArrayLayout(unsigned(config.vec_bits), config.streams)


def select_stream(config: TspConfig, cur_e, cur_w, operand, lo: int = 0, width: int | None = None):
    """Bits [lo, lo+width) of the vector named by a 6-bit stream operand (bit 5 = west); zero
    for an index >= streams. Slicing before selecting keeps narrow selects (e.g. the 16-bit
    GATHER/SCATTER addresses) narrow in the netlist."""
    S = config.streams
    width = config.vec_bits - lo if width is None else width
    ibits = max(1, (S - 1).bit_length())
    idx = operand[:ibits]
    pad = [Const(0, width)] * ((1 << ibits) - S)
    east = Array([cur_e[i][lo:lo + width] for i in range(S)] + pad)
    west = Array([cur_w[i][lo:lo + width] for i in range(S)] + pad)
    valid = operand[:5] < S
    return Mux(valid, Mux(operand[5], west[idx], east[idx]), 0)


def stream_onehot(config: TspConfig, operand) -> Value:
    """2*S-bit one-hot decode of a 6-bit stream operand: bit `d*S + i` is set for direction `d`
    (operand bit 5), index `i`; no bit is set for an index >= streams."""
    S = config.streams
    return Cat(*[operand[:6] == (d << 5 | i) for d in (0, 1) for i in range(S)])


def select_onehot(config: TspConfig, cur_e, cur_w, onehot, lo: int = 0,
                  width: int | None = None) -> Value:
    """Bits [lo, lo+width) of the vector picked by a `stream_onehot` select (zero if no bit set),
    built as an AND-OR. Drive `onehot` straight from flip-flops: the synthesiser then maps this
    to about 11 LUT4 per bit (an equivalent binary 16:1 mux costs about 21-29 under abc9), and it
    cannot re-merge a combinational decode into wide LUTs."""
    S = config.streams
    width = config.vec_bits - lo if width is None else width
    terms = [cur[i][lo:lo + width] & onehot[d * S + i].replicate(width)
             for d, cur in ((0, cur_e), (1, cur_w)) for i in range(S)]
    while len(terms) > 1:        # balanced OR tree
        terms = [terms[j] | terms[j + 1] if j + 1 < len(terms) else terms[j]
                 for j in range(0, len(terms), 2)]
    return terms[0]


class StreamFabric(Elaboratable):
    """The stream registers. Plain per-register signals (not one wide port) keep elaboration fast.

    wen[p][d]      Signal(S): stream mask the unit at p writes in direction d this cycle
    wdata[p][d][s] Signal(V): the value written
    cur[p][d][s]   Signal(V): register contents during this cycle
    clear          Signal():  zero every register at the next edge
    """

    def __init__(self, config: TspConfig):
        self.config = config
        P, S, V = config.num_positions, config.streams, config.vec_bits
        names = config.positions
        self.clear = Signal()
        self.wen = [[Signal(S, name=f"wen_{names[p]}_{'EW'[d]}") for d in (0, 1)]
                    for p in range(P)]
        self.wdata = [[[Signal(V, name=f"wdata_{names[p]}_{'EW'[d]}{s}") for s in range(S)]
                       for d in (0, 1)] for p in range(P)]
        self.cur = [[[Signal(V, name=f"{'EW'[d]}{s}_{names[p]}") for s in range(S)]
                     for d in (0, 1)] for p in range(P)]

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        P, S = cfg.num_positions, cfg.streams
        loads = []
        for p in range(P):
            for d in (0, 1):
                upstream = p - 1 if d == 0 else p + 1
                for s in range(S):
                    incoming = (self.cur[upstream][d][s] if 0 <= upstream < P
                                else Const(0, cfg.vec_bits))
                    nxt = Mux(self.wen[p][d][s], self.wdata[p][d][s], incoming)
                    loads.append(self.cur[p][d][s].eq(Mux(self.clear, 0, nxt)))
        m.d.sync += loads
        return m


def flatten_direction(fabric: StreamFabric, d: int):
    """All registers of direction d as one value: ((p*S + s)*V) bit order (the dbg_* ports)."""
    cfg = fabric.config
    return Cat(*[fabric.cur[p][d][s] for p in range(cfg.num_positions)
                 for s in range(cfg.streams)])
