# SPDX-License-Identifier: Apache-2.0
"""Development tool (never imported by the server): writes protobuf_messages.py, the
message tables protobuf.py decodes with, from the upstream sources.

    python3 -m kubegpu_sim.apiserver.protobuf_gen API_DIR APIMACHINERY_DIR [SOURCE NOTE] > protobuf_messages.py

API_DIR is a checkout of k8s.io/api (github.com/kubernetes/api, = kubernetes
staging/src/k8s.io/api), APIMACHINERY_DIR one of k8s.io/apimachinery (= staging/src/
k8s.io/apimachinery). Two sources per package:

* generated.proto (go-to-protobuf's output): messages, field numbers, types, repeated/map;
* types.go, the Go struct tags the .proto was generated from: the JSON name, `omitempty`,
  whether the Go field is a pointer, and `json:",inline"` members (e.g. core/v1 Volume's
  VolumeSource, Probe's ProbeHandler), which have a field of their own on the wire but
  none in JSON.

Only the messages reachable from ROOTS are written.
"""
from __future__ import annotations

import os
import re
import sys

# (short package name, proto package, directory (relative to API_DIR or APIMACHINERY_DIR), which)
PACKAGES = (
    ("core.v1", "k8s.io.api.core.v1", "core/v1", "api"),
    ("apps.v1", "k8s.io.api.apps.v1", "apps/v1", "api"),
    ("batch.v1", "k8s.io.api.batch.v1", "batch/v1", "api"),
    ("policy.v1", "k8s.io.api.policy.v1", "policy/v1", "api"),
    ("autoscaling.v1", "k8s.io.api.autoscaling.v1", "autoscaling/v1", "api"),
    ("rbac.v1", "k8s.io.api.rbac.v1", "rbac/v1", "api"),
    ("meta.v1", "k8s.io.apimachinery.pkg.apis.meta.v1", "pkg/apis/meta/v1", "apimachinery"),
    ("resource", "k8s.io.apimachinery.pkg.api.resource", "pkg/api/resource", "apimachinery"),
    ("intstr", "k8s.io.apimachinery.pkg.util.intstr", "pkg/util/intstr", "apimachinery"),
    ("runtime", "k8s.io.apimachinery.pkg.runtime", "pkg/runtime", "apimachinery"),
)

# the request bodies kubectl's and helm's typed clients send (kubectl create <kind>, drain,
# scale, helm's release storage, --create-namespace)
ROOTS = (
    "core.v1.Secret", "core.v1.ConfigMap", "core.v1.Namespace", "core.v1.Pod", "core.v1.Service",
    "core.v1.ServiceAccount", "core.v1.Node", "core.v1.Binding", "core.v1.PodTemplate",
    "policy.v1.Eviction", "policy.v1.PodDisruptionBudget",
    "batch.v1.Job", "batch.v1.CronJob",
    "apps.v1.Deployment", "apps.v1.DaemonSet", "apps.v1.ReplicaSet", "apps.v1.StatefulSet",
    "autoscaling.v1.Scale",
    "rbac.v1.Role", "rbac.v1.RoleBinding", "rbac.v1.ClusterRole", "rbac.v1.ClusterRoleBinding",
    "meta.v1.DeleteOptions", "meta.v1.CreateOptions", "meta.v1.UpdateOptions", "meta.v1.PatchOptions",
    "runtime.Unknown",
)

SCALARS = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "double",
           "float", "fixed32", "fixed64", "sfixed32", "sfixed64"}

FIELD = re.compile(r"^\s*(optional|repeated|required)?\s*(map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)")


def parse_proto(text, short, proto_pkg, by_proto_pkg):
    messages = {}
    text = re.sub(r"//[^\n]*", "", text)
    for match in re.finditer(r"\bmessage\s+(\w+)\s*\{(.*?)\n\}", text, re.S):
        name, body = match.group(1), match.group(2)
        fields = {}
        for line in body.split(";"):
            m = FIELD.match(line.strip())
            if not m:
                continue
            label, typ, key_type, value_type, fname, number = m.groups()
            if key_type:
                typ = "map<%s,%s>" % (key_type, _qualify(value_type, short, by_proto_pkg))
            else:
                typ = _qualify(typ, short, by_proto_pkg)
            fields[int(number)] = {"name": fname, "type": typ, "repeated": label == "repeated"}
        messages["%s.%s" % (short, name)] = fields
    return messages


