"""Tiny TFLite files for the model checks, written with the flatbuffers builder (no TensorFlow needed).

The graph has one ``[1, 240, 320, 3]`` float input and constant outputs of the shapes asked for, no
operators: LiteRT loads it, and it answers with the wrong number of boxes, or the wrong tensors.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np

FLOAT32 = 0  # tflite TensorType


def _int_vector(builder: flatbuffers.Builder, values: list[int]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependInt32(value)
    return builder.EndVector()


def _table_vector(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _buffer(builder: flatbuffers.Builder, data: bytes | None) -> int:
    vector = None
    if data is not None:
        builder.StartVector(1, len(data), 16)
        for byte in reversed(data):
            builder.PrependByte(byte)
        vector = builder.EndVector()
    builder.StartObject(1)
    if vector is not None:
        builder.PrependUOffsetTRelativeSlot(0, vector, 0)
    return builder.EndObject()


def _tensor(builder: flatbuffers.Builder, shape: list[int], buffer: int, name: str) -> int:
    name_offset = builder.CreateString(name)
    shape_offset = _int_vector(builder, shape)
    builder.StartObject(4)  # Tensor: shape, type, buffer, name
    builder.PrependUOffsetTRelativeSlot(0, shape_offset, 0)
    builder.PrependInt8Slot(1, FLOAT32, 0)
    builder.PrependUint32Slot(2, buffer, 0)
    builder.PrependUOffsetTRelativeSlot(3, name_offset, 0)
    return builder.EndObject()


def constant_model(path: Path, outputs: list[tuple[int, ...]]) -> Path:
    """Write a model whose outputs are zero constants of the given shapes."""
    builder = flatbuffers.Builder(1024)
    datas = [np.zeros(int(np.prod(shape)), np.float32).tobytes() for shape in outputs]
    buffers = [_buffer(builder, data) for data in [None, *datas]]  # buffer 0 is the empty sentinel
    tensors = [_tensor(builder, [1, 240, 320, 3], 0, "input")]
    tensors += [_tensor(builder, list(shape), i + 1, f"output{i}") for i, shape in enumerate(outputs)]
    tensor_vector = _table_vector(builder, tensors)
    inputs = _int_vector(builder, [0])
    output_ids = _int_vector(builder, list(range(1, len(outputs) + 1)))
    operators = _table_vector(builder, [])
    builder.StartObject(5)  # SubGraph: tensors, inputs, outputs, operators, name
    builder.PrependUOffsetTRelativeSlot(0, tensor_vector, 0)
    builder.PrependUOffsetTRelativeSlot(1, inputs, 0)
    builder.PrependUOffsetTRelativeSlot(2, output_ids, 0)
    builder.PrependUOffsetTRelativeSlot(3, operators, 0)
    subgraph = builder.EndObject()
    subgraphs = _table_vector(builder, [subgraph])
    buffer_vector = _table_vector(builder, buffers)
    codes = _table_vector(builder, [])
    builder.StartObject(8)  # Model: version, operator_codes, subgraphs, description, buffers, ...
    builder.PrependUint32Slot(0, 3, 0)
    builder.PrependUOffsetTRelativeSlot(1, codes, 0)
    builder.PrependUOffsetTRelativeSlot(2, subgraphs, 0)
    builder.PrependUOffsetTRelativeSlot(4, buffer_vector, 0)
    builder.Finish(builder.EndObject(), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path
