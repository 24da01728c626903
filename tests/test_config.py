"""TspConfig: validation messages, profiles, derived values, address map, generated doc."""
from pathlib import Path

import numpy as np
import pytest

from tsp.config import PROFILES, ConfigError, TspConfig, join_sg4, render_markdown, split_sg4

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("param, value, match", [
    ("lanes", 0, r"TspConfig.lanes must be between 4 and 64, not 0"),
    ("lanes", 6, r"TspConfig.lanes must be a multiple of 4 .*not 6"),
    ("superlanes", 21, r"TspConfig.superlanes must be between 1 and 20, not 21"),
    ("streams", 33, r"TspConfig.streams must be between 1 and 32, not 33"),
    ("mem_slices", 0, r"TspConfig.mem_slices must be between 1 and 16, not 0"),
    ("bank_depth", 100, r"TspConfig.bank_depth must be a power of two, not 100"),
    ("bank_depth", 65536, r"TspConfig.bank_depth must be between 8 and 32768, not 65536"),
    ("queue_depth", 48, r"TspConfig.queue_depth must be a power of two, not 48"),
    ("fpga", "xilinx", r"TspConfig.fpga must be '', 'ice40' or 'ecp5', not 'xilinx'"),
])
def test_bad_values_name_parameter_and_value(param, value, match):
    with pytest.raises(ConfigError, match=match):
        TspConfig(**{param: value})


@pytest.mark.parametrize("param, value", [("lanes", 16.0), ("streams", "8"), ("bank_depth", True),
                                          ("name", ""), ("units", ["mxm"])])
def test_bad_types(param, value):
    with pytest.raises(TypeError, match=f"TspConfig.{param} must be"):
        TspConfig(**{param: value})


@pytest.mark.parametrize("value", ["", "GMSX", "gmsg", "GM SG", "GMSGGMSGG", "A"])
def test_bad_vxm_stages(value):
    # 1..8 letters, each G, M or S (upper case): docs/vxm.md section 1
    with pytest.raises(ConfigError, match=r"TspConfig\.vxm_stages must be 1 to 8 letters G "
                                          r"\(general\), M \(multiplier\) or S \(shifter\), "
                                          rf"not {value!r}"):
        TspConfig(vxm_stages=value)
    with pytest.raises(ConfigError, match=r"TspConfig\.vxm_stages"):
        TspConfig.profile("default").replace(vxm_stages=value)


@pytest.mark.parametrize("value", [4, None, ("G", "M"), ["G"], b"GMSG"])
def test_vxm_stages_must_be_a_string(value):
    with pytest.raises(TypeError, match=r"TspConfig\.vxm_stages must be a string of stage kinds"):
        TspConfig(vxm_stages=value)


def test_vxm_stages_and_derived_vxm_alus():
    assert TspConfig().vxm_stages == "GMSG" and TspConfig().vxm_alus == 4
    assert PROFILES["default"].vxm_stages == "GMSG" and PROFILES["full"].vxm_stages == "GMSG"
    assert PROFILES["wide"].vxm_stages == "GMSGG" and PROFILES["wide"].vxm_alus == 5
    assert PROFILES["large"].vxm_stages == "GMSGG" and PROFILES["large"].vxm_alus == 5
    for stages in ("G", "M", "S", "SMG", "GGGGGGGG", "MMMMSSSS"):
        cfg = TspConfig(vxm_stages=stages)
        assert cfg.vxm_alus == len(stages)
    # vxm_alus is derived, no longer a parameter
    with pytest.raises(TypeError, match="no parameter 'vxm_alus'"):
        TspConfig.profile("default").replace(vxm_alus=4)
    with pytest.raises(TypeError):
        TspConfig(vxm_alus=4)  # type: ignore[call-arg]
    assert PROFILES["default"].summary()["vxm_stages"] == "GMSG"


