"""TspTop: the whole slice: stream fabric, one instruction queue per position, MEM slices,
run control (START, cycle counter, done/deadlock), error flags and the host port.

Positions west to east: MXM_W | SXM_W | MEM_W.. | VXM | MEM_E.. | SXM_E | MXM_E. Compute units
that follow the unit contract (docs/units.md section 1) are listed in `UNIT_CLASSES` (kind ->
class) and wired generically: issue/instr/flags from the position's queue, cur_e/cur_w from the
fabric, wen/wdata into the fabric, `active` into the Done rule, `err` into ERR_FLAGS. A kind is
instantiated only if it is in the configuration's `units`; otherwise (and for the VXM)
the position is a placeholder: its stream registers pass values through and its queue runs ICU
instructions only (a unit instruction there raises ILLEGAL).

Run control: a START written to CTRL takes two priming cycles (queues read their first word;
stream registers, loop registers, flags and error flags clear), then cycle 0 issues the first
instruction of every queue. The cycle counter equals t during cycle t and stops at the first
cycle T in which nothing is active (docs/architecture.md section 3).

Ports: `s_axil` (AXI4-Lite subordinate), `irq_done`; with debug=True also dbg_cycle,
dbg_running, dbg_east, dbg_west (every stream register; see docs/architecture.md section 6).
"""
from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tsp import isa
from tsp.config import CSR_SPAN, TspConfig
from tsp.hostmap import CSR, DEADLOCK_POSITION, ERR_BITS, ERR_WIDTH, ID_VALUE

from .axil import RESP_DECERR, RESP_OKAY, RESP_SLVERR, AxiLiteSignature
from .host import HostPort
from .icu import InstructionQueue
from .mem import MemSlice
from .mxm import Mxm
from .streams import StreamFabric, flatten_direction
from .sxm import Sxm
from .vxm import Vxm

__all__ = ["CSR", "ERR_BITS", "ID_VALUE", "UNIT_CLASSES", "TspTop"]

# Compute units with the unit-contract ports (docs/units.md section 1), by unit kind.
UNIT_CLASSES = {"mxm": Mxm, "sxm": Sxm, "vxm": Vxm}


def _log2(x: int) -> int:
    return x.bit_length() - 1