def _qualify(typ, short, by_proto_pkg):
    if typ in SCALARS:
        return typ
    if "." in typ:
        pkg, _dot, name = typ.lstrip(".").rpartition(".")
        if pkg not in by_proto_pkg:
            return "unknown"      # a package not tabled here: the decoder skips the field
        return "%s.%s" % (by_proto_pkg[pkg], name)
    return "%s.%s" % (short, typ)


TAG = re.compile(r'(\w+):"([^"]*)"')


def parse_go(directory, short):
    """{"pkg.Struct": {number: (json name, omitempty, pointer, inline)}} from the struct tags."""
    out = {}
    for fname in sorted(os.listdir(directory)):
        if not fname.endswith(".go") or fname.endswith("_test.go") or fname.startswith("zz_") or \
                fname == "generated.pb.go":
            continue
        with open(os.path.join(directory, fname)) as stream:
            text = stream.read()
        for match in re.finditer(r"^type (\w+) struct \{\n(.*?)^\}", text, re.S | re.M):
            struct, body = match.group(1), match.group(2)
            for line in body.splitlines():
                if "`" not in line or "protobuf:" not in line:
                    continue
                decl, tag = line.split("`", 1)
                tags = dict(TAG.findall(tag))
                tokens = decl.split()
                go_type = tokens[-1] if tokens else ""
                proto = tags["protobuf"].split(",")
                if len(proto) < 2 or not proto[1].isdigit():
                    continue
                json_tag = tags.get("json", "").split(",")
                number = int(proto[1])
                out.setdefault("%s.%s" % (short, struct), {})[number] = (
                    json_tag[0], "omitempty" in json_tag[1:], go_type.startswith("*"),
                    # encoding/json: an embedded struct without a JSON name is inlined
                    json_tag[0] == "" and ("inline" in json_tag[1:] or len(tokens) == 1))
    return out


def main(argv):
    api_dir, am_dir = argv[1], argv[2]
    note = argv[3] if len(argv) > 3 else ""
    by_proto_pkg = {proto: short for short, proto, _d, _w in PACKAGES}
    messages, go = {}, {}
    for short, proto, directory, which in PACKAGES:
        base = os.path.join(api_dir if which == "api" else am_dir, directory)
        with open(os.path.join(base, "generated.proto")) as stream:
            messages.update(parse_proto(stream.read(), short, proto, by_proto_pkg))
        go.update(parse_go(base, short))
    wanted, todo = [], list(ROOTS)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted.append(name)
        for field in messages[name].values():
            typ = field["type"]
            if typ.startswith("map<"):
                typ = typ[4:-1].split(",")[1]
            if typ not in SCALARS and typ != "unknown" and typ not in wanted:
                todo.append(typ)
    source = {short: "k8s.io/%s/%s/generated.proto" % ("api" if which == "api" else "apimachinery", directory)
              for short, _p, directory, which in PACKAGES}
    out = sys.stdout
    out.write('# SPDX-License-Identifier: Apache-2.0\n"""GENERATED by protobuf_gen.py from k8s.io/api and '
              'k8s.io/apimachinery\n(generated.proto + the types.go struct tags); do not edit.\n%s\n'
              'MESSAGES["pkg.Message"][field number] = (JSON name, type, flags); type is a scalar\n'
              '("string", "int64", ...), "map<key,value>" or another message; flags: REPEATED, KEEP_ZERO\n'
              '(a Go pointer or a field without omitempty: a zero value on the wire is kept), INLINE\n'
              '(`json:",inline"`: its fields go into the parent object)."""\n\n'
              "REPEATED, KEEP_ZERO, INLINE = 1, 2, 4\n\nMESSAGES = {\n" % (note + "\n" if note else ""))
    for name in sorted(wanted):
        short, _dot, message = name.rpartition(".")
        out.write("    # %s: message %s\n    %r: {\n" % (source[short], message, name))
        for number, field in sorted(messages[name].items()):
            json_name, omitempty, pointer, inline = go.get(name, {}).get(
                number, (field["name"], True, False, False))
            flags = []
            if field["repeated"]:
                flags.append("REPEATED")
            if pointer or not omitempty:
                flags.append("KEEP_ZERO")
            if inline:
                flags.append("INLINE")
            out.write("        %d: (%r, %r, %s),\n" % (number, json_name or field["name"], field["type"],
                                                       " | ".join(flags) or "0"))
        out.write("    },\n")
    out.write("}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
