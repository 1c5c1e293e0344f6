"""The Fast DDS profile: shipped, well-formed, chosen by dds_profile, advised when missing."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cityseg.config import ConfigError
from cityseg.ros.live.dds_profile import PROFILE_FILE, PROFILE_VARIABLES, middleware_advice, profile_environment

SHIPPED = Path(__file__).resolve().parents[3] / "config" / PROFILE_FILE
NS = {"p": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
FOUR_K_RGB8 = 3840 * 2160 * 3


def test_shipped_profile_is_the_default_participant_with_a_large_shm_segment():
    root = ET.parse(SHIPPED).getroot()
    participant = root.find("p:participant", NS)
    assert participant.get("is_default_profile") == "true"
    used = [t.text for t in participant.findall("p:rtps/p:userTransports/p:transport_id", NS)]
    descriptors = {d.find("p:transport_id", NS).text: d for d in root.findall(".//p:transport_descriptor", NS)}
    assert set(used) <= set(descriptors)
    kinds = {descriptors[t].find("p:type", NS).text for t in used}
    assert kinds == {"SHM", "UDPv4"}  # same host through shared memory, other hosts still reachable
    shm = next(descriptors[t] for t in used if descriptors[t].find("p:type", NS).text == "SHM")
    segment = int(shm.find("p:segment_size", NS).text)
    node_outputs_per_4k_frame = FOUR_K_RGB8 // 3 + 2 * FOUR_K_RGB8  # mask + colour mask + overlay
    assert segment >= 2 * node_outputs_per_4k_frame  # two 4K frames of every output in flight


def test_default_choice_is_the_shipped_profile_for_both_variable_names(tmp_path):
    env = profile_environment("", SHIPPED, environ={})
    assert set(env) == set(PROFILE_VARIABLES) == {"FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"}
    assert all(Path(v) == SHIPPED.resolve() for v in env.values())


def test_a_profile_the_user_already_exported_is_kept():
    assert profile_environment("", SHIPPED, environ={"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"}) == {}


def test_none_and_explicit_paths(tmp_path):
    assert profile_environment("none", SHIPPED, environ={}) == {}
    mine = tmp_path / "mine.xml"
    mine.write_text("<profiles/>")
    assert set(profile_environment(str(mine), SHIPPED, environ={}).values()) == {str(mine.resolve())}
    with pytest.raises(ConfigError, match=r"dds_profile: .*missing\.xml does not exist.*dds_profile:=none"):
        profile_environment(str(tmp_path / "missing.xml"), SHIPPED, environ={})


def test_advice_when_fast_dds_runs_without_a_profile():
    advice = middleware_advice("rmw_fastrtps_cpp", environ={})
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" in advice and "Large images" in advice
    assert middleware_advice("rmw_fastrtps_cpp", environ={"FASTDDS_DEFAULT_PROFILES_FILE": "x.xml"}) is None
    assert middleware_advice("rmw_fastrtps_cpp", environ={"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}) is None
    assert "CYCLONEDDS_URI" in middleware_advice("rmw_cyclonedds_cpp", environ={})
    assert middleware_advice("rmw_zenoh_cpp", environ={}) is None
