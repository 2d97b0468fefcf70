"""PyTorch's CPU cross-entropy on one thread: the floor that `npm run bench:kernel` compares with.

Started by load/bench-kernel.ts when a Python with torch is found (PyTorch is never needed to
build, test or run xent). Usage: torch_floor.py ROWS VOCAB. It builds (ROWS x VOCAB) float32
logits in [-8, 8), prints "ready", then for each line on stdin, "forward" or "forward_backward",
runs F.cross_entropy once (forward under no_grad; or forward and .backward() to the logits) and
prints the milliseconds it took.
"""

import sys
import time

import torch
import torch.nn.functional as F


def main():
    rows, vocab = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(12345)
    logits = torch.rand(rows, vocab, generator=generator) * 16 - 8
    targets = (torch.arange(rows) * 7919) % vocab

    def forward():
        with torch.no_grad():
            F.cross_entropy(logits, targets)

    def forward_backward():
        leaf = logits.detach().requires_grad_(True)
        F.cross_entropy(leaf, targets).backward()

    runs = {"forward": forward, "forward_backward": forward_backward}
    print(f"ready torch {torch.__version__}", flush=True)
    for line in sys.stdin:
        run = runs[line.strip()]
        start = time.perf_counter()
        run()
        print(f"{(time.perf_counter() - start) * 1e3:.3f}", flush=True)


if __name__ == "__main__":
    main()
