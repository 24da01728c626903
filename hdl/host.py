"""Host port: an AXI4-Lite subordinate that turns bus transactions into single requests.

One transaction at a time. A write is accepted when both AW and W are valid (together); a read
when AR is valid (writes first). The request is presented for one cycle (`req_valid`); the
decoder (hdl/top.py) answers with `resp_valid` (any later cycle), `resp_data` and `resp_code`
(AXI OKAY/SLVERR/DECERR), which go back on B or R.

Ports:
  axi                         AXI4-Lite subordinate (hdl.axil.AxiLiteSignature, flipped)
  req_valid, req_write, req_addr, req_wdata, req_wstrb   Out  the request
  resp_valid, resp_data, resp_code                         In   the answer
"""
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axil import AxiLiteSignature

__all__ = ["HostPort"]


class HostPort(wiring.Component):
    axi: In(AxiLiteSignature(32, 32))
    req_valid: Out(1)
    req_write: Out(1)
    req_addr: Out(32)
    req_wdata: Out(32)
    req_wstrb: Out(4)
    resp_valid: In(1)
    resp_data: In(32)
    resp_code: In(2)

    def elaborate(self, platform):
        m = Module()
        axi = self.axi
        write = Signal()
        addr = Signal(32)
        wdata = Signal(32)
        wstrb = Signal(4)
        rdata = Signal(32)
        resp = Signal(2)
        m.d.comb += [self.req_write.eq(write), self.req_addr.eq(addr),
                     self.req_wdata.eq(wdata), self.req_wstrb.eq(wstrb),
                     axi.rdata.eq(rdata), axi.rresp.eq(resp), axi.bresp.eq(resp)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(axi.awvalid & axi.wvalid):
                    m.d.comb += [axi.awready.eq(1), axi.wready.eq(1)]
                    m.d.sync += [write.eq(1), addr.eq(axi.awaddr), wdata.eq(axi.wdata),
                                 wstrb.eq(axi.wstrb)]
                    m.next = "REQ"
                with m.Elif(axi.arvalid):
                    m.d.comb += axi.arready.eq(1)
                    m.d.sync += [write.eq(0), addr.eq(axi.araddr)]
                    m.next = "REQ"
            with m.State("REQ"):
                m.d.comb += self.req_valid.eq(1)
                m.next = "WAIT"
            with m.State("WAIT"), m.If(self.resp_valid):
                m.d.sync += [rdata.eq(self.resp_data), resp.eq(self.resp_code)]
                m.next = "RESP"
            with m.State("RESP"):
                with m.If(write):
                    m.d.comb += axi.bvalid.eq(1)
                    with m.If(axi.bready):
                        m.next = "IDLE"
                with m.Else():
                    m.d.comb += axi.rvalid.eq(1)
                    with m.If(axi.rready):
                        m.next = "IDLE"
        return m
