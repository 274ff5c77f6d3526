# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""TOML-aware, idempotent edits of containerd's config.toml.

Runs on the target host (Python 3.8+). Needs ``tomlkit`` >= 0.11 (Debian and
Ubuntu: ``python3-tomlkit``; RHEL/EPEL: ``python3-tomlkit``). Everything here is a
pure function of the file's text and the wanted settings: the module does the
I/O (reading, ``containerd config default``, writing).

Only the keys this code owns are touched; every other key, table, comment and the
order of the file are kept (as far as tomlkit keeps them).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re
from collections import namedtuple

try:
    import tomlkit
    from tomlkit.exceptions import TOMLKitError
    from tomlkit.items import String, StringType, Table, Trivia, Whitespace
    HAS_TOMLKIT = True
    TOMLKIT_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised on hosts without it
    tomlkit = None
    HAS_TOMLKIT = False
    TOMLKIT_IMPORT_ERROR = exc

    class TOMLKitError(Exception):  # type: ignore[no-redef]
        pass

TOMLKIT_PACKAGE = 'python3-tomlkit'
TOMLKIT_MISSING_MSG = (
    "The Python library tomlkit (>= 0.11) is needed on the target host to edit "
    "containerd's config. Install the distribution package %s "
    "(or 'pip install tomlkit') for the Python that runs Ansible modules."
    % TOMLKIT_PACKAGE
)

RUNC_RUNTIME_TYPE = 'io.containerd.runc.v2'
# Defaults of a runtime's keys (the module's options, and merge_settings for callers
# that hand over the same dicts without the module's argument spec).
RUNTIME_DEFAULTS = {'runtime_type': RUNC_RUNTIME_TYPE, 'inherit_from': 'runc'}
# The options of the containerd_config module that merge() takes.
MERGE_SETTINGS = ('systemd_cgroup', 'sandbox_image', 'runtimes', 'default_runtime', 'cdi',
                  'cdi_spec_dirs', 'registry_config_path', 'imports')
SUPPORTED_VERSIONS = (1, 2, 3, 4)
# Layouts merge() writes into a file that configures nothing (layout_for()).
BLANK_VERSIONS = (2, 3)
# Entries of the top-level disabled_plugins list that keep kubelet from using containerd:
# the CRI plugin by its version 1 id and by its URI, and the two plugins containerd 2.x
# split out of it (the CRI service does not start without them). merge() removes them.
CRI_PLUGIN_IDS = ('cri', 'io.containerd.grpc.v1.cri', 'io.containerd.cri.v1.runtime',
                  'io.containerd.cri.v1.images')

_V1_CRI = ('plugins', 'cri')
_V2_CRI = ('plugins', 'io.containerd.grpc.v1.cri')
_V3_RUNTIME = ('plugins', 'io.containerd.cri.v1.runtime')
_V3_IMAGES = ('plugins', 'io.containerd.cri.v1.images')


def _cri_v1_v2(cri):
    return {
        'runtimes': cri + ('containerd', 'runtimes'),
        'default_runtime_name': cri + ('containerd', 'default_runtime_name'),
        'sandbox_image': cri + ('sandbox_image',),
        'enable_cdi': cri + ('enable_cdi',),
        'cdi_spec_dirs': cri + ('cdi_spec_dirs',),
        'registry_config_path': cri + ('registry', 'config_path'),
        'registry_mirrors': cri + ('registry', 'mirrors'),
    }


_PATHS = {
    1: _cri_v1_v2(_V1_CRI),
    2: _cri_v1_v2(_V2_CRI),
    3: {
        'runtimes': _V3_RUNTIME + ('containerd', 'runtimes'),
        'default_runtime_name': _V3_RUNTIME + ('containerd', 'default_runtime_name'),
        'sandbox_image': _V3_IMAGES + ('pinned_images', 'sandbox'),
        'enable_cdi': _V3_RUNTIME + ('enable_cdi',),
        'cdi_spec_dirs': _V3_RUNTIME + ('cdi_spec_dirs',),
        'registry_config_path': _V3_IMAGES + ('registry', 'config_path'),
        'registry_mirrors': _V3_IMAGES + ('registry', 'mirrors'),
    },
}
# containerd 2.3+ writes version = 4; the CRI plugin layout is that of version 3.
_PATHS[4] = _PATHS[3]

