"""ICU instruction queue: one per position, with its own instruction memory.

Executes the ICU instructions (HALT, NOP, REPEAT, SYNC, NOTIFY, CONFIG, IFETCH) itself and hands
unit instructions to its functional unit (`issue`/`instr`) in the cycle they issue. Timing is in
docs/architecture.md section 3: one instruction per cycle, NOP n holds n cycles, REPEAT n,d
re-issues the last unit instruction at tR-1+k*d, SYNC parks until the registered global NOTIFY,
IFETCH writes vec_bytes/4 words, one per cycle, from the instruction stream E0 or W0 (stream
index 0); an IFETCH naming any other stream index is ILLEGAL (a one-cycle no-op).

Pipeline: the instruction memory is a synchronous block RAM read one word ahead; `ir` holds the
issuing instruction (a register, so decode starts from a flip-flop). START (`start`, then
`prime`) takes two cycles before cycle 0.

Ports:
  start, prime, run   In   run-control phases from the top (START cycle 1, 2, then running)
  notify_in           In   some queue issued NOTIFY in the previous cycle
  cur_e, cur_w        In   stream registers at this position (IFETCH reads index 0 only)
  host_*              In/Out instruction-memory access while not running (read data next cycle)
  issue, instr        Out  a unit instruction issues this cycle, and the instruction word
  instr_next          Out  the word `instr` carries next cycle if a unit instruction issues then
                           (lets a unit register decodes one cycle early; same timing)
  notify              Out  this queue issues NOTIFY this cycle
  flags               Out  CONFIG flags in effect this cycle
  active, parked      Out  for the done/deadlock rule
  illegal             Out  an undefined/invalid opcode, or an IFETCH on a stream index other
                           than 0, issued this cycle (error flag ILLEGAL)
"""
from amaranth import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from tsp import isa
from tsp.config import TspConfig

from .decode import OP, fld, is_op, opcode
from .streams import stream_layout

__all__ = ["InstructionQueue"]


