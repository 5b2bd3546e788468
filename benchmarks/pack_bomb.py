"""A lecture pack that inflates: how long unpacking takes to refuse it, and how many bytes it writes first.

    python -m benchmarks.pack_bomb [--gigabytes 2]

Packs one resnet-20 run (its config as the app's defaults: 2 epochs, batch 128, all of the training set; trained
2 steps on random images, since only its files matter here), then replaces its checkpoint with GIGABYTES of zeros
(deflate makes ~1 MB of each GB) in three ways:

* zeros          — the member is zeros, its size declared honestly in the zip;
* header + zeros — the run's real checkpoint followed by the zeros, declared honestly;
* lying size     — the same, with the zip's size fields saying it is just the real checkpoint.

Each is unpacked with `resnet_viz.storage.packs.unpack` into an empty run store. Reported: the zip's size, the seconds to the
refusal, the bytes the process wrote meanwhile (/proc/self/io wchar: every write(2), to any file) and the refusal.
Target (issue 19): refused in under 5 s, writing under 100 MB.
"""
from __future__ import annotations

import argparse
import io
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from resnet_viz.training.checkpoint import CHECKPOINT_FILE
from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.datasets.cifar10 import Cifar10Tensors
from resnet_viz.errors import ResnetVizError
from resnet_viz.storage.packs import pack_bytes, unpack
from resnet_viz.storage.store import RunStore
from resnet_viz.training.trainer import Trainer


def written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")


def tiny_data() -> Cifar10Tensors:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % 10
    images = (torch.rand(300, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    return Cifar10Tensors(images[:200], labels[:200], images[200:], labels[200:], tuple("0123456789"), "random")


def bomb(pack: bytes, prefix: bytes, zeros: int) -> bytes:
    """The pack with its checkpoint member replaced by `prefix` and then `zeros` zero bytes, written in chunks."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(pack)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():
            if not info.filename.endswith(CHECKPOINT_FILE):
                dst.writestr(info.filename, src.read(info.filename))
                continue
            with dst.open(info.filename, "w") as member:
                member.write(prefix)
                chunk = bytes(1 << 24)
                left = zeros
                while left:
                    member.write(chunk[:min(left, len(chunk))])
                    left -= min(left, len(chunk))
    return out.getvalue()


def understate(pack: bytes, name: str, size: int) -> bytes:
    """`name`'s uncompressed size given as `size` in its local header and in the central directory."""
    data = bytearray(pack)
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = data.find(signature)
        while data[at + name_at:at + name_at + len(name)] != name.encode():
            at = data.find(signature, at + 1)
        data[at + size_at:at + size_at + 4] = size.to_bytes(4, "little")
    return bytes(data)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gigabytes", type=float, default=2.0)
    args = p.parse_args()
    zeros = int(args.gigabytes * 1e9)
    with tempfile.TemporaryDirectory() as tmp:
        source = RunStore(Path(tmp) / "source")
        config = RunConfig(model=ModelConfig(depth=20), train=TrainConfig(max_steps=2, eval_images=10, device="cpu",
                                                                          precision="fp32"))
        result = Trainer(config, data=tiny_data(), store=source).run()
        pack = pack_bytes(source, [result.run_id])
        member = f"{result.run_id}/{CHECKPOINT_FILE}"
        checkpoint = source.get(result.run_id).checkpoint_path.read_bytes()
        t0 = time.perf_counter()
        cases = {"zeros": bomb(pack, b"", zeros), "header + zeros": bomb(pack, checkpoint, zeros)}
        cases["lying size"] = understate(cases["header + zeros"], member, len(checkpoint))
        print(f"built the bombs in {time.perf_counter() - t0:.1f} s; the real checkpoint is {len(checkpoint):,} bytes")
        print(f"| pack | zip MB | inflates to GB | refused after (s) | bytes written | message |")
        print("|---|---:|---:|---:|---:|---|")
        for i, (what, data) in enumerate(cases.items()):
            store = RunStore(Path(tmp) / f"store-{i}")
            before, t0 = written_bytes(), time.perf_counter()
            try:
                unpack(store, io.BytesIO(data))
                outcome = "UNPACKED"
            except ResnetVizError as e:
                outcome = str(e)
            seconds, wrote = time.perf_counter() - t0, written_bytes() - before
            left = sum(f.stat().st_size for f in store.root.rglob("*") if f.is_file()) if store.root.exists() else 0
            print(f"| {what} | {len(data) / 1e6:.2f} | {(zeros + (len(checkpoint) if what != 'zeros' else 0)) / 1e9:.2f}"
                  f" | {seconds:.2f} | {wrote:,} | {outcome} |" + (f" LEFT {left:,} bytes" if left else ""))


if __name__ == "__main__":
    main()