MergeResult = namedtuple(
    'MergeResult', ['changed', 'before', 'after', 'version', 'runtimes', 'default_runtime',
                    'reenabled_plugins', 'filled'])


class ContainerdConfigError(Exception):
    """The file cannot be edited safely (does not parse, unknown version, ...)."""


def merge_settings(params):
    """merge()'s keyword arguments from the module's options (or a dict of the same keys).

    A runtime's unset keys take RUNTIME_DEFAULTS; systemd_cgroup, unset, is True (the
    module's default). The module and the role's "would it change?" filter both use this,
    so they hand merge() the same settings.
    """
    settings = dict((key, params.get(key)) for key in MERGE_SETTINGS)
    if params.get('systemd_cgroup') is None:
        settings['systemd_cgroup'] = True
    settings['runtimes'] = [
        dict(name=spec['name'],
             runtime_type=spec.get('runtime_type') or RUNTIME_DEFAULTS['runtime_type'],
             binary_name=spec.get('binary_name'),
             options=spec.get('options'),
             inherit_from=spec.get('inherit_from') or RUNTIME_DEFAULTS['inherit_from'])
        for spec in params.get('runtimes') or []]
    return settings


def require_tomlkit():
    if not HAS_TOMLKIT:
        raise ContainerdConfigError(TOMLKIT_MISSING_MSG)


def cri_paths(version):
    """Key paths (tuples) of the CRI settings this code owns, for a config version."""
    if version not in _PATHS:
        raise ContainerdConfigError(
            'containerd config version %r is not supported (supported: %s)'
            % (version, ', '.join(str(v) for v in SUPPORTED_VERSIONS)))
    return dict(_PATHS[version])


def format_path(path):
    """``plugins."io.containerd.grpc.v1.cri".containerd`` for messages and docs."""
    parts = []
    for key in path:
        if re.match(r'^[A-Za-z0-9_-]+$', key):
            parts.append(key)
        else:
            parts.append('"%s"' % key)
    return '.'.join(parts)


def parse(text, source='config'):
    """Parse TOML text into a tomlkit document; refuse (raise) what does not parse."""
    require_tomlkit()
    try:
        return tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ContainerdConfigError(
            '%s is not valid TOML, refusing to edit it (fix or remove the file first): %s'
            % (source, exc))
    except (ValueError, TypeError, KeyError) as exc:
        raise ContainerdConfigError(
            '%s is not valid TOML, refusing to edit it (fix or remove the file first): %s'
            % (source, exc))


def detect_version(doc):
    """The config version: the top-level ``version`` key; absent means 1."""
    if 'version' not in doc:
        return 1
    value = _plain(doc['version'])
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContainerdConfigError('the top-level "version" key must be an integer, got %r' % (value,))
    if value not in SUPPORTED_VERSIONS:
        raise ContainerdConfigError(
            'containerd config version %d is not supported (supported: %s)'
            % (value, ', '.join(str(v) for v in SUPPORTED_VERSIONS)))
    return value


def layout_for(installed):
    """The config version to fill a file that configures nothing with, for the installed
    containerd (``(major, minor, patch)`` from parse_containerd_version, or None).

    3 for containerd 2.x and later; 2 for 1.x. Also 2 when the version is unknown:
    containerd 1.x reads version 2 and 2.x migrates it on load, while a file left at
    version 1 loses its CRI settings on 2.x.
    """
    if installed and installed[0] >= 2:
        return 3
    return 2


def lacks_version_key(text):
    """Whether the config text parses and has no top-level ``version`` key (config
    version 1, or a file that configures nothing). False for text that does not
    parse: merge() reports that."""
    try:
        doc = parse(text)
    except ContainerdConfigError:
        return False
    return 'version' not in doc


def parse_containerd_version(output):
    """(major, minor, patch) from ``containerd --version`` output, or None."""
    match = re.search(r'(?:^|\s)v?(\d+)\.(\d+)\.(\d+)', output or '')
    if not match:
        return None
    return tuple(int(part) for part in match.groups())


# ---------------------------------------------------------------------------
# tomlkit helpers (tomlkit 0.11 .. 0.15)

def _plain(value):
    """A tomlkit item as plain Python data."""
    if hasattr(value, 'unwrap'):
        return value.unwrap()
    return value


def _is_table(value):
    # Table, InlineTable, the proxy of an out-of-order table, or a plain dict.
    return hasattr(value, 'keys') and hasattr(value, '__getitem__')