def test_units_must_be_implemented_and_listed_once():
    with pytest.raises(ConfigError, match=r"unknown or not yet implemented unit 'c2c'; "
                                          r"available: mxm, sxm, vxm"):
        TspConfig(units=("c2c",))
    with pytest.raises(ConfigError, match="lists a unit twice"):
        TspConfig(units=("sxm", "sxm"))
    assert PROFILES["wide"].units == ("mxm", "sxm", "vxm")
    assert PROFILES["large"].units == ("mxm", "sxm", "vxm")
    assert PROFILES["full"].units == ("mxm", "sxm", "vxm")
    # the ECP5-85F target has every unit at 4 lanes: 2 x 4 x 4 MACs + 4 x 4 VXM DSPs = 48 of
    # the 156; the 8-lane slice with the VXM (~98k LUT4) does not fit, so `full` is simulation only
    assert PROFILES["default"].units == ("mxm", "sxm", "vxm")
    assert PROFILES["default"].lanes == 4 and PROFILES["default"].fpga == "ecp5"
    assert PROFILES["full"].lanes == 8 and PROFILES["full"].fpga == ""


def test_config_is_frozen_and_replace_validates():
    cfg = TspConfig.profile("default")
    with pytest.raises(AttributeError):
        cfg.lanes = 8
    assert cfg.replace(bank_depth=128).bank_depth == 128
    with pytest.raises(ConfigError, match="bank_depth"):
        cfg.replace(bank_depth=3)
    with pytest.raises(TypeError, match="no parameter 'depth'"):
        cfg.replace(depth=3)


def test_unknown_profile_lists_known_ones():
    with pytest.raises(ConfigError, match=r"unknown profile 'huge'; known profiles: default, "
                                          r"full, large, tiny, wide"):
        TspConfig.profile("huge")


def test_profiles_and_floor_plan():
    assert set(PROFILES) >= {"tiny", "default", "large"}
    d = PROFILES["default"]
    assert d.positions == ("MXM_W", "SXM_W", "MEM_W3", "MEM_W2", "MEM_W1", "MEM_W0", "VXM",
                           "MEM_E0", "MEM_E1", "MEM_E2", "MEM_E3", "SXM_E", "MXM_E")
    assert d.vec_bytes == 4 and d.vxm_position == 6
    assert d.mem_positions == (2, 3, 4, 5, 7, 8, 9, 10)
    assert d.mem_addr_bits == 11            # 2 x 1024 words
    assert d.ifetch_words == 1              # 4-byte vector = 1 instruction word
    # the brief's budget arithmetic: 13 positions x 8 streams x 2 directions x 32 bits
    assert d.summary()["stream_register_bits"] == 13 * 8 * 2 * 32
    f = PROFILES["full"]                    # the 8-lane slice: same floor plan
    assert f.positions == d.positions and f.vec_bytes == 8 and f.mem_addr_bits == 10
    w = PROFILES["wide"]                    # the brief's 16-lane slice: same floor plan
    assert w.positions == d.positions and w.vec_bytes == 16 and w.ifetch_words == 4
    assert w.summary()["stream_register_bits"] == 13 * 8 * 2 * 128
    assert PROFILES["large"].fpga == ""     # simulation only
    with pytest.raises(ConfigError, match="no position 'MEM_E9'"):
        d.position_index("MEM_E9")


def test_address_map_is_disjoint_and_ordered():
    for cfg in PROFILES.values():
        am = cfg.address_map()
        assert am.imem(0) >= 0x1000                      # above the CSRs
        assert am.imem(cfg.num_positions) <= am.mem(0)   # IMEM windows end before MEM
        assert am.word_stride >= cfg.vec_bytes
        assert am.mem_span == 2 * cfg.bank_depth * am.word_stride
    # the instruction memories of the most positions still fit below the MEM windows
    many = TspConfig(mem_slices=16, queue_depth=4096)
    assert many.address_map().imem(many.num_positions) <= many.address_map().mem(0)
    with pytest.raises(ConfigError, match="beyond the 32-bit host address space"):
        TspConfig(mem_slices=16, bank_depth=32768, lanes=64, superlanes=20)


def test_sg4_round_trip_and_byte_order():
    v = np.array([0x01020304, -1, -128, 0x7FFFFFFF], dtype=np.int32)
    rows = split_sg4(v)
    assert rows[:, 0].tolist() == [4, 3, 2, 1]            # little-endian: stream 4g+b = byte b
    assert rows[:, 1].tolist() == [255, 255, 255, 255]
    np.testing.assert_array_equal(join_sg4(rows), v)


def test_configuration_doc_is_current():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert doc == render_markdown(), \
        "docs/configuration.md is stale: run python -m tsp.config --write docs/configuration.md"
