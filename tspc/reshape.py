# Row-major reshapes in the row-block layout (docs/compiler.md sections 1 and 2): which elements of
# which source MEM words make up each word of the result. A result word (row r2, column block
# cb2) is a short list of *pieces*: a contiguous lane range of one source word moved by a lane
# offset. Used by Graph.reshape (to check the shapes and the piece count) and by the lowering.
"""Pieces of a row-major reshape: `reshape_pieces(src, dst, n)`, `is_word_view(src, dst, n)`."""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["MAX_PIECES", "Piece", "is_word_view", "reshape_pieces"]

# A VXM pass merges at most 8 pieces: two int32 operands of four byte streams each.
MAX_PIECES = 8


class Piece(NamedTuple):
    """Source word (row `r`, column block `cb`), its lanes `a .. a+length-1`, which go to lanes
    `b .. b+length-1` of the result word (a lane shift of `b - a`)."""

    r: int
    cb: int
    a: int
    b: int
    length: int


def reshape_pieces(src: tuple[int, int], dst: tuple[int, int],
                   n: int) -> dict[tuple[int, int], list[Piece]]:
    """For every result word (r2, cb2) of `dst` (rows, columns), the pieces of `src` words that
    fill its valid lanes `0 .. min(n, K2 - cb2*n) - 1`, in lane order (row-major order of the
    elements, numpy's reshape). The pieces of one word have disjoint lanes."""
    m, k = src
    m2, k2 = dst
    if m * k != m2 * k2:
        raise ValueError(f"reshape_pieces: {src} and {dst} hold different element counts")
    out: dict[tuple[int, int], list[Piece]] = {}
    for r2 in range(m2):
        for cb2 in range(-(-k2 // n)):
            valid = min(n, k2 - cb2 * n)
            pcs = []
            lane = 0
            while lane < valid:
                f = r2 * k2 + cb2 * n + lane
                r, c = divmod(f, k)
                cb, a = divmod(c, n)
                length = min(valid - lane, min((cb + 1) * n, k) - c)
                pcs.append(Piece(r, cb, a, lane, length))
                lane += length
            out[(r2, cb2)] = pcs
    return out


def is_word_view(src: tuple[int, int], dst: tuple[int, int], n: int) -> bool:
    """True when every result word is a whole source word with every element in the same lane,
    and every result block is addressable without copying: the same shape, or a flatten
    (M, K) -> (1, M*K) with K a multiple of n (each result block is one word)."""
    if src == dst:
        return True
    return dst[0] == 1 and src[1] % n == 0 and src[0] * src[1] == dst[1]
