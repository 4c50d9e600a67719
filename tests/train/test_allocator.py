"""The trainer's malloc setting: freed step buffers are reused, not page-faulted anew."""

import os
import subprocess
import sys
import textwrap

# In a child process: the setting is process-wide and permanent, so it must not leak into
# the test session, and the "before" measurement needs an untouched allocator.
_CHILD = textwrap.dedent(
    """
    import resource, torch
    from aiayn.train.allocator import keep_freed_memory

    def faults_per_step():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):  # a training step's big temporaries: allocate, touch, free
            x = torch.ones(64 * 2**20 // 4)  # 64 MiB
            del x
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10

    faults_per_step()
    default = faults_per_step()
    took = keep_freed_memory()
    faults_per_step()  # the first allocation after the switch grows the heap once
    kept = faults_per_step()
    print(took, default, kept)
    """
)


def test_freed_memory_is_reused_without_page_faults():
    env = {"THP_MEM_ALLOC_ENABLE": "0"}  # count 4 KiB faults: 16,384 per 64 MiB buffer
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True,
        env={**os.environ, **env},
    ).stdout.split()  # fmt: skip
    took, default, kept = out[0] == "True", float(out[1]), float(out[2])
    assert took
    assert default > 10_000  # glibc mmaps and munmaps the buffer every time
    assert kept < 100  # now the same heap memory comes back, already mapped
