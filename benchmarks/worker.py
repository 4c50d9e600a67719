"""One measurement in a fresh process: `python -m benchmarks.worker TASK 'JSON spec'`.

Prints the result as one JSON line. `benchmarks.run` starts one worker per measurement.
The spec's "thp" (default true) sets THP_MEM_ALLOC_ENABLE for the whole process before torch is
imported — large CPU tensors on transparent huge pages, as `import aiayn` sets it — so every
contender of a run measures under the same memory settings. "keep_freed" (default false) applies
the malloc setting of aiayn's Trainer (`aiayn.train.allocator`), for the before/after table.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    task, spec = sys.argv[1], json.loads(sys.argv[2])
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1" if spec.pop("thp", True) else "0"

    import torch  # only now: PyTorch reads THP_MEM_ALLOC_ENABLE at its first allocation

    from benchmarks.bert import bert_classify_rate, bert_train_rate
    from benchmarks.contenders import Dims
    from benchmarks.lm import lm_generate_rate, lm_train_rate
    from benchmarks.long_attention import attention_layer_cost
    from benchmarks.measure import matmul_peak_flops
    from benchmarks.trainer_steps import changing_shape_steps
    from benchmarks.training import train_step_rate
    from benchmarks.translation import translate_rate
    from benchmarks.vit import vit_infer_rate, vit_train_rate

    if spec.pop("keep_freed", False):
        from aiayn.train.allocator import keep_freed_memory

        keep_freed_memory()
    if "threads" in spec:
        torch.set_num_threads(spec.pop("threads"))
    if "dims" in spec:
        spec["dims"] = Dims(**spec["dims"])
    if task == "peak":
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[spec["precision"]]
        result = {"flops_per_s": matmul_peak_flops(dtype, spec["device"], spec.get("n", 2048))}
    elif task == "train":
        result = train_step_rate(**spec)
    elif task == "translate":
        result = translate_rate(**spec)
    elif task == "lm_train":
        result = lm_train_rate(**spec)
    elif task == "lm_generate":
        result = lm_generate_rate(**spec)
    elif task == "bert_train":
        result = bert_train_rate(**spec)
    elif task == "bert_classify":
        result = bert_classify_rate(**spec)
    elif task == "vit_train":
        result = vit_train_rate(**spec)
    elif task == "vit_infer":
        result = vit_infer_rate(**spec)
    elif task == "attention":
        result = attention_layer_cost(**spec)
    elif task == "changing_shapes":
        result = changing_shape_steps(**spec)
    else:
        raise SystemExit(f"unknown task {task!r}: see benchmarks/worker.py for the tasks")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
