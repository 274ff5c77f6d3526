# SPDX-License-Identifier: Apache-2.0
"""playbooks/os_prereqs.yml run alone refuses a proxy URL apt or dnf cannot use before it writes
anything, with the function and the message of preflight (plugins/plugin_utils/_preflight_rules.py
proxy_problems): the check of the cluster-wide settings that the role's dependency,
kubegpu.cluster.kubegpu, makes once per run (roles/kubegpu/tasks/settings.yml). With the real
ansible-playbook against a localhost alias (connection local), in check mode, only the checks
(`--tags kubegpu_settings`)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent
LOCAL = "ansible_connection=local ansible_python_interpreter=%s ansible_become=false" % sys.executable


def _run(tmp_path, *extra):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[kube_control_plane]\ncp1 %s\n\n[k8s_cluster:children]\nkube_control_plane\n" % LOCAL,
                         encoding="utf-8")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_CACHE_PLUGIN="memory", ANSIBLE_GATHERING="explicit",
               # Results as JSON: one line per message on every ansible-core (2.17's YAML
               # results fold long messages and double the quotes inside them).
               ANSIBLE_CALLBACK_RESULT_FORMAT="json",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1",
               PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(ROOT / "playbooks" / "os_prereqs.yml"),
            "--check", "--tags", "kubegpu_settings", *extra]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=str(tmp_path), env=env, timeout=600)
    return done, done.stdout + done.stderr


@pytest.mark.parametrize("variable, value, expected", [
    ("kubegpu_http_proxy", "proxy.example.com:3128",
     "host cp1: variable kubegpu_http_proxy: 'proxy.example.com:3128' has no scheme: apt would be given it as written"
     " and fail every download (accepted: http://host:port or https://host:port, user:password@ before the host if"
     " needed); fix: kubegpu_http_proxy: http://proxy.example.com:3128"),
    ("kubegpu_https_proxy", "socks5://user:s3cret@proxy:1080",
     "host cp1: variable kubegpu_https_proxy: 'socks5://user:***@proxy:1080': scheme socks5 is not http or https"),
])
def test_a_proxy_url_apt_cannot_use_is_refused_before_anything_is_written(tmp_path, variable, value, expected):
    done, out = _run(tmp_path, "-e", "%s=%s" % (variable, value))
    assert done.returncode == 2, out[-4000:]
    assert expected in out, out[-4000:]
    assert "s3cret" not in out
    assert "TASK [kubegpu.cluster.kubegpu : Check the settings of every stage (types, choices, proxy URLs)]" in out
    # Nothing else of the role ran: the proxy files are written later, by tasks/files.yml and tasks/redhat.yml.
    assert "Configure the apt proxy" not in out and "Configure the dnf proxy" not in out


def test_good_proxy_urls_pass(tmp_path):
    done, out = _run(tmp_path, "-e", "kubegpu_http_proxy=http://proxy.example.com:3128",
                     "-e", "kubegpu_https_proxy=https://user:pw@proxy.example.com:3129")
    assert done.returncode == 0, out[-4000:]
    task = out.index("TASK [kubegpu.cluster.kubegpu : Check the settings of every stage (types, choices, proxy URLs)]")
    assert out[task:].split("\n")[1] == "ok: [cp1]", out[task:]
    assert "failed=0" in out


def test_both_proxies_wrong_are_named_in_one_failure(tmp_path):
    done, out = _run(tmp_path, "-e", "kubegpu_http_proxy=proxy:3128", "-e", "kubegpu_https_proxy=proxy:3129")
    assert done.returncode == 2, out[-4000:]
    assert ("host cp1: variable kubegpu_http_proxy: 'proxy:3128' has no scheme" in out
            and "host cp1: variable kubegpu_https_proxy: 'proxy:3129' has no scheme" in out), out[-4000:]


def test_every_stage_setting_is_checked_once_in_preflights_words(tmp_path):
    """The stages' settings are their argument spec's entry point `settings`, not `main`: Ansible no
    longer checks them in every play; the kubegpu role checks every role's once per run (preflight's
    spec check, _preflight_host.settings_problems), so a bad value of this stage's and of a later
    stage's is refused here, both in one failure, with preflight's lines."""
    inventory_vars = tmp_path / "bad.yml"
    inventory_vars.write_text("os_prereqs_time_sync: ntpd\nkubernetes_packages: kubelet\n", encoding="utf-8")
    done, out = _run(tmp_path, "-e", "@%s" % inventory_vars)
    assert done.returncode == 2, out[-4000:]
    assert "host cp1: variable os_prereqs_time_sync: 'ntpd'" in out, out[-4000:]
    assert "host cp1: variable kubernetes_packages: 'kubelet'" in out, out[-4000:]
    assert "Validating arguments against arg spec" not in out, out[-4000:]
