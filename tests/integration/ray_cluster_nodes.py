"""A real 3-node Ray cluster on loopback, held by this process for test_ray_cluster.py.

Ray's own multi-node harness (`ray.cluster_utils.Cluster`): a head with no CPUs (it runs
Ray's services, as a production head does, and so takes no shard) and two workers with one
CPU each, every node a raylet of its own, no dashboard. Run in a process of its own: the
test's pytest process may already be a driver of the session's shared Ray runtime.

Prints one JSON line {"address", "head", "workers"}, then answers one JSON line per command
read on stdin:
  where NAME           -> {"state", "node", "restarts", "pid"} of the named actor (from the GCS)
  remove NODE_ID       -> {"removed": NODE_ID} once that worker node's processes are gone
End of input stops every node.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import ray._common.utils
import ray._private.utils
from ray.cluster_utils import Cluster

LOOPBACK = "127.0.0.1"
NODE_MEMORY = 80 * 1024 * 1024
"""Object store of each node: the shards pass small messages only."""


def where(cluster: Cluster, name: str) -> dict[str, Any]:
    """The named actor's state, node, restarts and process (a restarted actor keeps its entry)."""
    for actor in cluster.global_state.actor_table(None).values():
        if actor["Name"] == name and actor["State"] != "DEAD":
            node = actor["Address"]["NodeID"]
            return {
                "state": actor["State"],
                "node": node,
                "restarts": actor["NumRestarts"],
                "pid": actor["Pid"],
            }
    return {"state": "MISSING", "node": "", "restarts": 0, "pid": 0}


def keep_out_of_ray_address_file() -> None:
    """Cluster writes its address to /tmp/ray/ray_current_cluster (and removes the file at
    shutdown), where every `ray.init()` without an address on this machine would find it
    and join this cluster instead of starting its own runtime: other test sessions too."""
    ray._private.utils.write_ray_address = lambda *args, **kwargs: None
    ray._common.utils.reset_ray_address = lambda *args, **kwargs: None


def main() -> None:
    keep_out_of_ray_address_file()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "node_ip_address": LOOPBACK,
            "include_dashboard": False,
            "object_store_memory": NODE_MEMORY,
        },
    )
    try:
        workers = [
            cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK, object_store_memory=NODE_MEMORY)
            for _ in range(2)
        ]
        cluster.wait_for_nodes()
        nodes = {node.node_id: node for node in workers}
        head = cluster.head_node
        assert head is not None
        print(
            json.dumps({"address": cluster.address, "head": head.node_id, "workers": list(nodes)}), flush=True
        )
        for command in sys.stdin:
            verb, *words = command.split()
            if verb == "where":
                answer = where(cluster, words[0])
            elif verb == "remove":
                cluster.remove_node(nodes.pop(words[0]))
                answer = {"removed": words[0]}
            else:
                answer = {"error": f"unknown command {verb!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
