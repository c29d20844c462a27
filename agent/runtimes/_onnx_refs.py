"""The slice of ONNX's protobuf schema that says where tensors keep their data.

An agent installs without the ``onnx`` package (it is a host dependency), yet must see, before
onnxruntime does, whether a model stores any tensor as external data. These message classes are
built from a descriptor of just the fields on the way to a tensor's ``data_location`` and
``external_data`` (field numbers as in ``onnx/onnx.proto``); protobuf skips every other field.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["ModelRefs", "EXTERNAL"]

EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

_F = descriptor_pb2.FieldDescriptorProto
# message -> (field, number, type or message name, repeated)
_SCHEMA: dict[str, tuple[tuple[str, int, int | str, bool], ...]] = {
    "StringStringEntryProto": (("key", 1, _F.TYPE_STRING, False), ("value", 2, _F.TYPE_STRING, False)),
    "TensorProto": (
        ("name", 8, _F.TYPE_STRING, False),
        ("external_data", 13, "StringStringEntryProto", True),
        ("data_location", 14, _F.TYPE_INT32, False),  # an enum on the wire is a varint, like int32
    ),
    "SparseTensorProto": (("values", 1, "TensorProto", False), ("indices", 2, "TensorProto", False)),
    "AttributeProto": (
        ("t", 5, "TensorProto", False),
        ("g", 6, "GraphProto", False),
        ("tensors", 10, "TensorProto", True),
        ("graphs", 11, "GraphProto", True),
        ("sparse_tensor", 22, "SparseTensorProto", False),
        ("sparse_tensors", 23, "SparseTensorProto", True),
    ),
    "NodeProto": (("attribute", 5, "AttributeProto", True),),
    "GraphProto": (
        ("node", 1, "NodeProto", True),
        ("initializer", 5, "TensorProto", True),
        ("sparse_initializer", 15, "SparseTensorProto", True),
    ),
    "FunctionProto": (("node", 7, "NodeProto", True),),
    "ModelProto": (("graph", 7, "GraphProto", False), ("functions", 25, "FunctionProto", True)),
}
_PACKAGE = "lutnas_onnx_refs"


def _build_model_class() -> type:
    fdp = descriptor_pb2.FileDescriptorProto(name=f"{_PACKAGE}.proto", package=_PACKAGE, syntax="proto3")
    for message, fields in _SCHEMA.items():
        msg = fdp.message_type.add(name=message)
        for name, number, kind, repeated in fields:
            field = msg.field.add(name=name, number=number, label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
            if isinstance(kind, str):
                field.type, field.type_name = _F.TYPE_MESSAGE, f".{_PACKAGE}.{kind}"
            else:
                field.type = kind
    pool = descriptor_pool.DescriptorPool()  # private: never clashes with the onnx package's classes
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.ModelProto"))


ModelRefs = _build_model_class()
