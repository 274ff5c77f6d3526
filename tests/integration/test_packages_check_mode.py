# SPDX-License-Identifier: Apache-2.0
"""kubegpu.cluster.packages in check mode on a Debian host the way a minimal image comes:
no apt lists and no python3-apt. ansible.builtin.apt cannot simulate without python3-apt,
and run for real (to download the index) it installs python3-apt first. The action
downloads the index with apt-get and simulates with ``apt-get install --simulate``: the
check run says what it would install and installs nothing (plugins/action/packages.py)."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.integration


def test_check_mode_without_python3_apt_or_lists_installs_nothing(systemd_hosts, docker_cli, ansible_playbook,
                                                                  tmp_path):
    def _installed(host, name):
        status = docker_cli.run("exec", host, "dpkg-query", "-W", "-f=${Status}", name, check=False).stdout
        return status.startswith("install ok")

    def _lists(host):
        return [n for n in docker_cli.exec(host, "ls", "/var/lib/apt/lists").split() if "_Packages" in n]

    host = systemd_hosts("kubegpu-it-pkgcheck")
    docker_cli.exec(host, "dpkg", "--purge", "python3-apt")
    docker_cli.exec(host, "find", "/var/lib/apt/lists", "-maxdepth", "1", "-type", "f", "-delete")
    assert not _installed(host, "python3-apt") and not _installed(host, "jq") and _lists(host) == []

    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"h1": {
        "ansible_host": host, "ansible_connection": "community.docker.docker"}}}}))
    out = tmp_path / "result.json"
    play = [{"name": "Packages in check mode", "hosts": "all", "gather_facts": False, "tasks": [
        {"name": "Install jq", "kubegpu.cluster.packages": {"manager": "apt", "names": ["jq"],
                                                            "update_cache": True}, "register": "jq"},
        {"name": "Write the result", "ansible.builtin.copy": {"dest": str(out), "content": "{{ jq | to_json }}"},
         "delegate_to": "localhost", "check_mode": False}]}]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))

    first = ansible_playbook(playbook, inventory, "--check", "--diff", timeout=600)
    assert first.returncode == 0, first.stdout[-4000:]
    result = json.loads(out.read_text())
    assert result["changed"] is True and result["index_downloaded"] is True, result
    assert result["msg"].startswith("check mode: apt-get would install ") and "jq" in result["msg"], result
    # The index is there now (downloaded for real, as documented); nothing was installed.
    assert _lists(host) != []
    assert not _installed(host, "python3-apt") and not _installed(host, "jq")

    # Again: the lists are there, so no download; still simulated, still nothing installed.
    second = ansible_playbook(playbook, inventory, "--check", timeout=600)
    assert second.returncode == 0, second.stdout[-4000:]
    result = json.loads(out.read_text())
    assert result["changed"] is True and result["index_downloaded"] is False, result
    assert not _installed(host, "python3-apt") and not _installed(host, "jq")
