"""Python bindings for agora's wire protocol, generated from proto/*.proto at run time.

The .proto files are the one source of truth, so nothing generated is committed:
the first import runs `protoc --python_out` into a cache directory keyed by a hash
of the schema, later imports reuse it. Debian's protobuf-compiler and
python3-protobuf come from the same release (3.21), so the generated code always
matches the runtime.

    from agora_proto import pb
    req = pb.EnvRequest(protocol_version=1, request_id=1)

The schema directory defaults to ../../proto next to this file (override with
AGORA_PROTO_DIR); the cache defaults to $XDG_CACHE_HOME/agora/python-proto
(override with AGORA_PROTO_CACHE).
"""

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import types
import warnings

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PROTO_FILES = ("common", "env", "trajectory", "weights", "reward", "control")
PROTOCOL_VERSION = 1


def _proto_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("AGORA_PROTO_DIR",
                          os.path.join(here, os.pardir, os.pardir, "proto"))


def _cache_root():
    if os.environ.get("AGORA_PROTO_CACHE"):
        return os.environ["AGORA_PROTO_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return os.path.join(base, "agora", "python-proto")


def _generate():
    """Return a directory holding <name>_pb2.py for every schema file."""
    src = _proto_dir()
    paths = [os.path.join(src, name + ".proto") for name in PROTO_FILES]
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            digest.update(f.read())
    out = os.path.join(_cache_root(), digest.hexdigest()[:16])
    if os.path.isfile(os.path.join(out, "control_pb2.py")):
        return out
    os.makedirs(_cache_root(), exist_ok=True)
    # Generate beside the target and rename: concurrent first runs (a test
    # starting a server and a client at once) never see a half-written module.
    tmp = tempfile.mkdtemp(prefix=".gen-", dir=_cache_root())
    try:
        subprocess.run(["protoc", "--proto_path=" + src, "--python_out=" + tmp]
                       + paths, check=True)
        try:
            os.rename(tmp, out)
        except OSError:
            if not os.path.isfile(os.path.join(out, "control_pb2.py")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _load():
    sys.path.insert(0, _generate())
    # The generated modules import each other by bare name ("import common_pb2").
    modules = [importlib.import_module(name + "_pb2") for name in PROTO_FILES]
    ns = types.SimpleNamespace()
    for module in modules:
        for name in module.DESCRIPTOR.message_types_by_name:
            setattr(ns, name, getattr(module, name))
        for name in module.DESCRIPTOR.enum_types_by_name:
            setattr(ns, name, getattr(module, name))
    # Enum values at top level too: pb.ERROR_BAD_REQUEST.
    for name, value in modules[0].ErrorCode.items():
        setattr(ns, name, value)
    return ns


#: Every message and enum of package agora.v1 as one namespace.
pb = _load()


class DecodeError(Exception):
    """A request that is not a valid message. request_id is the id to answer
    with: 0, unless the envelope's header could still be read (below)."""

    def __init__(self, request_id, why):
        super().__init__(why)
        self.request_id = request_id
        self.why = why


def decode(cls, payload):
    """Decode payload as message class cls as strictly as protobuf-c does.

    Two things the Python runtime accepts or reports vaguely are decided here
    as docs/protocol.md §4 says: a known field number carrying another wire
    type, and bytes after an end-group tag, make the message undecodable
    (request_id 0). A string that is not UTF-8 fails the runtime's parse, but
    the message is well formed otherwise, so its request_id is echoed.
    """
    msg = cls()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an end-group tag only warns
            complete = msg.MergeFromString(payload) == len(payload)
    except Exception:
        lenient = _lenient(cls)()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ok = (lenient.MergeFromString(payload) == len(payload)
                      and not _wrong_wire_type(lenient))
        except Exception:
            ok = False
        if ok:
            raise DecodeError(getattr(lenient, "request_id", 0),
                              "a string field is not valid UTF-8")
        raise DecodeError(0, "not a valid %s" % cls.DESCRIPTOR.name)
    if not complete or _wrong_wire_type(msg):
        raise DecodeError(0, "not a valid %s" % cls.DESCRIPTOR.name)
    return msg


def _wrong_wire_type(msg):
    """True if msg or a sub-message holds a known field number as an unknown
    field: the runtime's way of keeping a field that had the wrong wire type."""
    known = msg.DESCRIPTOR.fields_by_number
    if any(f.field_number in known for f in msg.UnknownFields()):
        return True
    for field, value in msg.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        values = value if field.label == field.LABEL_REPEATED else [value]
        if any(_wrong_wire_type(v) for v in values):
            return True
    return False


_LENIENT = {}


def _lenient(cls):
    """A twin of message class cls in which every string field is bytes (the
    same wire format, without the UTF-8 check)."""
    if not _LENIENT:
        pool = descriptor_pool.DescriptorPool()
        for name in PROTO_FILES:  # dependencies first
            fdp = descriptor_pb2.FileDescriptorProto()
            importlib.import_module(name + "_pb2").DESCRIPTOR.CopyToProto(fdp)
            for message in fdp.message_type:
                for field in message.field:
                    if field.type == field.TYPE_STRING:
                        field.type = field.TYPE_BYTES
            pool.Add(fdp)
        factory = message_factory.MessageFactory(pool)
        for name in PROTO_FILES:
            for message in pool.FindFileByName(name + ".proto").message_types_by_name.values():
                _LENIENT[message.full_name] = factory.GetPrototype(message)
    return _LENIENT[cls.DESCRIPTOR.full_name]
