"""Fleets: a directory of machine files, planned together; multi-node placements and per-node commands.

fleet.py      loading a fleet directory and its fleet.yaml (schema plan-deploy/fleet/v1)
placement.py  multi-node memory and speed math (tensor/pipeline parallel over nodes, llama.cpp RPC)
commands.py   per-node argv + environment for each runtime that spans nodes (data/multinode.yaml)
plan.py       per-machine plans, multi-node options and the --want assignment
render.py     text output, the one place commands become shell lines
cli.py        the `fleet plan` and `can-run --fleet` command bodies
"""
