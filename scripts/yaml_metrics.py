# SPDX-License-Identifier: Apache-2.0
"""How much the YAML of roles/ and playbooks/ decides: the counts docs/architecture.md
records before and after a change (issue #15).

Per role: lines of YAML (tasks, handlers, vars, defaults, meta), `when:` conditions (a
list counts each item), Jinja expressions and the longest. Over the whole tree: Jinja
expressions over 200 and over 300 characters. Per playbook: lines and inline tasks (tasks
written in the playbook rather than in a role).

A Jinja expression is each {{ ... }} in a string, and the whole value of the keys that
are expressions without braces (when, failed_when, changed_when, until, that), with
whitespace runs counted as one character (a folded scalar's line breaks are layout).

  scripts/yaml_metrics.py                 # the working tree
  scripts/yaml_metrics.py --rev c2b1dae   # a commit (read with git archive)
  scripts/yaml_metrics.py --rev A --rev B --markdown   # side by side
  scripts/yaml_metrics.py --rev A --tree --markdown    # a commit beside the working tree
"""
from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BARE_EXPRESSION_KEYS = ("when", "failed_when", "changed_when", "until", "that")
TASK_LISTS = ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always")
BRACES = re.compile(r"\{\{(.*?)\}\}", re.S)


class _Loader(yaml.SafeLoader):
    """Safe loading that keeps Ansible's !unsafe and !vault tags as plain strings."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
_Loader.add_constructor("!vault", lambda loader, node: loader.construct_scalar(node))


def _squeeze(text):
    return re.sub(r"\s+", " ", text.strip())


def expressions(node, key=None):
    """Every Jinja expression in a loaded YAML document."""
    if isinstance(node, dict):
        for k, value in node.items():
            yield from expressions(value, k)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item, key)
    elif isinstance(node, str):
        if key in BARE_EXPRESSION_KEYS and "{{" not in node:
            yield _squeeze(node)
        for match in BRACES.finditer(node):
            yield _squeeze(match.group(1))


def when_count(node):
    """`when:` conditions (each item of a list)."""
    if isinstance(node, dict):
        count = 0
        for k, value in node.items():
            if k == "when":
                count += len(value) if isinstance(value, list) else 1
            count += when_count(value)
        return count
    if isinstance(node, list):
        return sum(when_count(item) for item in node)
    return 0


def inline_tasks(node):
    """Tasks written directly in a playbook's plays (blocks: their tasks)."""
    count = 0
    if isinstance(node, list):
        for item in node:
            count += inline_tasks(item)
    elif isinstance(node, dict):
        for key in TASK_LISTS:
            tasks = node.get(key)
            if isinstance(tasks, list):
                for task in tasks:
                    if isinstance(task, dict) and any(k in task for k in ("block", "rescue", "always")):
                        count += inline_tasks(task)
                    else:
                        count += 1
    return count


def _files(tree):
    for path in sorted(tree.rglob("*")):
        if path.suffix in (".yml", ".yaml") and path.is_file() and "templates" not in path.parts \
                and "files" not in path.parts:
            yield path


def measure(tree):
    tree = Path(tree)
    roles, all_expressions, where = {}, [], []
    for role_dir in sorted((tree / "roles").iterdir()):
        if not role_dir.is_dir():
            continue
        lines = whens = 0
        exprs = []
        for path in _files(role_dir):
            text = path.read_text(encoding="utf-8")
            lines += len(text.splitlines())
            for doc in yaml.load_all(text, Loader=_Loader):
                whens += when_count(doc)
                found = list(expressions(doc))
                exprs.extend(found)
                where.extend((len(e), str(path.relative_to(tree))) for e in found)
        all_expressions.extend(exprs)
        roles[role_dir.name] = {"yaml_lines": lines, "when": whens, "jinja": len(exprs),
                                "longest": max((len(e) for e in exprs), default=0)}
    playbooks = {}
    for path in sorted((tree / "playbooks").glob("*.yml")):
        text = path.read_text(encoding="utf-8")
        docs = list(yaml.load_all(text, Loader=_Loader))
        exprs = [e for doc in docs for e in expressions(doc)]
        all_expressions.extend(exprs)
        where.extend((len(e), str(path.relative_to(tree))) for e in exprs)
        playbooks[path.name] = {"lines": len(text.splitlines()), "inline_tasks": sum(inline_tasks(d) for d in docs),
                                "when": sum(when_count(d) for d in docs), "jinja": len(exprs)}
    lengths = sorted((len(e) for e in all_expressions), reverse=True)
    return {"roles": roles, "playbooks": playbooks,
            "totals": {"jinja": len(lengths), "over_200": sum(n > 200 for n in lengths),
                       "over_300": sum(n > 300 for n in lengths), "longest": lengths[0] if lengths else 0,
                       "when": sum(r["when"] for r in roles.values()) + sum(p["when"] for p in playbooks.values()),
                       "yaml_lines_roles": sum(r["yaml_lines"] for r in roles.values()),
                       "inline_tasks_playbooks": sum(p["inline_tasks"] for p in playbooks.values())},
            "longest": [{"chars": n, "file": f} for n, f in sorted(where, reverse=True)[:15]]}


def measure_rev(rev):
    """measure() of a commit's roles/ and playbooks/, read with git archive."""
    import tempfile
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "roles", "playbooks"],
                          check=True, capture_output=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            # The "data" filter (no links out, no devices) where tarfile has it: Python 3.11.4 and
            # later; Debian 12's 3.11.2 has not. The archive is git's own, of this repository.
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:
                tar.extractall(tmp)  # noqa: S202 - git archive of this repository
        return measure(tmp)


def markdown(results):
    """Tables side by side for the revisions measured (first column = the first one)."""
    names = list(results)
    out = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key in ("jinja", "over_200", "over_300", "longest", "when", "yaml_lines_roles", "inline_tasks_playbooks"):
        out.append("| %s | %s |" % (key, " | ".join(str(results[n]["totals"][key]) for n in names)))
    out += ["", "| role: when / YAML lines / longest expression | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names)]
    roles = sorted({r for n in names for r in results[n]["roles"]})
    for role in roles:
        cells = []
        for n in names:
            r = results[n]["roles"].get(role)
            cells.append("%d / %d / %d" % (r["when"], r["yaml_lines"], r["longest"]) if r else "-")
        out.append("| %s | %s |" % (role, " | ".join(cells)))
    out += ["", "| playbook: lines / inline tasks | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    books = sorted({p for n in names for p in results[n]["playbooks"]})
    for book in books:
        cells = []
        for n in names:
            p = results[n]["playbooks"].get(book)
            cells.append("%d / %d" % (p["lines"], p["inline_tasks"]) if p else "-")
        out.append("| %s | %s |" % (book, " | ".join(cells)))
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rev", action="append", default=[], help="a commit (repeatable); default: the working tree")
    parser.add_argument("--tree", action="store_true", help="the working tree too (the default without --rev)")
    parser.add_argument("--markdown", action="store_true", help="tables instead of JSON")
    args = parser.parse_args(argv)
    results = {rev: measure_rev(rev) for rev in args.rev}
    if args.tree or not args.rev:
        results["working tree"] = measure(ROOT)
    print(markdown(results) if args.markdown else json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
