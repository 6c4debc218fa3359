"""Read a kmodel's header: which format (V3, V4, V5), what a V4 file needs, whether it is whole.

Released K210 firmware (MaixPy v0.6.x, CanMV up to v1.0.7) loads V3 and V4 only, so the format
is the first thing to check before a file goes to a board. A V4 file (nncase v0.2) is laid out
as the v0.2 runtime reads it (``src/runtime/interpreter.cpp``, ``model.h``)::

    header (10 x u32): identifier 'KMDL', version 4, flags, target, constants, main_mem,
                       nodes, inputs, outputs, reserved
    inputs  x memory_range (type, datatype, start, size: 4 x u32)
    inputs  x shape (4 x i32)
    outputs x memory_range
    constants bytes
    nodes   x node_header (opcode, body_size: 2 x u32)
    node bodies

V3 (nncase v0.1) starts with the version word ``3``; V5 (nncase >= 1.0) starts with 'KMDL'
then version 5.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from rpi_agent.errors import ModelError

IDENTIFIER = b"LDMK"  # the multi-character constant 'KMDL' as little-endian bytes
HEADER = struct.Struct("<4s9I")
RANGE = struct.Struct("<4I")
SHAPE = struct.Struct("<4i")
NODE = struct.Struct("<2I")
DATATYPE_BYTES = {0: 4, 1: 1}  # dt_float32, dt_uint8 (runtime datatypes.h)
MEMORY_TYPES = {0: "const", 1: "main", 2: "k210_kpu"}
FIRMWARE_VERSIONS = (3, 4)  # what MaixPy v0.6.x and CanMV <= v1.0.7 load
# Runtime opcodes of nncase v0.2 (src/common/include/runtime/runtime_op.def): neutral ops run on
# the CPU (0x0..), as do the CPU target's (0x1001..); the K210 target's (0x2001..) drive the KPU.
OPCODES = {
    0x00: "Binary", 0x01: "Concat", 0x02: "Conv2D", 0x03: "Dequantize", 0x04: "MatMul", 0x05: "Pad",
    0x06: "Quantize", 0x07: "Reduce", 0x08: "ReduceWindow2D", 0x09: "MemoryCopy", 0x0A: "ResizeImage",
    0x0B: "Softmax", 0x0C: "Transpose", 0x0D: "StridedSlice", 0x0E: "Unary", 0x0F: "QuantizedConv2D",
    0x10: "QuantizedMatMul", 0x11: "QuantizedBinary", 0x13: "Conv2DTranspose",
    0x1001: "CPUConv2D", 0x1002: "CPUDepthwiseConv2D", 0x1003: "CPUReduceWindow2D",
    0x1004: "CPUQuantizedConv2D", 0x1005: "CPUQuantizedDepthwiseConv2D",
    0x2001: "KPUUpload", 0x2002: "KPUConv2D",
}
KPU_OPCODES = range(0x2001, 0x3000)
BODY_ALIGNMENT = 8  # ncc v0.2 pads every node body to 8 bytes (src/codegen/codegen.cpp)


@dataclass(frozen=True, slots=True)
class Tensor:
    """An input or output of a V4 model.

    Attributes:
        memory: ``main`` (CPU RAM) or ``k210_kpu`` (the KPU's 2 MB).
        datatype_bytes: 4 for float32, 1 for uint8.
        start: Offset in that memory.
        size: Bytes.
        shape: NCHW shape (inputs only).
    """

    memory: str
    datatype_bytes: int
    start: int
    size: int
    shape: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class KmodelInfo:
    """What the header of a kmodel says.

    Attributes:
        version: 3, 4 or 5.
        size_bytes: The file's size.
        expected_bytes: What the header and node table add up to (V4 only, else the file size).
        main_mem_bytes: Main (CPU) memory the V4 runtime allocates to run it.
        constants_bytes: Constant data held in the file (V4).
        nodes: Runtime ops (V4).
        inputs / outputs: V4 tensors.
        opcodes: Runtime opcode of every node, in order (V4).
    """

    version: int
    size_bytes: int
    expected_bytes: int
    main_mem_bytes: int = 0
    constants_bytes: int = 0
    nodes: int = 0
    inputs: tuple[Tensor, ...] = ()
    outputs: tuple[Tensor, ...] = ()
    opcodes: tuple[int, ...] = ()

    def op_split(self) -> dict[str, dict[str, int]]:
        """Runtime ops per target, ``{"kpu": {name: count}, "cpu": {...}}`` (V4; empty otherwise)."""
        split: dict[str, dict[str, int]] = {"kpu": {}, "cpu": {}}
        for code in self.opcodes:
            side = split["kpu" if code in KPU_OPCODES else "cpu"]
            name = OPCODES.get(code, f"op{code:#x}")
            side[name] = side.get(name, 0) + 1
        return {k: dict(sorted(v.items())) for k, v in split.items()} if self.opcodes else {}


def _tensor(data: bytes, offset: int, shape: tuple[int, ...] = ()) -> Tensor:
    mtype, dtype, start, size = RANGE.unpack_from(data, offset)
    if mtype not in MEMORY_TYPES or dtype not in DATATYPE_BYTES:
        raise ModelError(f"memory type {mtype} / datatype {dtype} unknown to the V4 runtime")
    return Tensor(MEMORY_TYPES[mtype], DATATYPE_BYTES[dtype], start, size, shape)


def parse(data: bytes) -> KmodelInfo:
    """Parse a kmodel held in memory.

    Raises:
        ModelError: Not a kmodel, an unknown version, or a V4 file shorter than its header says.
    """
    if len(data) >= 4 and struct.unpack_from("<I", data)[0] == 3:
        return KmodelInfo(3, len(data), len(data))
    if len(data) < 8 or data[:4] != IDENTIFIER:
        raise ModelError("not a kmodel (no 'KMDL' identifier and not V3)")
    version = struct.unpack_from("<I", data, 4)[0]
    if version != 4:
        if version in (5, 6):
            return KmodelInfo(version, len(data), len(data))
        raise ModelError(f"unknown kmodel version {version}")
    if len(data) < HEADER.size:
        raise ModelError(f"truncated kmodel V4: {len(data)} bytes, shorter than its {HEADER.size}-byte header")
    _, _, _, _, constants, main_mem, nodes, n_in, n_out, _ = HEADER.unpack_from(data)
    offset = HEADER.size
    table_end = offset + n_in * (RANGE.size + SHAPE.size) + n_out * RANGE.size
    nodes_at = table_end + constants
    bodies_at = nodes_at + nodes * NODE.size
    if len(data) < bodies_at:
        raise ModelError(f"truncated kmodel V4: {len(data)} bytes, its tables alone need {bodies_at}")
    inputs = []
    for i in range(n_in):
        shape = SHAPE.unpack_from(data, offset + n_in * RANGE.size + i * SHAPE.size)
        inputs.append(_tensor(data, offset + i * RANGE.size, tuple(shape)))
    out_at = offset + n_in * (RANGE.size + SHAPE.size)
    outputs = [_tensor(data, out_at + i * RANGE.size) for i in range(n_out)]
    headers = [NODE.unpack_from(data, nodes_at + i * NODE.size) for i in range(nodes)]
    expected = bodies_at + sum(size for _, size in headers)
    if len(data) < expected:
        raise ModelError(f"truncated kmodel V4: {len(data)} bytes of {expected}")
    return KmodelInfo(4, len(data), expected, main_mem, constants, nodes, tuple(inputs), tuple(outputs),
                      tuple(code for code, _ in headers))


def missing_padding(data: bytes) -> int:
    """Bytes a V4 file from ncc v0.2 lacks at its end when they are only the last body's padding, else 0.

    ncc pads each node body to 8 bytes by moving the write position (``align_position`` in
    ``binary_writer.h`` seeks, it writes nothing) and counts the padding in the body's size; after
    the last body nothing more is written, so a model whose last body ends off the 8-byte grid
    comes out up to 7 bytes shorter than its node table says. Those bytes are never read as data.
    """
    if len(data) < HEADER.size or data[:4] != IDENTIFIER or struct.unpack_from("<I", data, 4)[0] != 4:
        return 0
    _, _, _, _, constants, _, nodes, n_in, n_out, _ = HEADER.unpack_from(data)
    nodes_at = HEADER.size + n_in * (RANGE.size + SHAPE.size) + n_out * RANGE.size + constants
    bodies_at = nodes_at + nodes * NODE.size
    if nodes == 0 or len(data) < bodies_at:
        return 0
    expected = bodies_at + sum(NODE.unpack_from(data, nodes_at + i * NODE.size)[1] for i in range(nodes))
    gap = expected - len(data)
    return gap if 0 < gap < BODY_ALIGNMENT and expected % BODY_ALIGNMENT == 0 else 0


def read(path: Path) -> KmodelInfo:
    """Parse the kmodel at ``path``.

    Raises:
        ModelError: Missing file, or as :func:`parse` (the message names the file).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read kmodel ({exc.strerror or exc})") from None
    try:
        return parse(data)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None


def require_version(info: KmodelInfo, wanted: int, path: Path) -> None:
    """Refuse a kmodel of the wrong format with a message saying what loads it.

    Raises:
        ModelError: ``info.version`` is not ``wanted``.
    """
    if info.version == wanted:
        return
    loads = {3: "nncase v0.1", 4: "nncase v0.2's runtime (MaixPy v0.6.x, CanMV <= v1.0.7)",
             5: "nncase >= 1.0's runtime (no released K210 firmware)"}
    raise ModelError(f"{path}: kmodel V{info.version}, not V{wanted}; V{info.version} is for "
                     f"{loads.get(info.version, 'no known runtime')}")
