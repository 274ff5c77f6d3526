# SPDX-License-Identifier: Apache-2.0
"""kubegpu.cluster.packages (and the kubegpu role's entry point `package` that calls it)
holds (apt) only what is not held yet, and installs only what is missing. Which packages are held or missing comes from one
host_state reading of dpkg's status (plugins/plugin_utils/_packages.py, tested in
tests/unit/plugins/plugin_utils/test_packages.py; on a real host by
tests/integration/test_drift.py: a released hold put back, a converged re-run that
neither installs nor holds). Here: a caller that read the holds itself is trusted, and
a call with nothing to do reads nothing. Real ansible-playbook on localhost; dpkg and
dpkg-query are fakes on PATH that keep the selections in a file and log every call."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent

# name -> selection; a package not in the file is not installed.
FAKE = r'''#!%(python)s
import json, os, sys
state = %(state)r
log = %(log)r
selections = json.load(open(state))
with open(log, "a") as stream:
    stream.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\n")
args = sys.argv[1:]
if os.path.basename(sys.argv[0]) == "dpkg-query":
    names = args[3:]
    missing = [n for n in names if n not in selections]
    for name in names:
        if name in selections:
            print("%%s %%s ok installed" %% (name, selections[name]))
    for name in missing:
        print("dpkg-query: no packages found matching %%s" %% name, file=sys.stderr)
    sys.exit(1 if missing else 0)
if args[0] == "--get-selections":
    if args[1] in selections:
        print("%%s\t%%s" %% (args[1], selections[args[1]]))
    sys.exit(0)
if args[0] == "--set-selections":
    name, selection = sys.stdin.read().split()
    selections[name] = selection
    json.dump(selections, open(state, "w"))
    sys.exit(0)
sys.exit(2)
'''


def run(tmp_path, package_vars, check=False, tasks=None):
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        for name in ("dpkg", "dpkg-query"):
            fake = bin_dir / name
            fake.write_text(FAKE % {"python": sys.executable, "state": str(tmp_path / "selections.json"),
                                    "log": str(tmp_path / "calls.log")})
            fake.chmod(0o755)
    (tmp_path / "calls.log").write_text("")
    play = [{"name": "Hold", "hosts": "all", "gather_facts": False, "tasks": tasks or [{
        "name": "Install and hold", "ansible.builtin.include_role": {
            "name": "kubegpu.cluster.kubegpu", "tasks_from": "package"},
        "vars": dict({"kubegpu_package_manager": "apt", "kubegpu_package_names": []}, **package_vars)}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"), ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_NOCOLOR="1", PATH=os.pathsep.join([str(bin_dir), str(VENV_BIN), os.environ.get("PATH", "")]))
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", json.dumps({"ansible_python_interpreter": sys.executable}), str(tmp_path / "play.yml")]
    done = subprocess.run(argv + (["--check"] if check else []), capture_output=True, text=True,
                          check=False, cwd=str(tmp_path), env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    calls = [json.loads(line) for line in (tmp_path / "calls.log").read_text().splitlines()]
    return calls, json.loads((tmp_path / "selections.json").read_text())


def test_a_caller_that_read_the_holds_itself_is_trusted(tmp_path):
    (tmp_path / "selections.json").write_text(json.dumps({"containerd": "hold", "runc": "install"}))
    calls, selections = run(tmp_path, {"kubegpu_package_hold": ["containerd", "runc"],
                                       "kubegpu_package_held": ["containerd"]})
    assert calls == [["dpkg", "--get-selections", "runc"], ["dpkg", "--set-selections"]]
    assert selections["runc"] == "hold"


def test_nothing_to_hold_reads_nothing(tmp_path):
    (tmp_path / "selections.json").write_text(json.dumps({}))
    assert run(tmp_path, {"kubegpu_package_hold": []})[0] == []


# Packages every Debian host has (this controller's dpkg status is the reading: host_state
# reads /var/lib/dpkg/status itself). The results are written where the test reads them.
INSTALLED = ["bash", "dpkg"]


def packages_results(tmp_path, tasks):
    out = tmp_path / "results.json"
    tasks = tasks + [{"name": "Write the results", "ansible.builtin.copy": {
        "dest": str(out), "content": "{{ {'plain': plain, 'handed': handed | default({}), "
                                     "'partial': partial | default({})} | to_json }}"}}]
    run(tmp_path, {}, tasks=tasks)
    return json.loads(out.read_text())


def test_installed_packages_are_read_once_and_apt_is_not_run(tmp_path):
    (tmp_path / "selections.json").write_text(json.dumps({}))
    result = packages_results(tmp_path, [
        {"name": "Install what is there",
         "kubegpu.cluster.packages": {"manager": "apt", "names": INSTALLED, "update_cache": True},
         "register": "plain"}])["plain"]
    assert result["changed"] is False
    assert result["installed"] == [] and result["held_now"] == [] and result["index_downloaded"] is False
    # the reading only: neither apt nor its lists
    assert result["module_runs"] == 1
    assert "cache_updated" not in result


def test_a_handed_reading_that_answers_the_call_is_not_read_again(tmp_path):
    (tmp_path / "selections.json").write_text(json.dumps({}))
    results = packages_results(tmp_path, [
        {"name": "The stage's own reading", "kubegpu.cluster.host_state": {
            "packages": INSTALLED, "globs": ["/var/lib/apt/lists/*_Packages*"]}, "register": "stage"},
        {"name": "Install with it", "kubegpu.cluster.packages": {"manager": "apt", "names": INSTALLED,
                                                                 "reading": "{{ stage }}"},
         "register": "handed"},
        # apt's lists not looked at: not an answer, read again
        {"name": "A reading of the packages only", "kubegpu.cluster.host_state": {"packages": INSTALLED},
         "register": "packages_only"},
        {"name": "Install with that", "kubegpu.cluster.packages": {"manager": "apt", "names": INSTALLED,
                                                                   "reading": "{{ packages_only }}"},
         "register": "partial"},
        {"name": "Install pinned, with the stage's reading (read without the pin)",
         "kubegpu.cluster.packages": {"manager": "apt", "names": ["bash=*"], "reading": "{{ stage }}"},
         "register": "plain"}])
    assert results["handed"]["module_runs"] == 0 and results["handed"]["installed"] == []
    assert results["partial"]["module_runs"] == 1 and results["partial"]["installed"] == []
    # a reading without the pin does not answer a pinned request: read again, with it
    assert results["plain"]["module_runs"] == 1 and results["plain"]["installed"] == []
