# SPDX-License-Identifier: Apache-2.0
"""Decoding of Kubernetes protobuf request bodies (Content-Type application/vnd.kubernetes.protobuf)
into the JSON dict the rest of the server handles.

client-go's typed clientsets (kubectl create configmap|secret|namespace|job|..., kubectl drain's
Eviction, helm's release Secrets, helm --create-namespace, DeleteOptions of DELETE) encode built-in
types as protobuf:

* the envelope (staging/src/k8s.io/apimachinery/pkg/runtime/serializer/protobuf/protobuf.go:
  Serializer.Encode / Decode): the 4-byte magic "k8s\\x00", then a runtime.Unknown message
  (staging/src/k8s.io/apimachinery/pkg/runtime/generated.proto: message Unknown: typeMeta=1
  {apiVersion=1, kind=2}, raw=2, contentEncoding=3, contentType=4); raw holds the object's own
  message (e.g. k8s.io/api/core/v1/generated.proto: message Secret);
* the wire format (https://protobuf.dev/programming-guides/encoding/): varint (0), 64-bit (1),
  length-delimited (2), 32-bit (5); proto2 maps are repeated entry messages {key=1, value=2};
  repeated scalars may come packed (one length-delimited field) or one by one;
* the Go types' JSON (what the decoded Go object would marshal to): []byte as base64,
  resource.Quantity as its string (k8s.io/apimachinery/pkg/api/resource/generated.proto:
  message Quantity, string=1), metav1.Time {seconds=1, nanos=2} as RFC 3339 (meta/v1
  time_proto.go: Time.ProtoTime), intstr.IntOrString {type=1, intVal=2, strVal=3} as a number
  or string, metav1.Duration as a Go duration string, FieldsV1 / RawExtension raw bytes as the
  JSON they hold, `json:",inline"` members merged into the parent, zero values of
  `omitempty` non-pointer fields left out (gogo-protobuf writes non-pointer fields even when
  zero).

The message tables (protobuf_messages.py) are generated from the upstream generated.proto files
and types.go struct tags by protobuf_gen.py. Fields the tables do not know are skipped, as
proto2 decoders skip unknown fields. Answers stay JSON (the clients accept it: client-go picks the
decoder from the response's Content-Type, rest/request.go: Result.Into / transformResponse).
"""
from __future__ import annotations

import base64
import datetime
import json
import struct

from . import errors
from .protobuf_messages import INLINE, KEEP_ZERO, MESSAGES, REPEATED

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# apiVersion -> the tables' package (k8s.io/api/<group>/<version>/generated.proto)
_PACKAGES = {
    "v1": "core.v1", "apps/v1": "apps.v1", "batch/v1": "batch.v1", "policy/v1": "policy.v1",
    "autoscaling/v1": "autoscaling.v1", "rbac.authorization.k8s.io/v1": "rbac.v1", "meta.k8s.io/v1": "meta.v1",
}

_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5
_NUMERIC = {"bool", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "double", "float", "fixed32",
            "fixed64", "sfixed32", "sfixed64"}


class DecodeError(ValueError):
    """A body that is not valid protobuf."""


def is_protobuf(content_type, raw):
    return CONTENT_TYPE in (content_type or "") or raw[:4] == MAGIC


# -- wire format -----------------------------------------------------------------------
def read_varint(buf, pos):
    """(value, new position) of the base-128 varint at pos."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise DecodeError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint too long")


def iter_fields(buf):
    """(field number, wire type, value) of each field: an int for varint/fixed32/fixed64
    (little-endian, unsigned), bytes for length-delimited."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise DecodeError("field number 0")
        if wire == _VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == _I64:
            if pos + 8 > end:
                raise DecodeError("truncated fixed64")
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == _I32:
            if pos + 4 > end:
                raise DecodeError("truncated fixed32")
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        elif wire == _LEN:
            length, pos = read_varint(buf, pos)
            if pos + length > end:
                raise DecodeError("truncated length-delimited field %d" % number)
            value, pos = bytes(buf[pos:pos + length]), pos + length
        else:
            raise DecodeError("unsupported wire type %d (field %d)" % (wire, number))
        yield number, wire, value


