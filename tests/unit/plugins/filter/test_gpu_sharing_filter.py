# SPDX-License-Identifier: Apache-2.0
"""gpu_sharing filters: wiring to plugin_utils/_gpu_sharing.py and input checks."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.filter.gpu_sharing import FilterModule

FILTERS = FilterModule().filters()


def test_filters_registered():
    assert sorted(FILTERS) == ["gpu_cdi_enabled", "gpu_sharing", "gpu_sharing_problems", "nvidia_device_plugin_config",
                               "nvidia_device_plugin_manifests"]


def test_wiring():
    assert FILTERS["gpu_sharing"]({"nvidia_device_plugin_mps_replicas": "3"})["strategy"] == "mps"
    assert FILTERS["gpu_sharing"](None)["strategy"] == "none"
    assert FILTERS["gpu_cdi_enabled"]({"kubegpu_cdi": "false"}) is False
    assert FILTERS["nvidia_device_plugin_manifests"]({"nvidia_device_plugin_mps_replicas": "2"}, "true") == [
        "runtimeclass.yaml", "device-plugin.yaml", "mps-control-daemon.yaml"]
    (record,) = FILTERS["gpu_sharing_problems"]({"nvidia_device_plugin_mps_replicas": 2,
                                                 "nvidia_device_plugin_mig_strategy": "mixed"})
    assert record["variable"] == "nvidia_device_plugin_mps_replicas"
    config = FILTERS["nvidia_device_plugin_config"]({"nvidia_device_plugin_mps_replicas": 2}, "/run/mps")
    assert config["flags"]["mpsRoot"] == "/run/mps" and "mps" in config["sharing"]


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_input_must_be_a_mapping(name):
    with pytest.raises(AnsibleFilterError, match="mapping"):
        FILTERS[name](["nvidia_device_plugin_mps_replicas"])