class TspTop(wiring.Component):
    def __init__(self, config: TspConfig, debug: bool = False):
        if not isinstance(config, TspConfig):
            raise TypeError(f"config must be a TspConfig, not {config!r}")
        self.config = config
        self.debug = debug
        ports = {"s_axil": In(AxiLiteSignature(32, 32)), "irq_done": Out(1)}
        if debug:
            bits = config.num_positions * config.streams * config.vec_bits
            ports.update({"dbg_cycle": Out(32), "dbg_running": Out(1),
                          "dbg_east": Out(bits), "dbg_west": Out(bits)})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        P, S = cfg.num_positions, cfg.streams
        amap = cfg.address_map()

        m.submodules.host = host = HostPort()
        wiring.connect(m, wiring.flipped(self.s_axil), host.axi)
        m.submodules.fabric = fabric = StreamFabric(cfg)

        queues, mems, units = [], {}, {}
        for p in range(P):
            kind = cfg.unit_kind(p)
            q = InstructionQueue(cfg, kind)
            m.submodules[f"q_{cfg.positions[p].lower()}"] = q
            queues.append(q)
            if p in cfg.mem_positions:
                ms = MemSlice(cfg)
                m.submodules[f"{cfg.positions[p].lower()}"] = ms
                mems[p] = ms
            elif kind in UNIT_CLASSES and kind in cfg.units:
                unit = UNIT_CLASSES[kind](cfg)
                m.submodules[f"{cfg.positions[p].lower()}"] = unit
                units[p] = unit

        # ---- run control ----------------------------------------------------------------
        phase = Signal(2)          # 0 idle, 1 prime 1 (start), 2 prime 2, 3 running
        start_req = Signal()
        run = Signal()
        done = Signal()
        cycles = Signal(32)
        notify_r = Signal()
        m.d.comb += run.eq(phase == 3)
        running = phase != 0

        for p, q in enumerate(queues):
            m.d.comb += [q.start.eq(phase == 1), q.prime.eq(phase == 2), q.run.eq(run),
                         q.notify_in.eq(notify_r),
                         q.cur_e.eq(Cat(*fabric.cur[p][0])), q.cur_w.eq(Cat(*fabric.cur[p][1]))]
        for p, ms in mems.items():
            q = queues[p]
            m.d.comb += [ms.run.eq(run), ms.clear.eq(phase == 1), ms.issue.eq(q.issue),
                         ms.instr.eq(q.instr), ms.instr_next.eq(q.instr_next),
                         ms.flags.eq(q.flags),
                         ms.cur_e.eq(Cat(*fabric.cur[p][0])), ms.cur_w.eq(Cat(*fabric.cur[p][1]))]
            for d in (0, 1):
                m.d.comb += fabric.wen[p][d].eq(
                    Cat(*[ms.out_en & (ms.out_sel == (d << 5 | s)) for s in range(S)]))
                m.d.comb += [fabric.wdata[p][d][s].eq(ms.out_data) for s in range(S)]
        for p, unit in units.items():     # generic unit-contract wiring
            q = queues[p]
            m.d.comb += [unit.run.eq(run), unit.clear.eq(phase == 1), unit.issue.eq(q.issue),
                         unit.instr.eq(q.instr), unit.flags.eq(q.flags),
                         unit.cur_e.eq(Cat(*fabric.cur[p][0])),
                         unit.cur_w.eq(Cat(*fabric.cur[p][1])),
                         fabric.wen[p][0].eq(unit.wen_e), fabric.wen[p][1].eq(unit.wen_w)]
            for s in range(S):
                m.d.comb += [fabric.wdata[p][0][s].eq(unit.wdata_e[s]),
                             fabric.wdata[p][1][s].eq(unit.wdata_w[s])]
        m.d.comb += fabric.clear.eq((phase == 1) | (phase == 2))

        any_notify = Cat(*[q.notify for q in queues]).any()
        q_active = Cat(*[q.active for q in queues]).any()
        q_parked = Cat(*[q.parked for q in queues]).any()
        engines = [ms.active for ms in mems.values()] + [u.active for u in units.values()]
        m_active = Cat(*engines).any() if engines else Const(0)
        finished = run & ~q_active & ~m_active
        m.d.sync += notify_r.eq(run & any_notify)

        # ---- error flags ------------------------------------------------------------------
        err_flags = Signal(ERR_WIDTH)
        err_have = Signal()
        err_pos = Signal(16)
        err_bit = Signal(8)
        err_cycle = Signal(32)
        events = []  # (position, bit, signal) in priority order
        for p in range(P):
            if p in mems:
                events.append((p, ERR_BITS["BANK_CONFLICT"], mems[p].err_bank_conflict))
                events.append((p, ERR_BITS["ENGINE_BUSY"], mems[p].err_engine_busy))
            events.append((p, ERR_BITS["ILLEGAL"], queues[p].illegal))
            if p in units:
                events += [(p, b, units[p].err[b]) for b in range(ERR_WIDTH)]
        deadlock = finished & q_parked
        events.append((DEADLOCK_POSITION, ERR_BITS["DEADLOCK"], deadlock))
        # first-error priority: lowest position first, then lowest bit (a stable sort keeps
        # several sources of one (position, bit) in order; they record the same thing)
        events.sort(key=lambda e: (e[0], e[1]))
        this_cycle = Signal(ERR_WIDTH)
        for bit in range(ERR_WIDTH):
            sigs = [sig for (_, b, sig) in events if b == bit]
            m.d.comb += this_cycle[bit].eq(Cat(*sigs).any() & run if sigs else 0)

        with m.If(phase == 1):
            m.d.sync += [err_flags.eq(0), err_have.eq(0), err_pos.eq(0), err_bit.eq(0),
                         err_cycle.eq(0)]
        with m.Elif(run):
            m.d.sync += err_flags.eq(err_flags | this_cycle)
            with m.If(~err_have & this_cycle.any()):
                m.d.sync += [err_have.eq(1), err_cycle.eq(cycles)]
                chain = None
                for p, b, sig in events:
                    ctx = m.If(sig) if chain is None else m.Elif(sig)
                    with ctx:
                        m.d.sync += [err_pos.eq(p), err_bit.eq(b)]
                    chain = True

        with m.Switch(phase):
            with m.Case(0), m.If(start_req):
                m.d.sync += phase.eq(1)
            with m.Case(1):
                m.d.sync += [phase.eq(2), cycles.eq(0), done.eq(0)]
            with m.Case(2):
                m.d.sync += phase.eq(3)
            with m.Case(3):
                with m.If(finished):
                    m.d.sync += [phase.eq(0), done.eq(1)]
                with m.Else():
                    m.d.sync += cycles.eq(cycles + 1)

        # ---- host decode ------------------------------------------------------------------
        addr = host.req_addr
        write = host.req_write
        full_strobe = host.req_wstrb == 0xF

        imem_off = addr - amap.imem_base
        imem_hit = (addr >= amap.imem_base) & (addr < amap.imem_base + P * amap.imem_span)
        imem_pos = imem_off >> _log2(amap.imem_span)
        imem_word = (imem_off >> 2)[:cfg.imem_addr_bits]

        mem_off = addr - amap.mem_base
        mem_range = (addr >= amap.mem_base) & (addr < amap.mem_base + P * amap.mem_span)
        mem_pos = mem_off >> _log2(amap.mem_span)
        mem_word = (mem_off >> _log2(amap.word_stride))[:cfg.mem_addr_bits]
        mem_byte = mem_off[:_log2(amap.word_stride)] if amap.word_stride > 1 else Const(0)
        mem_is_slice = Cat(*[mem_pos == p for p in mems]).any()
        mem_hit = mem_range & mem_is_slice & (mem_byte < cfg.vec_bytes)
        mem_lane = mem_byte >> 2

        csr_hit = addr < CSR_SPAN
        csr_known = Cat(*[addr == off for off in CSR.values()]).any() & csr_hit

        code = Signal(2)
        with m.If(csr_known):
            with m.If(write & ~full_strobe):
                m.d.comb += code.eq(RESP_SLVERR)
            with m.Elif(write & (addr != CSR["CTRL"])):
                m.d.comb += code.eq(RESP_SLVERR)
            with m.Elif(write & running & host.req_wdata[0]):
                m.d.comb += code.eq(RESP_SLVERR)
            with m.Else():
                m.d.comb += code.eq(RESP_OKAY)
        with m.Elif(imem_hit | mem_hit):
            with m.If((write & ~full_strobe) | running):
                m.d.comb += code.eq(RESP_SLVERR)
            with m.Else():
                m.d.comb += code.eq(RESP_OKAY)
        with m.Else():
            m.d.comb += code.eq(RESP_DECERR)
        ok = host.req_valid & (code == RESP_OKAY)

        m.d.comb += start_req.eq(ok & write & csr_known & (addr == CSR["CTRL"])
                                 & host.req_wdata[0])

        for p, q in enumerate(queues):
            sel = ok & imem_hit & (imem_pos == p)
            m.d.comb += [q.host_addr.eq(imem_word), q.host_wdata.eq(host.req_wdata),
                         q.host_we.eq(sel & write), q.host_re.eq(sel & ~write)]
        for p, ms in mems.items():
            sel = ok & mem_hit & (mem_pos == p)
            m.d.comb += [ms.host_addr.eq(mem_word), ms.host_lane.eq(mem_lane),
                         ms.host_wdata.eq(host.req_wdata),
                         ms.host_we.eq(sel & write), ms.host_re.eq(sel & ~write)]

        status = Cat(running, done, err_flags.any())
        config0 = Cat(Const(cfg.lanes, 8), Const(cfg.superlanes, 8), Const(cfg.streams, 8),
                      Const(cfg.mem_slices, 8))
        config1 = Cat(Const(_log2(cfg.bank_depth), 8), Const(_log2(cfg.queue_depth), 8),
                      Const(P, 8))
        csr_value = Signal(32)
        with m.Switch(addr[:12]):
            for name, val in (("ID", ID_VALUE), ("ISA_VERSION", isa.ISA_VERSION),
                              ("CONFIG0", config0), ("CONFIG1", config1), ("STATUS", status),
                              ("CYCLES", cycles), ("ERR_FLAGS", err_flags),
                              ("ERR_WHERE", Cat(err_pos, err_bit)), ("ERR_CYCLE", err_cycle)):
                with m.Case(CSR[name]):
                    m.d.comb += csr_value.eq(val)

        resp_valid = Signal()
        resp_code = Signal(2)
        resp_csr = Signal(32)
        tgt = Signal(2)            # 0 csr/none, 1 imem, 2 mem
        tgt_pos = Signal(range(P))
        m.d.sync += resp_valid.eq(host.req_valid)
        with m.If(host.req_valid):
            m.d.sync += [resp_code.eq(code),
                         resp_csr.eq(Mux(write | (code != RESP_OKAY), 0, csr_value)),
                         tgt.eq(Mux(ok & ~write & imem_hit, 1, Mux(ok & ~write & mem_hit, 2, 0))),
                         tgt_pos.eq(Mux(imem_hit, imem_pos, mem_pos))]
        rdata = Signal(32)
        m.d.comb += rdata.eq(resp_csr)
        with m.If(tgt == 1), m.Switch(tgt_pos):
            for p, q in enumerate(queues):
                with m.Case(p):
                    m.d.comb += rdata.eq(q.host_rdata)
        with m.If(tgt == 2), m.Switch(tgt_pos):
            for p, ms in mems.items():
                with m.Case(p):
                    m.d.comb += rdata.eq(ms.host_rdata)
        m.d.comb += [host.resp_valid.eq(resp_valid), host.resp_code.eq(resp_code),
                     host.resp_data.eq(rdata), self.irq_done.eq(done)]

        if self.debug:
            m.d.comb += [self.dbg_cycle.eq(cycles), self.dbg_running.eq(run),
                         self.dbg_east.eq(flatten_direction(fabric, 0)),
                         self.dbg_west.eq(flatten_direction(fabric, 1))]
        return m