def _literal_ok(text):
    return "'" not in text and '\n' not in text and '\r' not in text and '\\' not in text


def _new_string(value, literal):
    if literal and _literal_ok(value):
        return String(StringType.SLL, value, value, Trivia())
    return tomlkit.string(value)


def _to_item(value, literal):
    """Plain data -> tomlkit item, strings in the file's quoting style."""
    if isinstance(value, str):
        return _new_string(value, literal)
    if isinstance(value, bool):
        return tomlkit.item(value)
    if isinstance(value, dict):
        table = tomlkit.table()
        for key, sub in value.items():
            table.add(key, _to_item(sub, literal))
        return table
    if isinstance(value, (list, tuple)):
        array = tomlkit.array()
        for sub in value:
            array.append(_to_item(sub, literal))
        return array
    return tomlkit.item(value)


def _spaces(trivia_indent):
    """The trailing run of spaces of a trivia indent ('\n    ' -> '    ')."""
    return trivia_indent.split('\n')[-1].replace('\r', '')


def _first_key_indent(table):
    """Indentation of the first plain key of ``table``, or None."""
    container = getattr(table, 'value', None)
    body = getattr(container, 'body', None) or []
    for key, item in body:
        if key is not None and not _is_table(item) and hasattr(item, 'trivia'):
            return _spaces(item.trivia.indent)
    return None


def _ends_with_blank(node):
    """Whether the rendering of a table/container ends with an empty line."""
    container = getattr(node, 'value', node)
    body = getattr(container, 'body', None)
    if not body:
        return False
    key, last = body[-1]
    if isinstance(last, Whitespace):
        return '\n' in last.s or last.s == ''
    if isinstance(last, Table):
        return _ends_with_blank(last)
    return False


def _walk_tables(container):
    """Every Table under a document/table, depth first."""
    body = getattr(container, 'body', None)  # a document is a Container
    if body is None:
        body = getattr(getattr(container, 'value', None), 'body', None) or []
    for _key, item in body:
        if isinstance(item, Table):
            yield item
            yield from _walk_tables(item)


def _deepest_last_table(table):
    body = table.value.body
    if body and isinstance(body[-1][1], Table):
        return _deepest_last_table(body[-1][1])
    return table


def _add(parent, key, item):
    """Add without tomlkit's cumulative re-indentation where the API allows it."""
    if hasattr(parent, 'raw_append'):
        parent.raw_append(key, item)
    elif hasattr(parent, 'add'):
        parent.add(key, item)
    else:  # out-of-order table proxy
        parent[key] = item


