"""Batch jobs: a job spec (YAML or flags), a resumable manifest, and local or Ray engines; see docs/batch.md.

    spec.py       the job spec: input → model → output, run options; validated into a JobSpec
    runner.py     plan the items, decide (do / skip / fail), drive an engine, keep the manifest, report
    manifest.py   the SQLite manifest in OUTPUT/.enlarge/, written by the driver only
    workspace.py  the hidden folder: lock, temp files, atomic writes, hashes
    work.py       one item in a worker: decode → enlarge → encode (→ write)
    local.py      process-pool engine;  ray_engine.py  Ray actor-pool engine (extra `enlarge[ray]`)
"""
