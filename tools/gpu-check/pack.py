"""Packs binaries for the trip in one xz stream (shared code compresses once), each with its
embedded NanoDet bytes zeroed; unpack restores them and checks their digests."""
import hashlib, json, lzma, os, sys
FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 192 << 20}]
mode, onnx, packed, *rest = sys.argv[1:]
model = open(onnx, 'rb').read()
if mode == 'pack':
    blob, meta = bytearray(), []
    for path in rest:
        data = bytearray(open(path, 'rb').read())
        off = data.find(model)
        assert off >= 0, 'embedded model not found'
        digest = hashlib.sha256(data).hexdigest()
        data[off:off + len(model)] = bytes(len(model))
        meta.append({"name": os.path.basename(path), "off": off, "len": len(data), "sha": digest})
        blob += data
    open(packed, 'wb').write(lzma.compress(bytes(blob), format=lzma.FORMAT_XZ, filters=FILTERS))
    json.dump(meta, open(packed + '.json', 'w'))
else:
    outdir = rest[0]
    blob = lzma.decompress(open(packed, 'rb').read())
    pos = 0
    for m in json.load(open(packed + '.json')):
        data = bytearray(blob[pos:pos + m["len"]]); pos += m["len"]
        data[m["off"]:m["off"] + len(model)] = model
        assert hashlib.sha256(data).hexdigest() == m["sha"], m["name"] + ': checksum mismatch'
        open(os.path.join(outdir, m["name"]), 'wb').write(data)
        os.chmod(os.path.join(outdir, m["name"]), 0o755)
        print('unpacked', m["name"])
