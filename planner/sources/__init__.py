"""Model sources outside the catalog: local GGUF files, checkpoint directories, config.json files
and Hugging Face repositories, each read from its header and turned into a `catalog.ModelSpec`.

Nothing here is imported by the planning hot path unless MODEL names such a source.
"""
