"""PyTorch on one CPU thread: the peer that `npm run bench:kernel` compares the kernels with.

Started by load/bench-kernel.ts when a Python with torch is found (PyTorch is never needed to
build, test or run xent). Usage: torch_floor.py ROWS VOCAB. It builds (ROWS x VOCAB) float32
logits in [-8, 8), prints "ready", then for each line on stdin runs one of these once and prints
the milliseconds it took:
  forward           F.cross_entropy under no_grad
  forward_backward  F.cross_entropy and .backward() to the logits
  softcap           F.cross_entropy of 30 * tanh(logits / 30), under no_grad
  soft_targets      F.cross_entropy against a dense distribution per row, under no_grad
  logprobs          log_softmax, the gather of the targets' log-probs, topk(8) and the entropy
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

    probabilities = torch.rand(rows, vocab, generator=generator)
    probabilities /= probabilities.sum(dim=1, keepdim=True)

    def softcap():
        with torch.no_grad():
            F.cross_entropy(30 * torch.tanh(logits / 30), targets)

    def soft_targets():
        with torch.no_grad():
            F.cross_entropy(logits, probabilities)

    def logprobs():
        with torch.no_grad():
            log_p = F.log_softmax(logits, dim=-1)
            log_p.gather(-1, targets.unsqueeze(-1))
            torch.topk(log_p, 8, dim=-1)
            -(log_p.exp() * log_p).sum(dim=-1)

    runs = {
        "forward": forward,
        "forward_backward": forward_backward,
        "softcap": softcap,
        "soft_targets": soft_targets,
        "logprobs": logprobs,
    }
    print(f"ready torch {torch.__version__}", flush=True)
    for line in sys.stdin:
        run = runs[line.strip()]
        start = time.perf_counter()
        run()
        print(f"{(time.perf_counter() - start) * 1e3:.3f}", flush=True)


if __name__ == "__main__":
    main()
