"""MEM slice: two pseudo-dual-port SRAM banks with a read and a write address engine.

A slice word is one vector (vec_bytes); address a selects bank a // bank_depth, row
a % bank_depth. Each bank is a `lib.memory.Memory` with one synchronous read port and one write
port (32-bit write granularity), so it maps to FPGA block RAM.

Timing (docs/architecture.md section 4): a memory instruction issued at t latches the loop
registers (iterations n, step, countdown d); access k happens at t + k*d.
  READ/GATHER: bank read in the access cycle u, data registered onto the stream in u+1, so it
               is in this position's stream register during u+2 (dfunc = 2).
  WRITE/SCATTER: the stream value(s) at this position during u are written in u (dskew = 0);
               the new word is visible to a read in u+1.
Errors: BANK_CONFLICT (read and write on one bank in one cycle: the write is dropped) and
ENGINE_BUSY (an instruction for an engine that still has accesses: the instruction is dropped).
Area: the three stream selects (write data, the two map addresses) are AND-ORs driven by one-hot
registers decoded a cycle early from the queue's `instr_next` (streams.select_onehot); as binary
16:1 muxes on the issue-cycle decode path they cost about twice the LUTs.

Ports:
  run, clear           In   running; START (reset loop registers and engines)
  issue, instr, flags  In   from this position's instruction queue
  instr_next           In   the queue's `instr_next`: the word `instr` carries next cycle
  cur_e, cur_w         In   stream registers at this position
  out_en, out_sel, out_data  Out  a value to put on stream out_sel (6-bit operand) this cycle
  active               Out  engines have work at this cycle or later, or read data in flight
  err_bank_conflict, err_engine_busy  Out  error pulses
  host_*               In/Out word access while not running (32-bit lane `host_lane`; data next cycle)
"""
from amaranth import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from tsp.config import TspConfig

from .decode import fld, is_op
from .streams import select_onehot, stream_layout, stream_onehot

__all__ = ["MemSlice"]


class _Engine:
    """Loop state of one address engine (registers only)."""

    def __init__(self, cfg: TspConfig, name: str):
        abits = cfg.mem_addr_bits
        self.active = Signal(name=f"{name}_active")      # an access at >= this cycle
        self.addr = Signal(abits, name=f"{name}_addr")   # address of the next access
        self.rem = Signal(16, name=f"{name}_rem")        # accesses still to do
        self.cnt = Signal(16, name=f"{name}_cnt")        # cycles until the next access
        self.step = Signal(abits, name=f"{name}_step")   # step, mod 2*bank_depth
        self.d = Signal(16, name=f"{name}_d")
        self.gs = Signal(name=f"{name}_gs")              # GATHER/SCATTER (address from a map)
        self.s = Signal(6, name=f"{name}_s")             # data stream operand