def _signed(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _scalar(typ, wire, value):
    """A scalar field's value as its JSON value (Go encoding/json of the Go field)."""
    if typ == "string":
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if typ == "bytes":
        return base64.b64encode(value).decode() if isinstance(value, bytes) else ""
    if isinstance(value, bytes):
        raise DecodeError("a %s field came length-delimited" % typ)
    if typ == "bool":
        return bool(value)
    if typ in ("int32", "sfixed32"):
        return _signed(value, 32) if wire == _I32 else _signed(value, 64)
    if typ in ("int64", "sfixed64"):
        return _signed(value, 64)
    if typ in ("sint32", "sint64"):
        return (value >> 1) ^ -(value & 1)
    if typ == "double":
        return struct.unpack("<d", value.to_bytes(8, "little"))[0]
    if typ == "float":
        return struct.unpack("<f", value.to_bytes(4, "little"))[0]
    return value   # uint32, uint64, fixed32, fixed64


def _packed(typ, buf):
    """The values of a packed repeated scalar field."""
    out, pos = [], 0
    while pos < len(buf):
        if typ in ("double", "fixed64", "sfixed64"):
            value, pos, wire = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8, _I64
        elif typ in ("float", "fixed32", "sfixed32"):
            value, pos, wire = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4, _I32
        else:
            (value, pos), wire = read_varint(buf, pos), _VARINT
        out.append(_scalar(typ, wire, value))
    return out


# -- the well-known apimachinery messages ----------------------------------------------
def _fields(buf):
    return {number: value for number, _wire, value in iter_fields(buf)}


def _time(buf, micro=False):
    """meta/v1 time_proto.go: Time.ProtoTime {seconds, nanos}; JSON: RFC 3339 (time.go:
    Time.MarshalJSON, seconds precision; micro_time.go: MicroTime, microseconds); zero -> null."""
    fields = _fields(buf)
    seconds, nanos = _signed(fields.get(1, 0), 64), _signed(fields.get(2, 0), 32)
    if not seconds and not nanos:
        return None
    stamp = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    if micro:
        return stamp.strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % (nanos // 1000)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _go_duration(nanos):
    """Go's time.Duration.String (metav1.Duration's JSON, meta/v1 duration.go)."""
    if nanos == 0:
        return "0s"
    sign, nanos = ("-", -nanos) if nanos < 0 else ("", nanos)
    if nanos < 1000000000:
        for unit, size in (("ms", 1000000), ("µs", 1000), ("ns", 1)):
            if nanos >= size:
                return sign + ("%.9f" % (nanos / size)).rstrip("0").rstrip(".") + unit
    hours, rest = divmod(nanos, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = ("%.9f" % (rest / 10**9)).rstrip("0").rstrip(".") + "s"
    if hours:
        return "%s%dh%dm%s" % (sign, hours, minutes, seconds)
    if minutes:
        return "%s%dm%s" % (sign, minutes, seconds)
    return sign + seconds


def _raw_json(data):
    """runtime.RawExtension / metav1.FieldsV1 raw bytes: JSON, or a nested protobuf object."""
    if not data:
        return None
    if data[:4] == MAGIC:
        return decode(data)
    try:
        return json.loads(data)
    except ValueError as err:
        raise DecodeError("raw extension is neither JSON nor protobuf: %s" % err)


def _special(name, buf):
    if name == "meta.v1.Time":
        return _time(buf)
    if name == "meta.v1.MicroTime":
        return _time(buf, micro=True)
    if name == "meta.v1.Duration":
        return _go_duration(_signed(_fields(buf).get(1, 0), 64))
    if name in ("resource.Quantity", "resource.QuantityValue"):
        # k8s.io/apimachinery/pkg/api/resource/generated.proto: message Quantity {string=1}
        return _fields(buf).get(1, b"").decode()
    if name == "intstr.IntOrString":
        # k8s.io/apimachinery/pkg/util/intstr/generated.proto: message IntOrString (type 0: Int, 1: String)
        fields = _fields(buf)
        return fields.get(3, b"").decode() if fields.get(1, 0) == 1 else _signed(fields.get(2, 0), 32)
    if name in ("meta.v1.FieldsV1", "runtime.RawExtension"):
        # meta/v1 generated.proto: message FieldsV1 {Raw=1}; runtime generated.proto: message RawExtension {raw=1}
        return _raw_json(_fields(buf).get(1, b""))
    return _NOT_SPECIAL


_NOT_SPECIAL = object()


def _is_zero(value):
    return value is None or value is False or value == 0 and not isinstance(value, bool) or value == ""


def decode_message(buf, name):
    """The JSON dict of message `name` (a key of MESSAGES, e.g. "core.v1.Secret")."""
    special = _special(name, buf)
    if special is not _NOT_SPECIAL:
        return special
    table = MESSAGES.get(name)
    out = {}
    if table is None:
        return out
    inline = []
    for number, wire, value in iter_fields(buf):
        entry = table.get(number)
        if entry is None or entry[1] == "unknown":
            continue   # proto2: unknown fields are skipped
        json_name, typ, flags = entry
        if typ.startswith("map<"):
            key_type, value_type = typ[4:-1].split(",")
            if not isinstance(value, bytes):
                raise DecodeError("map field %s is not length-delimited" % json_name)
            key, item = "", None
            for inner, inner_wire, inner_value in iter_fields(value):
                if inner == 1:
                    key = _scalar(key_type, inner_wire, inner_value)
                elif inner == 2:
                    item = _value(value_type, inner_wire, inner_value)
            if item is None:
                item = _zero(value_type)
            out.setdefault(json_name, {})[key] = item
        elif flags & REPEATED:
            items = out.setdefault(json_name, [])
            if typ in _NUMERIC and wire == _LEN:
                items.extend(_packed(typ, value))
            else:
                items.append(_value(typ, wire, value))
        elif flags & INLINE:
            inline.append(_value(typ, wire, value))
        else:
            out[json_name] = _value(typ, wire, value)
    for json_name, typ, flags in table.values():
        if json_name in out and not flags & (REPEATED | KEEP_ZERO) and not typ.startswith("map<") and \
                _is_zero(out[json_name]):
            del out[json_name]   # `omitempty` on a non-pointer Go field
        elif json_name in out and out[json_name] is None:
            del out[json_name]
    for part in inline:
        if isinstance(part, dict):
            out.update(part)
    return out


def _value(typ, wire, value):
    if typ in MESSAGES or typ in ("meta.v1.Time", "meta.v1.MicroTime"):
        if not isinstance(value, bytes):
            raise DecodeError("message %s is not length-delimited" % typ)
        return decode_message(value, typ)
    return _scalar(typ, wire, value)


def _zero(typ):
    if typ == "string":
        return ""
    if typ == "bytes":
        return ""
    if typ == "bool":
        return False
    if typ in _NUMERIC:
        return 0
    return decode_message(b"", typ)


# -- the envelope ----------------------------------------------------------------------
def unwrap(raw):
    """(apiVersion, kind, raw message bytes) of a protobuf body (runtime.Unknown)."""
    if raw[:4] != MAGIC:
        raise DecodeError("missing the protobuf magic prefix k8s\\x00")
    api_version = kind = ""
    inner = b""
    content_encoding = content_type = ""
    for number, _wire, value in iter_fields(raw[4:]):
        if number == 1 and isinstance(value, bytes):
            for tnum, _twire, tval in iter_fields(value):
                if tnum == 1:
                    api_version = tval.decode()
                elif tnum == 2:
                    kind = tval.decode()
        elif number == 2:
            inner = value
        elif number == 3:
            content_encoding = value.decode()
        elif number == 4:
            content_type = value.decode()
    if content_encoding:
        raise DecodeError("content encoding %r is not supported" % content_encoding)
    if content_type and content_type != CONTENT_TYPE:
        raise DecodeError("content type %r inside the envelope is not supported" % content_type)
    return api_version, kind, inner


def message_for(api_version, kind):
    """The table of apiVersion/kind: the group's package, else meta/v1 (DeleteOptions and the
    other option kinds every group version registers, meta/v1 register.go: AddToGroupVersion)."""
    package = _PACKAGES.get(api_version)
    for candidate in ("%s.%s" % (package, kind) if package else None, "meta.v1.%s" % kind):
        if candidate in MESSAGES:
            return candidate
    return None


def decode(raw):
    """The JSON dict of a whole protobuf body, apiVersion and kind first."""
    api_version, kind, inner = unwrap(raw)
    name = message_for(api_version, kind)
    if name is None:
        raise errors.ApiError(415, "UnsupportedMediaType", "kubegpu-sim: decoding %s, Kind=%s from protobuf is not "
                              "simulated (send JSON)" % (api_version, kind))
    out = {"apiVersion": api_version, "kind": kind}
    out.update(decode_message(inner, name))
    return out


def decode_body(raw):
    """decode() with malformed input answered 400 like the server's decoder
    (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/create.go: the decode error)."""
    try:
        return decode(raw)
    except DecodeError as err:
        raise errors.bad_request("failed to decode protobuf body: %s" % err)
