"""`ray job submit` entrypoint of the whole chain (`fcrm pipeline`): bench -> generate -> train ->
pairwise + Best-of-N eval -> serve check -> filter -> report.

    # CPU (a laptop or the CI machine: `ray start --head` first)
    ray job submit --address http://127.0.0.1:8265 --working-dir . \
      --runtime-env jobs/runtime_env_cpu.yaml -- python jobs/pipeline.py --config configs/pipeline/cpu.yaml
    # GPU cluster from clusters/ (vLLM generation, ZeRO-3 training of Qwen3-8B)
    ray job submit --address http://127.0.0.1:8265 --working-dir . \
      --runtime-env jobs/runtime_env_gpu.yaml -- python jobs/pipeline.py --config configs/pipeline/gpu.yaml \
      out=/mnt/cluster_storage/fcrm/pipeline-1

Each stage runs as a child process that joins the job's cluster (`RAY_ADDRESS`); the job fails with
the failing stage's name, exit code and log tail.
"""

import sys

from fcrm_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["pipeline", *sys.argv[1:]]))
