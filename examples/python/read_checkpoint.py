#!/usr/bin/env python3
"""Read an agora model checkpoint with the Python standard library.

Verifies the file as docs/checkpoint.md specifies (magic, version, size,
CRC-32 via zlib.crc32, section offsets, tensor table), then prints the model
configuration and the tensor table. With --stats it also prints, per tensor,
the mean and RMS of its values, read straight from the float32 data.

    read_checkpoint.py [--stats] CHECKPOINT

Exit status: 0 if the checkpoint is valid, 1 if it is refused.
"""
import argparse
import array
import math
import struct
import sys
import zlib

MAGIC = b"AGORACKP"
VERSION = 1
HEADER = struct.Struct("<8sII6III QQQQQQ 32s")  # 128 bytes
ENTRY = struct.Struct("<48sIIII QQ")             # 80 bytes
OPT_HEADER = struct.Struct("<QQ48s")             # 64 bytes

assert HEADER.size == 128 and ENTRY.size == 80 and OPT_HEADER.size == 64


class Refused(Exception):
    pass


def align64(x):
    return (x + 63) // 64 * 64


def expected_tensors(vocab, d, layers, ctx, mlp):
    """The tensor names and shapes a config implies, in file order."""
    f = mlp * d
    out = [("wte", (vocab, d)), ("wpe", (ctx, d))]
    for l in range(layers):
        p = f"layers.{l}."
        out += [
            (p + "ln1.weight", (d,)), (p + "ln1.bias", (d,)),
            (p + "attn.qkv.weight", (3 * d, d)), (p + "attn.qkv.bias", (3 * d,)),
            (p + "attn.proj.weight", (d, d)), (p + "attn.proj.bias", (d,)),
            (p + "ln2.weight", (d,)), (p + "ln2.bias", (d,)),
            (p + "mlp.fc.weight", (f, d)), (p + "mlp.fc.bias", (f,)),
            (p + "mlp.proj.weight", (d, f)), (p + "mlp.proj.bias", (d,)),
        ]
    out += [("lnf.weight", (d,)), ("lnf.bias", (d,)),
            ("head.weight", (vocab, d)), ("head.bias", (vocab,)),
            ("value.weight", (1, d)), ("value.bias", (1,))]
    return out


def read_checkpoint(data):
    """Validates a checkpoint image; returns (config, header fields, table)."""
    if len(data) < HEADER.size + 4 or data[:8] != MAGIC:
        raise Refused("not a checkpoint (bad magic or too short)")
    (magic, version, hsize, vocab, d, layers, heads, ctx, mlp, n_tensors, flags,
     step, n_params, table_off, params_off, optim_off, file_size,
     reserved) = HEADER.unpack_from(data, 0)
    if version != VERSION:
        raise Refused(f"format version {version}, this reader knows {VERSION}")
    if hsize != HEADER.size:
        raise Refused(f"bad header size {hsize}")
    if file_size != len(data):
        what = "truncated" if len(data) < file_size else "trailing data"
        raise Refused(f"{what}: header says {file_size} bytes, file has {len(data)}")
    stored = struct.unpack_from("<I", data, len(data) - 4)[0]
    computed = zlib.crc32(memoryview(data)[:-4]) & 0xFFFFFFFF
    if stored != computed:
        raise Refused(f"checksum mismatch (stored {stored:08x}, computed {computed:08x})")
    if any(reserved) or flags & ~1:
        raise Refused("reserved header bytes or unknown flags set")
    if heads < 1 or d % heads or min(vocab, d, layers, ctx, mlp) < 1:
        raise Refused("invalid model config")
    tensors = expected_tensors(vocab, d, layers, ctx, mlp)
    total = sum(math.prod(shape) for _, shape in tensors)
    has_opt = bool(flags & 1)
    want_params = align64(HEADER.size + ENTRY.size * len(tensors))
    end = want_params + 4 * total
    want_optim = align64(end) if has_opt else 0
    want_size = (want_optim + OPT_HEADER.size + 8 * total if has_opt else end) + 4
    if (n_tensors, n_params, table_off, params_off, optim_off, file_size) != (
            len(tensors), total, HEADER.size, want_params, want_optim, want_size):
        raise Refused("counts or section offsets do not match the config")
    table = []
    offset = params_off
    for i, (name, shape) in enumerate(tensors):
        raw, ndim, d0, d1, _, t_off, count = ENTRY.unpack_from(data, table_off + i * ENTRY.size)
        t_name = raw.rstrip(b"\0").decode("ascii", "replace")
        t_shape = (d0,) if ndim == 1 else (d0, d1)
        if (t_name, t_shape, t_off, count) != (name, shape, offset, math.prod(shape)):
            raise Refused(f"tensor table entry {i} ({t_name}) does not match the config")
        table.append((t_name, t_shape, t_off, count))
        offset += 4 * count
    opt = None
    if has_opt:
        opt_steps, per_moment, _ = OPT_HEADER.unpack_from(data, optim_off)
        if per_moment != total:
            raise Refused("optimizer section size mismatch")
        opt = opt_steps
    config = dict(vocab=vocab, d_model=d, n_layers=layers, n_heads=heads, ctx=ctx,
                  mlp_ratio=mlp)
    fields = dict(version=version, step=step, n_params=n_params, file_size=file_size,
                  crc32=f"{stored:08x}", optimizer_steps=opt)
    return config, fields, table


def tensor_values(data, offset, count):
    a = array.array("f")
    a.frombytes(data[offset:offset + 4 * count])
    if sys.byteorder == "big":
        a.byteswap()
    return a


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--stats", action="store_true", help="print mean and RMS of each tensor")
    args = ap.parse_args()
    with open(args.checkpoint, "rb") as f:
        data = f.read()
    try:
        config, fields, table = read_checkpoint(data)
    except Refused as e:
        print(f"{args.checkpoint}: refused: {e}", file=sys.stderr)
        return 1
    print(f"{args.checkpoint}: agora checkpoint v{fields['version']}, "
          f"{fields['file_size']} bytes, crc32 {fields['crc32']} ok")
    print("config: " + ", ".join(f"{k} {v}" for k, v in config.items()))
    opt = fields["optimizer_steps"]
    print(f"step {fields['step']}, {fields['n_params']} parameters, optimizer state: "
          + (f"AdamW after {opt} steps" if opt is not None else "none"))
    print(f"{'name':<32} {'shape':<14} {'offset':>10} {'count':>9}"
          + ("       mean        rms" if args.stats else ""))
    for name, shape, offset, count in table:
        line = f"{name:<32} {'x'.join(map(str, shape)):<14} {offset:>10} {count:>9}"
        if args.stats:
            v = tensor_values(data, offset, count)
            mean = sum(v) / count
            rms = math.sqrt(sum(x * x for x in v) / count)
            line += f" {mean:>10.5f} {rms:>10.5f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
