# SPDX-License-Identifier: Apache-2.0
"""scripts/yaml_metrics.py: what it counts as a Jinja expression, a `when:` condition and an
inline task (the counts docs/architecture.md records)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("kubegpu_yaml_metrics", ROOT / "scripts" / "yaml_metrics.py")
metrics = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(metrics)

PLAY = yaml.safe_load("""
- hosts: all
  tasks:
    - name: One
      ansible.builtin.debug:
        msg: "{{ a | b }} and {{ c }}"
      when:
        - x | bool
        - y
    - name: Block
      block:
        - name: Two
          ansible.builtin.command: "true"
          changed_when: >-
            rc == 0
            and z
      rescue:
        - name: Three
          ansible.builtin.fail:
            msg: no
          when: "{{ d }}"
""")


def test_expressions_count_braces_and_bare_conditions_with_whitespace_squeezed():
    assert sorted(metrics.expressions(PLAY)) == sorted(["a | b", "c", "x | bool", "y", "rc == 0 and z", "d"])


def test_when_counts_each_item():
    assert metrics.when_count(PLAY) == 3


def test_inline_tasks_count_the_tasks_of_blocks_not_the_block():
    assert metrics.inline_tasks(PLAY) == 3


def test_measure_a_tree(tmp_path):
    (tmp_path / "roles" / "r" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "r" / "tasks" / "main.yml").write_text(
        "- name: T\n  ansible.builtin.debug:\n    msg: \"{{ '%s' }}\"\n  when: w\n" % ("x" * 300))
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "p.yml").write_text(yaml.safe_dump(PLAY))
    result = metrics.measure(tmp_path)
    assert result["roles"]["r"]["when"] == 1 and result["roles"]["r"]["yaml_lines"] == 4
    assert result["totals"]["over_300"] == 1 and result["totals"]["over_200"] == 1
    assert result["playbooks"]["p.yml"]["inline_tasks"] == 3
    assert result["longest"][0]["file"] == "roles/r/tasks/main.yml"