class _Editor:
    """Applies edits to one parsed document, in the file's own layout."""

    def __init__(self, doc, version):
        self.doc = doc
        self.version = version
        # containerd 2.x writes literal ('...') strings; keep new values in that style.
        self.literal = version >= 3
        self.step = self._guess_indent_step()

    def _guess_indent_step(self):
        """Indentation step of nested tables: 2 in ``containerd config default``
        output, 0 in flat hand-written files. Taken from the first table that has
        keys: their indentation minus its header's."""
        for table in _walk_tables(self.doc):
            keys = _first_key_indent(table)
            if keys is not None:
                return max(len(keys) - len(_spaces(table.trivia.indent)), 0)
        return 0

    def header_indent(self, path):
        """Indentation of a new table header at ``path``: like a sibling table's,
        else one step below the nearest ancestor that has keys."""
        parent = self.get(path[:-1]) if len(path) > 1 else None
        if parent is not None:
            for key in parent.keys():
                sibling = parent[key]
                if isinstance(sibling, Table) and _first_key_indent(sibling) is not None:
                    return _spaces(sibling.trivia.indent)
        for depth in range(len(path) - 1, 0, -1):
            ancestor = self.get(path[:depth])
            keys = _first_key_indent(ancestor) if isinstance(ancestor, Table) else None
            if keys is not None:
                return keys + ' ' * (self.step * (len(path) - depth - 1))
        return ' ' * (self.step * (len(path) - 1))

    def key_indent(self, table, path):
        found = _first_key_indent(table)
        if found is not None:
            return found
        trivia = getattr(table, 'trivia', None)
        if isinstance(table, Table) and trivia is not None and not table.is_super_table():
            return _spaces(trivia.indent) + ' ' * self.step
        return self.header_indent(path) + ' ' * self.step

    # -- navigation --------------------------------------------------------
    def get(self, path):
        node = self.doc
        for key in path:
            if not _is_table(node) or key not in node:
                return None
            node = node[key]
        return node

    def table(self, path):
        """The table at ``path``; missing ones are created (parents as super tables)."""
        node = self.doc
        for index, key in enumerate(path):
            if key in node:
                node = node[key]
                if not _is_table(node):
                    raise ContainerdConfigError(
                        '%s is not a table (found %r); refusing to replace it'
                        % (format_path(path[:index + 1]), _plain(node)))
                continue
            leaf = index == len(path) - 1
            new = tomlkit.table(is_super_table=True) if not leaf else tomlkit.table()
            # A super table prints no header, unless keys are added to it later.
            self._place(node, new, self.header_indent(path[:index + 1]))
            _add(node, key, new)
            node = node[key]
        return node

    def _place(self, parent, table, header):
        """Indent a new table's header; a blank line before it unless the parent
        already ends with one (containerd's own output ends each table with a
        blank line). Returns whether the file uses that trailing-blank style."""
        trailing = _ends_with_blank(parent)
        table.trivia.indent = ('' if trailing else '\n') + header
        return trailing

    def new_table(self, path, data, parent=None, header=None):
        """A table for ``path`` holding ``data`` (sub-dicts as sub-tables), to be
        added to ``parent``."""
        if header is None:
            header = self.header_indent(path)
        table = tomlkit.table()
        table.trivia.indent = '\n' + header
        indent = header + ' ' * self.step
        for key, value in data.items():
            if isinstance(value, dict):
                continue
            item = _to_item(value, self.literal)
            item.trivia.indent = indent
            table.raw_append(key, item)
        for key, value in data.items():
            if isinstance(value, dict):
                table.raw_append(key, self.new_table(path + (key,), value, header=indent))
        if parent is not None and self._place(parent, table, header):
            _deepest_last_table(table).raw_append(None, Whitespace('\n'))
        return table

    # -- values -------------------------------------------------------------
    def set_value(self, path, value):
        """Ensure ``path`` holds ``value``; returns True when it changed."""
        parent = self.table(path[:-1])
        key = path[-1]
        if key in parent:
            current = parent[key]
            plain = _plain(current)
            if plain == value and type(plain) is type(value):
                return False
            literal = self.literal
            if isinstance(current, String):
                # String.type arrived in tomlkit 0.12; 0.11 only has ._t
                kind = getattr(current, 'type', None) or getattr(current, '_t', None)
                literal = kind == StringType.SLL
            parent[key] = _to_item(value, literal)
            return True
        item = _to_item(value, self.literal)
        item.trivia.indent = self.key_indent(parent, path[:-1])
        _add(parent, key, item)
        return True


def _runtime_is_runc(runtime):
    return _is_table(runtime) and _plain(runtime.get('runtime_type')) == RUNC_RUNTIME_TYPE


