"""recserve's gRPC protos against the ones tritonclient was compiled with.

tritonclient.grpc serialises requests with Triton's compiled descriptors, so every message and
field recserve declares in crates/server/proto/ must have Triton's name, number, type and label.
grpc_service.proto must declare every RPC and every message field Triton has; model_config.proto
is a deliberate subset (the fields recserve fills), so only what it declares is checked.

Needs no server: it compiles the protos with grpc_tools.protoc and compares descriptors.
"""

import pathlib
import tempfile

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc
from tritonclient.grpc import model_config_pb2, service_pb2

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "crates" / "server" / "proto"


def _ours():
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "set.pb"
        rc = protoc.main(
            [
                "protoc",
                f"-I{PROTO_DIR}",
                f"--descriptor_set_out={out}",
                "--include_imports",
                "grpc_service.proto",
            ]
        )
        assert rc == 0, f"protoc failed on {PROTO_DIR}/grpc_service.proto"
        fds = descriptor_pb2.FileDescriptorSet()
        fds.ParseFromString(out.read_bytes())
    return {f.name: f for f in fds.file}


def _theirs(module):
    fd = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(fd)
    return fd


def _messages(fd):
    """Every message by full name, nested ones included."""
    found = {}

    def walk(msg, prefix):
        name = f"{prefix}.{msg.name}"
        found[name] = msg
        for nested in msg.nested_type:
            walk(nested, name)

    for msg in fd.message_type:
        walk(msg, fd.package)
    return found


def _enums(fd):
    found = {f"{fd.package}.{e.name}": e for e in fd.enum_type}
    for name, msg in _messages(fd).items():
        for e in msg.enum_type:
            found[f"{name}.{e.name}"] = e
    return found


def _field_key(f):
    oneof = f.oneof_index if f.HasField("oneof_index") else None
    return (f.number, f.type, f.label, f.type_name, oneof)


def _compare(ours, theirs, complete):
    problems = []
    our_msgs, their_msgs = _messages(ours), _messages(theirs)
    for name, msg in our_msgs.items():
        if name not in their_msgs:
            problems.append(f"message {name} is not Triton's")
            continue
        their_fields = {f.name: f for f in their_msgs[name].field}
        for f in msg.field:
            t = their_fields.get(f.name)
            if t is None:
                problems.append(f"{name}.{f.name} is not in Triton's message")
            elif _field_key(f) != _field_key(t):
                problems.append(f"{name}.{f.name}: ours {_field_key(f)}, Triton's {_field_key(t)}")
        if complete:
            ours_names = {f.name for f in msg.field}
            for missing in sorted(set(their_fields) - ours_names):
                problems.append(f"{name}.{missing} is missing")
    if complete:
        for missing in sorted(set(their_msgs) - set(our_msgs)):
            problems.append(f"message {missing} is missing")
    their_enums = _enums(theirs)
    for name, enum in _enums(ours).items():
        t = their_enums.get(name)
        if t is None:
            problems.append(f"enum {name} is not Triton's")
            continue
        their_values = {v.name: v.number for v in t.value}
        for v in enum.value:
            if their_values.get(v.name) != v.number:
                problems.append(f"{name}.{v.name} = {v.number}, Triton's = {their_values.get(v.name)}")
    return problems


@pytest.fixture(scope="module")
def ours():
    return _ours()


def test_service_declares_every_triton_rpc(ours):
    mine = ours["grpc_service.proto"]
    theirs = _theirs(service_pb2)
    assert mine.package == theirs.package == "inference"
    (my_service,) = mine.service
    (their_service,) = theirs.service
    assert my_service.name == their_service.name == "GRPCInferenceService"
    key = lambda m: (m.input_type, m.output_type, m.client_streaming, m.server_streaming)  # noqa: E731
    my_rpcs = {m.name: key(m) for m in my_service.method}
    their_rpcs = {m.name: key(m) for m in their_service.method}
    assert my_rpcs == their_rpcs


def test_service_messages_match_triton_field_by_field(ours):
    problems = _compare(ours["grpc_service.proto"], _theirs(service_pb2), complete=True)
    assert not problems, "\n".join(problems)


def test_model_config_subset_matches_triton(ours):
    problems = _compare(ours["model_config.proto"], _theirs(model_config_pb2), complete=False)
    assert not problems, "\n".join(problems)
