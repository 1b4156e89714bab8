"""Orion-style mesh NoC energy (pJ) of moving Q bits over a mesh, as the reference model prices it.

The reference (`--calc_noc_energy`) charges every link transfer with a router power summary in
the style of Orion 2.0 (Kahng et al., DATE 2009) evaluated at a 45 nm-like technology point:
channel wires, clock and flip-flops scale with the time the channel is busy
(hops * t_link + t_queue * Q / W) over all mesh edges; router input buffers, crossbar and
output stage scale with the queuing time per router. The constants below are the technology
parameters of that model (capacitances in F, currents in A, pitches in cm). Only the total
matters to us; the structure is kept so the terms can be inspected.
"""
from __future__ import annotations

import math
from functools import lru_cache

_VDD = 0.9
_R_DRIVE = 606.321
_IOFF_P = _IOFF_N = 1.02e-6
_CG = 5.34e-16
_CD = 2.67e-16
_CGDL = 1.068e-16
_LAMBDA = 0.016
_PITCH = 8.0e-5
_CI_DELAY = 3 * (_CG + _CGDL)
_CO_DELAY = 3 * _CD
_CI = 3.0 * _CG
_CO = 3.0 * _CD
_F_CLK = 1.0 / (20 * _R_DRIVE * (3.0 * _CD + 12 * _CG + 12 * _CGDL))
_CH_PITCH = 2.0 * _PITCH
_XB_PITCH = 2.0 * _PITCH
_DFF_ROWS = 8  # flip-flop cell height in tracks
_VC_DEPTH = 3 * 10  # virtual channels x depth
_CW = 4.0 * 2.67339e-13  # wire capacitance per unit length
_V2F = _VDD * _VDD * _F_CLK


def _wire(length: float, k: float, m: float, n: float) -> float:
    ca = k * (_CI + _CO) + _CW * (length / (m * n))
    return 0.5 * ca * _V2F * m * n


def _wire_clock(m: float, width: float) -> float:
    columns = _DFF_ROWS * _PITCH / _CH_PITCH
    c = (1 + 5.0 / 16.0 * (1 + _CO_DELAY / _CI_DELAY)) * (width * _CH_PITCH * _CW * columns + width * _CI_DELAY)
    return m * c * _V2F


def _wire_dff(m: float, width: float) -> float:
    c_din = 2 * 0.8 * (_CI + _CO) + 2 * (2.0 / 3.0 * 0.8 * _CO)
    c_clk = 2 * 0.8 * (_CI + _CO) + 2 * (2.0 / 3.0 * 0.8 * _CG)
    return (0.5 * c_din + c_clk) * m * width * _V2F


def _word_line(width: float, depth: float) -> float:
    c_cell = 2 * (4.0 * _LAMBDA) * _CG + 6 * _PITCH * _CW
    x = 1.0 + (5.0 / 16.0) * (1 + _CO / _CI)
    c_predecode = x * (_CW * (8 * _PITCH + depth) * _CI)
    c_decode = x * width * c_cell
    y = (1 + 0.25) * (1 + _CO / _CI)
    h = 6 * width * _PITCH
    c_bitline_drivers = y * (_CW * h + 3 * width * _CI) + y * (_CW * h + 2 * width * _CI)
    return (c_bitline_drivers + 2 * c_predecode + c_decode) * _V2F


def _bit_read(depth: float) -> float:
    return depth * (4.0 * _LAMBDA * _CD + 8 * _PITCH * _CW) * _V2F


def _bit_write(depth: float) -> float:
    c_bl = depth * (4.0 * _LAMBDA * _CD + 8 * _PITCH * _CW)
    return 0.5 * 2 * (_CO + _CI) * _VDD * _VDD + c_bl * _V2F


def _crossbar(width: float, ins: float, outs: float) -> float:
    cw_in = width * outs * _XB_PITCH * _CW
    cw_out = width * ins * _XB_PITCH * _CW
    cxi, cti = cw_out / 16.0, cw_in / 16.0
    ratio = _CO_DELAY / _CI_DELAY
    driver = 5.0 / 16.0 * (1 + ratio) * (0.5 * _CW * width * outs * _XB_PITCH + cti)
    c_in = driver + cw_in + cti + outs * cxi
    c_out = cw_out + 4.0 * cti * ratio + ins * 4.0 * cxi * ratio
    return 0.5 * (c_in + c_out) * _V2F


def _crossbar_ctrl(width: float, ins: float, outs: float) -> float:
    w, h = width * outs * _XB_PITCH, width * ins * _XB_PITCH
    c_ctrl = width * (5.0 / 16.0) * w * _CW + (w + h) * _CW
    return (5.0 / 16.0 * (1 + _CO_DELAY / _CI_DELAY) * c_ctrl + c_ctrl) * _V2F


@lru_cache(maxsize=256)
def _router_parts(width: float) -> tuple[float, ...]:
    return (_wire(2.0, 8.1, 2, 1), _wire_clock(2, 2.0), _wire_dff(2, 2.0),
            _word_line(width, _VC_DEPTH) + _bit_read(_VC_DEPTH) * width,
            _word_line(width, _VC_DEPTH) + _bit_write(_VC_DEPTH) * width,
            _crossbar(width, 5, 5) * width, _crossbar_ctrl(width, 5, 5),
            _wire_dff(1, width), _wire_clock(1, width))


def mesh_transfer_energy(channel_width: float, hops: int, t_queue: float, q_bits: float, mesh_edge: int) -> float:
    """Energy of moving `q_bits` over `hops` router hops of a `mesh_edge` x `mesh_edge` mesh
    whose channels are `channel_width` wide, with `t_queue` cycles of queuing per flit; every
    router pipeline stage (RC, VA, SA, ST, link) takes one cycle."""
    wire, clk, dff, rd, wr, xbar, xctl, out_dff, out_clk = _router_parts(float(channel_width))
    busy = t_queue * q_bits / channel_width  # queuing cycles of the payload
    edges = mesh_edge * (mesh_edge * 2 - 2)
    nodes = mesh_edge * mesh_edge
    out_clk_e = out_clk * hops * (2 * nodes)
    terms = (wire * (hops + busy) * edges, clk * 2 * nodes, dff * (hops + busy) * edges,
             rd * busy * nodes, wr * busy * nodes, xbar * hops * 3 * nodes,
             xctl * (hops * 3 + busy) * nodes, out_dff * (hops + busy) * nodes, out_clk_e,
             # the reference's output-control term reuses the output clock energy
             out_clk_e * (hops + busy) * nodes)
    return math.fsum(terms)