class MemSlice(wiring.Component):
    def __init__(self, config: TspConfig):
        self.config = config
        abits = config.mem_addr_bits
        super().__init__({
            "run": In(1), "clear": In(1),
            "issue": In(1), "instr": In(32), "instr_next": In(32), "flags": In(16),
            "cur_e": In(stream_layout(config)), "cur_w": In(stream_layout(config)),
            "out_en": Out(1), "out_sel": Out(6), "out_data": Out(config.vec_bits),
            "active": Out(1), "err_bank_conflict": Out(1), "err_engine_busy": Out(1),
            "host_addr": In(abits), "host_lane": In(range(max(2, config.vec_bytes // 4))),
            "host_wdata": In(32), "host_we": In(1), "host_re": In(1), "host_rdata": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        D = cfg.bank_depth
        rbits = (D - 1).bit_length()
        abits = cfg.mem_addr_bits
        chunks = cfg.vec_bits // 32
        sl_chunks = cfg.lanes // 4              # 32-bit chunks per superlane

        banks = []
        for b in range(2):
            mem = Memory(shape=unsigned(cfg.vec_bits), depth=D, init=[])
            m.submodules[f"bank{b}"] = mem
            banks.append((mem.read_port(transparent_for=()), mem.write_port(granularity=32)))

        # Stream selects are AND-ORs driven by one-hot registers (streams.select_onehot). Each
        # register holds, during cycle u, the select its engine needs in u: the engine's own
        # operand while it is active (an instruction arriving then is dropped), otherwise the
        # operand of the instruction the queue presents in u, decoded from `instr_next` in u-1.
        def sel_oh(onehot, width=None):
            return select_onehot(cfg, self.cur_e, self.cur_w, onehot, 0, width)

        # Superlane power-down mask -> byte mask and write-chunk enable mask.
        def chunk_enable(flags):
            return Cat(*[~flags[c // sl_chunks] for c in range(chunks)])

        def byte_keep(flags):
            bits = []
            for sl in range(cfg.superlanes):
                bits.append(Mux(flags[sl], Const(0, cfg.lanes * 8),
                                Const((1 << (cfg.lanes * 8)) - 1, cfg.lanes * 8)))
            return Cat(*bits)

        instr = self.instr
        n_reg = Signal(16, init=1)
        step_reg = Signal(16, init=1)
        d_reg = Signal(16, init=1)

        rd_eng = _Engine(cfg, "rd")
        wr_eng = _Engine(cfg, "wr")

        new_rd = self.issue & is_op(instr, "READ", "GATHER")
        new_wr = self.issue & is_op(instr, "WRITE", "SCATTER")

        # Access of each engine this cycle: (valid, address, gather/scatter, s, m)
        r_acc, r_addr = Signal(), Signal(abits)
        w_acc, w_addr = Signal(), Signal(abits)
        r_s = Signal(6)
        w_s = Signal(6)

        with m.If(self.clear):
            m.d.sync += [n_reg.eq(1), step_reg.eq(1), d_reg.eq(1)]

        with m.If(self.run & self.issue):
            with m.If(is_op(instr, "ITERATIONS")):
                m.d.sync += n_reg.eq(fld(instr, "ITERATIONS", "n"))
            with m.If(is_op(instr, "STEP")):
                m.d.sync += step_reg.eq(fld(instr, "STEP", "s"))
            with m.If(is_op(instr, "COUNTDOWN")):
                m.d.sync += d_reg.eq(fld(instr, "COUNTDOWN", "d"))

        n1 = Mux(n_reg == 0, 1, n_reg)
        d1 = Mux(d_reg == 0, 1, d_reg)

        nxt = self.instr_next
        m_oh_next = stream_onehot(cfg, fld(nxt, "GATHER", "m"))    # SCATTER's m is the same field
        ws_oh_next = stream_onehot(cfg, Mux(is_op(nxt, "SCATTER"), fld(nxt, "SCATTER", "s"),
                                            fld(nxt, "WRITE", "s")))
        w_oh = Signal(2 * cfg.streams)      # write data select (WRITE/SCATTER s)

        for eng, new, acc, addr, s_out, rw in ((rd_eng, new_rd, r_acc, r_addr, r_s, "r"),
                                               (wr_eng, new_wr, w_acc, w_addr, w_s, "w")):
            act_d = Signal(name=f"{rw}_active_d")         # next value of eng.active
            m_oh = Signal(2 * cfg.streams, name=f"{rw}_m_oh")   # map select (GATHER/SCATTER m)
            m.d.comb += act_d.eq(eng.active)
            with m.If(self.clear):
                m.d.comb += act_d.eq(0)
            m.d.sync += [eng.active.eq(act_d), m_oh.eq(Mux(act_d, m_oh, m_oh_next))]
            if rw == "w":
                m.d.sync += w_oh.eq(Mux(act_d, w_oh, ws_oh_next))
            if rw == "r":
                gs_new = is_op(instr, "GATHER")
                a_new = fld(instr, "READ", "addr")[:abits]
                s_new = Mux(gs_new, fld(instr, "GATHER", "s"), fld(instr, "READ", "s"))
            else:
                gs_new = is_op(instr, "SCATTER")
                a_new = fld(instr, "WRITE", "addr")[:abits]
                s_new = Mux(gs_new, fld(instr, "SCATTER", "s"), fld(instr, "WRITE", "s"))
            starting = self.run & new & ~eng.active
            maddr = sel_oh(m_oh, abits)                        # one address select per engine
            busy_err = Signal(name=f"{rw}_busy_err")
            # an instruction for a busy engine is dropped; the engine goes on
            m.d.comb += busy_err.eq(self.run & new & eng.active)
            with m.If(starting):
                # access 0 now, then n-1 more, d cycles apart
                a_now = Mux(gs_new, maddr, a_new)
                m.d.comb += [acc.eq(1), addr.eq(a_now), s_out.eq(s_new)]
                m.d.comb += act_d.eq(n1 > 1)
                m.d.sync += [eng.addr.eq(a_now + step_reg[:abits]),
                             eng.rem.eq(n1 - 1), eng.cnt.eq(d1), eng.step.eq(step_reg[:abits]),
                             eng.d.eq(d1), eng.gs.eq(gs_new), eng.s.eq(s_new)]
            with m.Elif(self.run & eng.active):
                with m.If(eng.cnt == 1):
                    a_now = Mux(eng.gs, maddr, eng.addr)
                    m.d.comb += [acc.eq(1), addr.eq(a_now), s_out.eq(eng.s)]
                    m.d.sync += [eng.addr.eq(eng.addr + eng.step), eng.rem.eq(eng.rem - 1),
                                 eng.cnt.eq(eng.d)]
                    m.d.comb += act_d.eq(eng.rem > 1)
                with m.Else():
                    m.d.sync += eng.cnt.eq(eng.cnt - 1)
            if rw == "r":
                r_busy = busy_err
            else:
                w_busy = busy_err
        m.d.comb += self.err_engine_busy.eq(r_busy | w_busy)

        # ---- bank access --------------------------------------------------------------
        r_bank = r_addr[rbits]
        w_bank = w_addr[rbits]
        conflict = r_acc & w_acc & (r_bank == w_bank)
        m.d.comb += self.err_bank_conflict.eq(conflict)

        host_bank = self.host_addr[rbits]
        host_lane_r = Signal.like(self.host_lane)
        host_bank_r = Signal()
        rd_bank_r = Signal()
        out_pending = Signal()
        out_sel_r = Signal(6)
        keep_r = Signal(cfg.vec_bits)
        wdata = sel_oh(w_oh)
        for b, (rp, wp) in enumerate(banks):
            m.d.comb += rp.en.eq(0)      # read ports hold their data unless accessed
            with m.If(self.run):
                m.d.comb += [rp.addr.eq(r_addr[:rbits]), rp.en.eq(r_acc & (r_bank == b)),
                             wp.addr.eq(w_addr[:rbits]), wp.data.eq(wdata)]
                with m.If(w_acc & (w_bank == b) & ~conflict):
                    m.d.comb += wp.en.eq(chunk_enable(self.flags))
            with m.Else():
                m.d.comb += [rp.addr.eq(self.host_addr[:rbits]),
                             rp.en.eq(self.host_re & (host_bank == b)),
                             wp.addr.eq(self.host_addr[:rbits]),
                             wp.data.eq(Cat(*[self.host_wdata] * chunks))]
                with m.If(self.host_we & (host_bank == b)):
                    m.d.comb += wp.en.eq(1 << self.host_lane)

        # read data stage (u+1): onto the stream register
        m.d.sync += [out_pending.eq(self.run & r_acc), out_sel_r.eq(r_s), rd_bank_r.eq(r_bank),
                     keep_r.eq(byte_keep(self.flags))]
        rdata = Mux(rd_bank_r, banks[1][0].data, banks[0][0].data)
        m.d.comb += [self.out_en.eq(out_pending & self.run), self.out_sel.eq(out_sel_r),
                     self.out_data.eq(rdata & keep_r)]
        m.d.comb += self.active.eq(rd_eng.active | wr_eng.active | out_pending)

        # host read data (next cycle)
        with m.If(~self.run & self.host_re):
            m.d.sync += [host_lane_r.eq(self.host_lane), host_bank_r.eq(host_bank)]
        hdata = Mux(host_bank_r, banks[1][0].data, banks[0][0].data)
        lanes = Array([hdata[32 * c:32 * c + 32] for c in range(chunks)])
        m.d.comb += self.host_rdata.eq(lanes[host_lane_r])
        return m