def merge(text, systemd_cgroup=True, runtimes=None, default_runtime=None,
          sandbox_image=None, cdi=None, cdi_spec_dirs=None,
          registry_config_path=None, imports=None, source='config', blank_version=None):
    """Apply the wanted settings to config text; returns a :class:`MergeResult`.

    ``runtimes`` is a list of dicts with ``name`` and optional ``runtime_type``
    (default io.containerd.runc.v2), ``binary_name``, ``options`` (dict) and
    ``inherit_from`` (default ``runc``: a new runtime starts as a copy of that
    runtime's table, like ``nvidia-ctk runtime configure`` does).
    Settings left as None are not touched.

    The CRI plugin's ids (CRI_PLUGIN_IDS) are always removed from the top-level
    ``disabled_plugins`` list; other entries are kept.

    ``blank_version`` (2 or 3, see layout_for) is the config version given to a file
    that configures nothing: empty, comments only, or nothing but an empty
    ``disabled_plugins`` list once the CRI plugin is enabled again (Docker's
    containerd.io file). Such a file has no ``version`` key, which would mean
    version 1; None keeps it at version 1.
    """
    bad_blank = isinstance(blank_version, bool) or blank_version not in BLANK_VERSIONS
    if blank_version is not None and bad_blank:
        raise ContainerdConfigError(
            'blank_version must be one of %s, got %r'
            % (', '.join(str(v) for v in BLANK_VERSIONS), blank_version))
    doc = parse(text, source)
    reenabled = _enable_cri(doc)
    filled = blank_version is not None and _configures_nothing(doc)
    if filled:
        doc = parse(_with_version_key(tomlkit.dumps(doc), blank_version), source)
    version = detect_version(doc)
    paths = cri_paths(version)
    editor = _Editor(doc, version)
    runtimes_path = paths['runtimes']
    changed = bool(reenabled) or filled

    # 1. runc first (SystemdCgroup), so runtimes copied from it inherit the setting.
    if systemd_cgroup is not None:
        changed |= _ensure_runc(editor, runtimes_path, bool(systemd_cgroup))

    # 2. Extra runtimes.
    for spec in runtimes or []:
        changed |= _ensure_runtime(editor, runtimes_path, spec)

    # 3. SystemdCgroup on every runtime of the runc shim type.
    if systemd_cgroup is not None:
        changed |= _ensure_systemd_cgroup(editor, runtimes_path, bool(systemd_cgroup))

    # 4. Default runtime.
    if default_runtime is not None:
        present = _runtime_names(editor, runtimes_path)
        if default_runtime not in present and default_runtime != 'runc':
            raise ContainerdConfigError(
                'default_runtime %r is not a configured runtime (configured: %s); '
                'add it to runtimes first' % (default_runtime, ', '.join(present) or 'none'))
        changed |= editor.set_value(paths['default_runtime_name'], default_runtime)

    # 5. Sandbox (pause) image.
    if sandbox_image is not None:
        changed |= editor.set_value(paths['sandbox_image'], sandbox_image)

    # 6. CDI.
    if cdi is not None:
        changed |= editor.set_value(paths['enable_cdi'], bool(cdi))
    if cdi_spec_dirs is not None:
        changed |= editor.set_value(paths['cdi_spec_dirs'], [str(d) for d in cdi_spec_dirs])

    # 7. Registry hosts directory (certs.d/<host>/hosts.toml).
    if registry_config_path is not None:
        mirrors = editor.get(paths['registry_mirrors'])
        if registry_config_path and mirrors is not None and _plain(mirrors):
            raise ContainerdConfigError(
                'the file configures registry mirrors in %s; containerd refuses '
                '"mirrors" together with "config_path". Move them to hosts.toml '
                'files under %s and remove the mirrors table first'
                % (format_path(paths['registry_mirrors']), registry_config_path))
        changed |= editor.set_value(paths['registry_config_path'], registry_config_path)

    # 8. imports (drop-in files): append what is missing, keep the user's entries.
    if imports:
        changed |= _ensure_imports(editor, [str(i) for i in imports])

    after = tomlkit.dumps(doc)
    # The result must parse again and keep what was set (guards against tomlkit quirks).
    check = parse(after, 'the edited %s' % source)
    if detect_version(check) != version:  # pragma: no cover - defensive
        raise ContainerdConfigError('internal error: the edit changed the config version')
    checker = _Editor(check, version)
    if not changed or after == text:
        # Nothing to do: hand back the input itself, not tomlkit's re-rendering.
        changed, after = False, text
    return MergeResult(
        changed=changed,
        before=text,
        after=after,
        version=version,
        runtimes=_runtime_names(checker, runtimes_path),
        default_runtime=_plain(checker.get(paths['default_runtime_name'])),
        reenabled_plugins=reenabled,
        filled=filled,
    )


def _enable_cri(doc):
    """Remove the CRI plugin's ids from the top-level disabled_plugins list, keeping
    the other entries (and the list). Returns the entries removed, in file order."""
    if 'disabled_plugins' not in doc:
        return []
    disabled = doc['disabled_plugins']
    if not isinstance(_plain(disabled), list):
        raise ContainerdConfigError(
            'the top-level "disabled_plugins" key must be a list, got %r' % (_plain(disabled),))
    removed = []
    for index in reversed(range(len(disabled))):
        entry = _plain(disabled[index])
        if isinstance(entry, str) and entry in CRI_PLUGIN_IDS:
            removed.insert(0, entry)
            del disabled[index]
    return removed


def _configures_nothing(doc):
    """No key but an empty disabled_plugins list (containerd then runs on its
    built-in defaults, whatever the config version)."""
    for key in doc.keys():
        if key != 'disabled_plugins' or _plain(doc[key]):
            return False
    return True


def _with_version_key(text, version):
    """``version = N`` before the first key of a file that has no version key (after
    its leading comments), or on top of a file of comments only."""
    newline = '\r\n' if '\r\n' in text else '\n'
    lines = text.splitlines(True)
    at = 0
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith('#'):
            at = index
            break
    lines.insert(at, 'version = %d%s' % (version, newline))
    return ''.join(lines)


