"""The `omnistock` command: `serve` runs the service, every other command is a client of it.

    omnistock serve --demo
    omnistock availability SKU-00001 --nodes
    omnistock availability SKU-00001 --channel web
    omnistock reserve --ttl 600 --channel web SKU-00001:STORE-001:2 SKU-00002:DC-01:1
    omnistock reserve --channel web --ship-to 40.7128,-74.0060 SKU-00001:2 SKU-00002:1
                                                              (sourced: the channel's rules choose)
    omnistock get res-... --explain                           (why each line went where it went)
    omnistock reassign res-... SKU-00001 STORE-001            (the store cannot find it: source anew)
    omnistock return res-... SKU-00001:STORE-001:1 --at STORE-002   (back on hand at any node)
    omnistock limits put SKU-00042 2                          (at most 2 per customer; 0 removes)
    omnistock reserve --customer alice SKU-00042:DC-01:1
    omnistock extend res-... --ttl 1800                       (a HELD hold lives 30 more minutes)
    omnistock confirm res-...
    omnistock fulfil res-... SKU-00001:STORE-001:1 --id ship-1 (units shipped; the same id is a replay)
    omnistock cancel-lines res-... SKU-00002:DC-01:1          (units back to availability)
    omnistock get res-...                                     (lines, fulfilled, cancelled, history)
    omnistock channels put web --groups dcs,ship-from-store --safety units=2,node_type=store
    omnistock network apply network.toml
    omnistock pickup SKU-00003:2 SKU-00007 --near 40.7128,-74.0060 --channel store-pickup
    omnistock watch SKU-00652 --channel marketplace          (Ctrl-C prints how to resume)
    omnistock supply expect PO-4711 SKU-00432 DC-01 200 --date 2026-12-01
    omnistock availability SKU-00432 --by-date 2026-12-05 --quantity 250

Client commands print aligned text, or JSON on stdout with --json. Exit codes: 0 done,
1 refused (or not applied), 2 bad usage or INVALID_ARGUMENT, 130 interrupted.
"""

from omnistock.cli.app import main

__all__ = ["main"]