class InstructionQueue(wiring.Component):
    def __init__(self, config: TspConfig, unit_kind: str):
        self.config = config
        self.unit_kind = unit_kind
        abits = config.imem_addr_bits
        super().__init__({
            "start": In(1), "prime": In(1), "run": In(1), "notify_in": In(1),
            "cur_e": In(stream_layout(config)), "cur_w": In(stream_layout(config)),
            "host_addr": In(abits), "host_wdata": In(32), "host_we": In(1), "host_re": In(1),
            "host_rdata": Out(32),
            "issue": Out(1), "instr": Out(32), "instr_next": Out(32),
            "notify": Out(1), "flags": Out(16),
            "active": Out(1), "parked": Out(1), "illegal": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        abits = cfg.imem_addr_bits
        k_words = cfg.ifetch_words

        m.submodules.imem = imem = Memory(shape=32, depth=cfg.queue_depth, init=[])
        rd = imem.read_port(transparent_for=())
        wr = imem.write_port()

        ir = Signal(32)
        ir_d = Signal(32)             # next value of ir
        pc = Signal(abits)            # address of the word in ir
        fresh = Signal()              # first cycle of the instruction in ir
        cnt = Signal(17)              # cycles the instruction in ir has been held
        ph = Signal(12)               # REPEAT: (elapsed + 1) mod d
        copies = Signal(12)           # REPEAT: copies issued so far
        halted = Signal()
        last = Signal(32)
        last_d = Signal(32)           # next value of last
        last_valid = Signal()
        flags = Signal(16)
        ifbuf = Signal(cfg.vec_bits)
        advance = Signal()

        m.d.comb += self.flags.eq(flags)
        m.d.comb += [ir_d.eq(ir), last_d.eq(last)]      # hold unless loaded below
        m.d.sync += [ir.eq(ir_d), last.eq(last_d)]
        # Next cycle `instr` is `last` for a REPEAT copy, else the unit instruction in ir; one
        # that issues then was loaded from the read port in this cycle (prime or advance: a unit
        # instruction issues in its first cycle in ir), so rd.data stands for ir_d there.
        m.d.comb += self.instr_next.eq(Mux(opcode(ir_d) == OP["REPEAT"], last_d, rd.data))
        m.d.comb += rd.en.eq(0)          # hold the prefetched word unless told otherwise
        m.d.comb += self.host_rdata.eq(rd.data)

        unit_ops = [i.name for i in isa.INSTRUCTIONS
                    if i.is_unit and isa.valid_on(i, self.unit_kind, cfg.units)]
        is_unit = is_op(ir, *unit_ops) if unit_ops else 0
        elapsed = Mux(fresh, 0, cnt)
        # SYNC decode registered with ir (same value as is_op(ir, "SYNC") in every cycle), so a
        # queue's `active`, which feeds the chip-wide Done reduction, is a function of
        # flip-flops only (docs/fpga.md: the tiny profile's critical path ran through it)
        in_sync = Signal()
        m.d.sync += in_sync.eq(is_op(ir_d, "SYNC"))

        # ---- run control ---------------------------------------------------------------
        with m.If(self.start):
            m.d.comb += [rd.addr.eq(0), rd.en.eq(1)]
            m.d.sync += [pc.eq(0), halted.eq(0), last_valid.eq(0), flags.eq(0)]
            m.d.comb += ir_d.eq(0)
        with m.Elif(self.prime):
            m.d.comb += [rd.addr.eq(1), rd.en.eq(1)]
            m.d.sync += [fresh.eq(1), cnt.eq(0)]
            m.d.comb += ir_d.eq(rd.data)
        with m.Elif(~self.run):
            m.d.comb += [rd.addr.eq(self.host_addr), rd.en.eq(self.host_re),
                         wr.addr.eq(self.host_addr), wr.data.eq(self.host_wdata),
                         wr.en.eq(self.host_we)]
        with m.Elif(~halted):
            # a SYNC is active in its issue cycle (like HALT), parked from the next one
            parked = in_sync & ~fresh & ~self.notify_in
            m.d.comb += [self.active.eq(~parked), self.parked.eq(parked)]
            m.d.sync += [fresh.eq(0), cnt.eq(elapsed + 1)]
            op = opcode(ir)
            with m.Switch(op):
                with m.Case(OP["HALT"]):
                    m.d.sync += halted.eq(1)
                with m.Case(OP["NOP"]):
                    n = fld(ir, "NOP", "n")
                    m.d.comb += advance.eq(elapsed + 1 >= Mux(n == 0, 1, n))
                with m.Case(OP["REPEAT"]):
                    n = fld(ir, "REPEAT", "n")
                    d = fld(ir, "REPEAT", "d")
                    n1 = Mux(n == 0, 1, n)
                    d1 = Mux(d == 0, 1, d)
                    ph_cur = Mux(fresh, Mux(d1 == 1, 0, 1), ph)
                    copies_cur = Mux(fresh, 0, copies)
                    m.d.sync += ph.eq(Mux(ph_cur + 1 == d1, 0, ph_cur + 1))
                    m.d.sync += copies.eq(copies_cur)
                    with m.If(ph_cur == 0):
                        m.d.comb += [self.issue.eq(last_valid), self.instr.eq(last)]
                        m.d.sync += copies.eq(copies_cur + 1)
                        m.d.comb += advance.eq(copies_cur + 1 >= n1)
                with m.Case(OP["SYNC"]):
                    m.d.comb += advance.eq(self.notify_in)
                with m.Case(OP["NOTIFY"]):
                    m.d.comb += [self.notify.eq(1), advance.eq(1)]
                with m.Case(OP["CONFIG"]):
                    m.d.sync += flags.eq(fld(ir, "CONFIG", "flags"))
                    m.d.comb += advance.eq(1)
                with m.Case(OP["IFETCH"]):
                    s = fld(ir, "IFETCH", "s")
                    with m.If(s[:5] != 0):
                        # only the instruction streams E0/W0: anything else is ILLEGAL
                        m.d.comb += [self.illegal.eq(1), advance.eq(1)]
                    with m.Else():
                        live = Mux(s[5], self.cur_w[0], self.cur_e[0])
                        with m.If(fresh):
                            m.d.sync += ifbuf.eq(live)
                        words = Array([ifbuf[32 * j:32 * j + 32] for j in range(k_words)])
                        sel = elapsed[:max(1, (k_words - 1).bit_length())]
                        m.d.comb += [
                            wr.addr.eq(fld(ir, "IFETCH", "addr") + elapsed),
                            wr.data.eq(Mux(fresh, live[:32], words[sel])),
                            wr.en.eq(1),
                            advance.eq(elapsed + 1 >= k_words),
                        ]
                with m.Default():
                    with m.If(is_unit):
                        m.d.comb += [self.issue.eq(1), self.instr.eq(ir)]
                        m.d.sync += last_valid.eq(1)
                        m.d.comb += last_d.eq(ir)
                    with m.Else():
                        m.d.comb += self.illegal.eq(1)
                    m.d.comb += advance.eq(1)
            with m.If(advance):
                m.d.comb += [rd.addr.eq(pc + 2), rd.en.eq(1)]
                m.d.sync += [pc.eq(pc + 1), fresh.eq(1)]
                m.d.comb += ir_d.eq(rd.data)
        return m