def _runtime_names(editor, runtimes_path):
    table = editor.get(runtimes_path)
    if table is None or not _is_table(table):
        return []
    return [str(name) for name in table.keys() if _is_table(table[name])]


def _add_runtime(editor, runtimes_path, name, data):
    runtimes = editor.table(runtimes_path)
    _add(runtimes, name, editor.new_table(runtimes_path + (name,), data, parent=runtimes))


def _ensure_runc(editor, runtimes_path, systemd_cgroup):
    """Write runc's entry when the file lacks it (containerd's built-in one keeps
    SystemdCgroup = false otherwise)."""
    if not systemd_cgroup or editor.get(runtimes_path + ('runc',)) is not None:
        return False
    _add_runtime(editor, runtimes_path, 'runc', {
        'runtime_type': RUNC_RUNTIME_TYPE,
        'options': {'SystemdCgroup': True},
    })
    return True


def _ensure_runtime(editor, runtimes_path, spec):
    name = spec.get('name')
    if not name or not isinstance(name, str):
        raise ContainerdConfigError('every runtime needs a name, got %r' % (spec,))
    runtime_type = spec.get('runtime_type') or RUNC_RUNTIME_TYPE
    binary_name = spec.get('binary_name')
    wanted = dict(spec.get('options') or {})
    if binary_name:
        wanted['BinaryName'] = binary_name
    inherit_from = spec.get('inherit_from', 'runc')
    path = runtimes_path + (name,)

    existing = editor.get(path)
    if existing is None:
        data = {}
        if inherit_from and inherit_from != name:
            source = editor.get(runtimes_path + (inherit_from,))
            if source is not None and _is_table(source):
                data = copy.deepcopy(_plain(source))
            elif inherit_from != 'runc':
                raise ContainerdConfigError(
                    'runtime %r inherits from %r, which is not configured in %s'
                    % (name, inherit_from, format_path(runtimes_path)))
        data['runtime_type'] = runtime_type
        options = data.get('options')
        if not isinstance(options, dict):
            options = {}
        options.update(wanted)
        if options:
            data.pop('options', None)
            data['options'] = options
        _add_runtime(editor, runtimes_path, name, data)
        return True

    if not _is_table(existing):
        raise ContainerdConfigError('%s is not a table' % format_path(path))
    changed = editor.set_value(path + ('runtime_type',), runtime_type)
    if wanted:
        changed |= _ensure_options_table(editor, path)
    for key, value in wanted.items():
        changed |= editor.set_value(path + ('options', key), value)
    return changed


def _ensure_options_table(editor, runtime_path):
    if editor.get(runtime_path + ('options',)) is not None:
        return False
    runtime = editor.get(runtime_path)
    _add(runtime, 'options', editor.new_table(runtime_path + ('options',), {}, parent=runtime))
    return True


def _ensure_systemd_cgroup(editor, runtimes_path, value):
    runtimes = editor.get(runtimes_path)
    if runtimes is None or not _is_table(runtimes):
        return False
    changed = False
    for name in list(runtimes.keys()):
        runtime = runtimes[name]
        if not _runtime_is_runc(runtime):
            continue
        path = runtimes_path + (name,)
        options = editor.get(path + ('options',))
        if options is not None and not _is_table(options):
            raise ContainerdConfigError('%s is not a table' % format_path(path + ('options',)))
        if not value and (options is None or 'SystemdCgroup' not in options):
            continue  # false is containerd's default already
        changed |= _ensure_options_table(editor, path)
        changed |= editor.set_value(path + ('options', 'SystemdCgroup'), value)
    return changed


def _ensure_imports(editor, wanted):
    doc = editor.doc
    if 'imports' in doc:
        current = doc['imports']
        if not isinstance(_plain(current), list):
            raise ContainerdConfigError('the top-level "imports" key must be a list')
        present = [str(x) for x in _plain(current)]
        missing = [entry for entry in wanted if entry not in present]
        for entry in missing:
            current.append(_new_string(entry, editor.literal))
        return bool(missing)
    array = tomlkit.array()
    for entry in wanted:
        array.append(_new_string(entry, editor.literal))
    # Document.add puts a plain key before the first table.
    doc.add('imports', array)
    return True
