"""Median milliseconds of one Argon2id verification by argon2-cffi (the
reference C implementation, libargon2) at the service's parameters.

Usage: argon2_reference.py [iterations]
"""

import statistics
import sys
import time

from argon2 import PasswordHasher

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 20
# m=19456 KiB, t=2, p=1: the service's policy (components/core/src/password.rs).
hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
password = "correct horse battery staple"
stored = hasher.hash(password)
hasher.verify(stored, password)  # warms caches and the allocator
times = []
for _ in range(iterations):
    started = time.perf_counter()
    hasher.verify(stored, password)
    times.append((time.perf_counter() - started) * 1000)
print(f"{statistics.median(times):.2f}")
