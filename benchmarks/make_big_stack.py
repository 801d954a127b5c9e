"""Write a synthetic N-frame JPEG stack of W x H for memory checks: a texture in N vertical bands,
band j sharp in frame j (Gaussian 0.4 px per frame of distance), 2 % breathing and a drifting shift.

Run: `python benchmarks/make_big_stack.py 30 3000 2000 /tmp/big30`, then
`/usr/bin/time -v bamf fuse /tmp/big30/*.jpg -o out.png`.
"""

import os
import sys

import cv2
import numpy as np

n, w, h, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
base = cv2.resize(rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
levels = [base] + [cv2.GaussianBlur(base, (0, 0), 0.4 * d) for d in range(1, n)]
bands = np.linspace(0, w, n + 1).astype(int)
for k in range(n):
    f = np.empty_like(base)
    for j in range(n):
        f[:, bands[j] : bands[j + 1]] = levels[abs(j - k)][:, bands[j] : bands[j + 1]]
    M = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, 1 + 0.02 * k / max(1, n - 1))
    M[:, 2] += (0.5 * k, -0.3 * k)
    cv2.imwrite(
        f"{out}/{k:02d}.jpg",
        cv2.warpAffine(f, M, (w, h), borderMode=cv2.BORDER_REFLECT),
        [cv2.IMWRITE_JPEG_QUALITY, 92],
    )
